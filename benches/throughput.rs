//! Throughput benchmark (not a test): prints figures, asserts nothing about time.
//!
//! `cargo bench --bench throughput` prints
//! 1. decisions/s of the pure core (identify + decide) on one core,
//! 2. the same including building and serialising the FHIR Bundle (record),
//! 3. end-to-end events/s of the release binary on a file → bundle directory
//!    run, with the child's peak RSS.
//!
//! Set `BENCH_EVENTS` to change the event count (default 200000 core, 20000 end-to-end).

use std::io::Write;

#[path = "../tests/common/mod.rs"]
mod common;
use std::time::Instant;

use chrono::{DateTime, Utc};
use recordbridge::decide::state::ThreadState;
use recordbridge::decide::{Policy, decide};
use recordbridge::event::{ChatEvent, parse_event};
use recordbridge::identify::Identify;
use recordbridge::record::{RecordCtx, bundle};

/// Deterministic synthetic events: threads of 8 where the patient is named in
/// the root, later, twice, never, or with a typo; with phone numbers in chatter.
fn synth(n: usize) -> Vec<String> {
    let nhs = valid_numbers(64);
    let mut out = Vec::with_capacity(n);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..n {
        let thread = i / 8;
        let pos = i % 8;
        let kind = thread % 5;
        let p = &nhs[thread % nhs.len()];
        let q = &nhs[(thread + 1) % nhs.len()];
        let text = match (kind, pos) {
            (0, 0) => format!(
                "Handover: {} {} {} in bay {}, obs stable overnight",
                &p[..3],
                &p[3..6],
                &p[6..],
                rnd() % 30
            ),
            (1, 3) => format!("it's {p}, bed {}", rnd() % 30),
            (2, 2) => format!("also {q} needs a review"),
            (2, 0) => format!("pt {p} for the list"),
            (4, 1) => format!(
                "sorry {}{} typo",
                &p[..9],
                (p.as_bytes()[9] - b'0' + 1) % 10
            ),
            _ => format!(
                "can someone review bed {}? call 07700 900{:03} or ext {}",
                rnd() % 30,
                rnd() % 1000,
                rnd() % 9000 + 1000
            ),
        };
        let mut v = serde_json::json!({"id": format!("$e{i}"), "platform": "matrix", "room": format!("!room{}", thread % 6),
            "sender": "@nurse:trust.example", "sent_at": "2026-11-21T08:00:00Z", "text": text});
        if pos > 0 {
            v["thread"] = format!("$e{}", thread * 8).into();
        }
        out.push(v.to_string());
    }
    out
}

fn valid_numbers(n: usize) -> Vec<String> {
    let mut v = Vec::new();
    let mut base = 999_000_000u64;
    while v.len() < n {
        base += 7;
        let s = format!("{base:09}");
        let sum: u32 = s
            .bytes()
            .zip((2..=10).rev())
            .map(|(b, w)| u32::from(b - b'0') * w)
            .sum();
        let c = (11 - sum % 11) % 11;
        if c != 10 {
            v.push(format!("{s}{c}"));
        }
    }
    v
}

fn main() {
    let n: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let idf = Identify::from_toml(
        &std::fs::read_to_string("mappings/identifiers.toml").expect("run from the project root"),
    )
    .unwrap();
    let lines = synth(n);
    let events: Vec<ChatEvent> = lines
        .iter()
        .map(|l| parse_event(l, "chat").unwrap())
        .collect();
    let now: DateTime<Utc> = "2026-11-21T12:00:00Z".parse().unwrap();
    let policy = Policy::default();

    // 1. pure core: identify + decide, thread states in a map (one core).
    let t = Instant::now();
    let mut states: std::collections::HashMap<String, ThreadState> =
        std::collections::HashMap::new();
    let mut decisions = 0usize;
    for e in &events {
        let key = e.thread_root().to_owned();
        let st = states.remove(&key).unwrap_or_default();
        let found = idf.find(e);
        let step = decide(st, e.clone(), found, now, &policy);
        decisions += step.decisions.len();
        states.insert(key, step.state);
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "core identify+decide: {n} messages, {decisions} decisions in {s:.3} s = {:.0} messages/s (one core)",
        n as f64 / s
    );

    // 2. core + record (build and serialise the Bundle).
    let t = Instant::now();
    let mut states: std::collections::HashMap<String, ThreadState> =
        std::collections::HashMap::new();
    let mut bytes = 0usize;
    let ctx = RecordCtx {
        now,
        patient_ref: None,
        device: "recordbridge",
    };
    for e in &events {
        let key = e.thread_root().to_owned();
        let st = states.remove(&key).unwrap_or_default();
        let step = decide(st, e.clone(), idf.find(e), now, &policy);
        for d in &step.decisions {
            if let Some(b) = bundle(d, &ctx) {
                bytes += serde_json::to_vec(&b).unwrap().len();
            }
        }
        states.insert(key, step.state);
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "core + record (bundle JSON): {n} messages in {s:.3} s = {:.0} messages/s, {:.1} MB of bundles",
        n as f64 / s,
        bytes as f64 / 1e6
    );

    // 3. end to end: the release binary, file → bundle directory.
    let e2e: usize = std::env::var("BENCH_E2E_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.ndjson");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    for l in synth(e2e) {
        writeln!(f, "{l}").unwrap();
    }
    f.flush().unwrap();
    drop(f);
    let out = dir.path().join("out");
    let t = Instant::now();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_recordbridge"))
        .args([
            "run",
            "--source",
            &format!("file:{}", input.display()),
            "--sink",
            &format!("dir:{}", out.display()),
        ])
        .env("RECORDBRIDGE_LOG__LEVEL", "warn")
        .spawn()
        .unwrap();
    let (status, peak_kb) = common::wait_with_peak_rss(child);
    let s = t.elapsed().as_secs_f64();
    assert!(status.success());
    let files = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".json")
        })
        .count();
    println!(
        "end to end file→dir: {e2e} events, {files} bundles in {s:.2} s = {:.0} events/s, peak RSS {:.1} MB",
        e2e as f64 / s,
        peak_kb as f64 / 1024.0
    );
}
