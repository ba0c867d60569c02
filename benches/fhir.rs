//! FHIR sink benchmark (not a test): events/s into a real FHIR server next to
//! that server's own ceiling (the same bundles posted directly with the same
//! concurrency, order kept per thread), as a ratio.
//!
//! `HFS_BIN=... RECORDBRIDGE_TEST_SEARCH_PARAMS=... cargo bench --bench fhir`
//! (deploy/local/test.sh exports both). `BENCH_EVENTS` (default 2000) and
//! `BENCH_CONCURRENCY` (default 8) change the load.

use std::collections::BTreeMap;

#[path = "../tests/common/mod.rs"]
mod common;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A fresh Helios FHIR Server (the tests' own set-up) with the fixture patients.
async fn seeded_hfs() -> common::hfs::Hfs {
    let h = common::hfs::Hfs::start().await;
    h.seed(&common::hfs::patients("patients.json")).await;
    h
}

fn write_events(path: &Path, n: usize) {
    let patients: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string("fixtures/patients.json").unwrap()).unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        let t = i / 8;
        let p = patients[t % patients.len()]["nhs_number"].as_str().unwrap();
        let text = if i % 8 == 0 {
            format!("Handover: NHS {p}, stable overnight")
        } else {
            format!("update {i}: obs fine")
        };
        let mut v = serde_json::json!({"id": format!("$b{i}"), "platform": "bench", "room": format!("!r{}", t % 7),
            "sender": "@nurse", "sent_at": "2026-11-21T08:00:00Z", "text": text});
        if i % 8 != 0 {
            v["thread"] = format!("$b{}", t * 8).into();
            v["reply_to"] = format!("$b{}", i - 1).into();
        }
        writeln!(f, "{v}").unwrap();
    }
}

fn run_bridge(src: &Path, sink: &str, ledger: &Path, conc: usize) -> (f64, u64) {
    let t = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_recordbridge"))
        .args([
            "run",
            "--source",
            &format!("file:{}", src.display()),
            "--sink",
            sink,
            "--ledger",
        ])
        .arg(ledger)
        .env("RECORDBRIDGE_FHIR__CONCURRENCY", conc.to_string())
        .env("RECORDBRIDGE_LOG__LEVEL", "warn")
        .spawn()
        .unwrap();
    let (st, peak) = common::wait_with_peak_rss(child);
    assert!(st.success());
    (t.elapsed().as_secs_f64(), peak)
}

#[tokio::main]
async fn main() {
    let n = common::env_or("BENCH_EVENTS", 2000);
    let conc = common::env_or("BENCH_CONCURRENCY", 8);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("events.ndjson");
    write_events(&src, n);

    // 1. the bridge into a fresh server
    let s1 = seeded_hfs().await;
    let (secs, peak_kb) = run_bridge(
        &src,
        &format!("fhir:{}", s1.base),
        &tmp.path().join("l1.db"),
        conc,
    );
    let bridge_rate = n as f64 / secs;
    drop(s1);

    // 2. the same bundles posted directly, same concurrency, order kept per thread
    let out = tmp.path().join("bundles");
    run_bridge(
        &src,
        &format!("dir:{}", out.display()),
        &tmp.path().join("l2.db"),
        1,
    );
    let mut names: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    let mut groups: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for p in &names {
        let body = std::fs::read(p).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let c = &v["entry"][0]["resource"];
        let key = c["partOf"][0]["reference"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| c["identifier"][0]["value"].as_str().unwrap().to_owned());
        groups.entry(key).or_default().push(body);
    }
    let bundles = names.len();
    let s2 = seeded_hfs().await;
    let queue = Arc::new(Mutex::new(groups.into_values().collect::<Vec<_>>()));
    let http = reqwest::Client::new();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (queue, http, base) = (queue.clone(), http.clone(), s2.base.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(group) = queue.lock().unwrap().pop() else {
                    break;
                };
                for b in group {
                    let r = http
                        .post(&base)
                        .header("content-type", "application/fhir+json")
                        .body(b)
                        .send()
                        .await
                        .unwrap();
                    assert!(
                        r.status().is_success(),
                        "direct post failed: {}",
                        r.status()
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let direct_secs = t.elapsed().as_secs_f64();
    let direct_rate = bundles as f64 / direct_secs;
    println!("events: {n} ({bundles} bundles), concurrency {conc}");
    println!(
        "bridge → FHIR: {secs:.2} s = {bridge_rate:.0} events/s (incl. parse, dedup, patient resolution, ledger commit)"
    );
    println!(
        "direct POST of the same bundles: {direct_secs:.2} s = {direct_rate:.0} bundles/s (server ceiling)"
    );
    println!("ratio bridge/ceiling: {:.2}", bridge_rate / direct_rate);
    println!("peak RSS of the bridge: {:.1} MB", peak_kb as f64 / 1024.0);
}
