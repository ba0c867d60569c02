//! Shared helpers for black-box tests: run the real binary.
#![allow(dead_code)]

pub mod amqp;
pub mod gateway;
pub mod hfs;
pub mod pg;
pub mod workload;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_recordbridge"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    // Tests must not pick up a developer's environment.
    for (k, _) in std::env::vars() {
        if k.starts_with("RECORDBRIDGE_") && !k.starts_with("RECORDBRIDGE_TEST") {
            c.env_remove(k);
        }
    }
    c.stdin(Stdio::null());
    c
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

pub fn run_ok(args: &[&str]) -> Output {
    let out = bin().args(args).output().expect("binary runs");
    assert!(
        out.status.success(),
        "recordbridge {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `recordbridge run --source SRC --sink SINK`, which must succeed.
pub fn run_src_sink(src: &str, sink: &str) -> Output {
    run_ok(&["run", "--source", src, "--sink", sink])
}

/// `recordbridge run --dry-run --source SRC --sink SINK`, which must succeed.
pub fn dry_run(src: &str, sink: &str) -> Output {
    run_ok(&["run", "--dry-run", "--source", src, "--sink", sink])
}

/// Start `recordbridge run --source - --sink dir:OUT` reading a piped stdin.
pub fn spawn_stdin_run(out: &Path, env: &[(&str, &str)], stderr: Stdio) -> std::process::Child {
    let mut c = bin();
    c.args([
        "run",
        "--source",
        "-",
        "--sink",
        &format!("dir:{}", out.display()),
    ]);
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("binary starts")
}

/// Expected final decision per event id: (outcome, reason, patient value).
pub fn expected() -> HashMap<String, (String, Option<String>, Option<String>)> {
    let text = std::fs::read_to_string(fixture("expected-decisions.ndjson")).unwrap();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["event_id"].as_str().unwrap().to_owned(),
                (
                    v["outcome"].as_str().unwrap().to_owned(),
                    v["reason"].as_str().map(str::to_owned),
                    v["patient"]["value"].as_str().map(str::to_owned),
                ),
            )
        })
        .collect()
}

/// Last decision line per event id from `--dry-run` output.
pub fn final_decisions(stdout: &[u8]) -> HashMap<String, (String, Option<String>, Option<String>)> {
    let mut m = HashMap::new();
    for l in String::from_utf8_lossy(stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(l)
            .unwrap_or_else(|e| panic!("decision line is not JSON ({e}): {l}"));
        m.insert(
            v["event_id"].as_str().unwrap_or("").to_owned(),
            (
                v["outcome"].as_str().unwrap().to_owned(),
                v["reason"].as_str().map(str::to_owned),
                v["patient"]["value"].as_str().map(str::to_owned),
            ),
        );
    }
    m
}

/// Bundle files in a sink directory, in name order.
pub fn bundles(dir: &Path) -> Vec<serde_json::Value> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
        .collect();
    names.sort();
    names
        .iter()
        .map(|n| serde_json::from_slice(&std::fs::read(dir.join(n)).unwrap()).unwrap())
        .collect()
}

/// The Communication of a bundle, if it has one, and the chat event id its
/// identifier names (for an edit or a redaction: the edited message).
pub fn communication(b: &serde_json::Value) -> Option<(&serde_json::Value, String)> {
    let c = b["entry"]
        .as_array()?
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == "Communication")?;
    let urn = c["identifier"][0]["value"].as_str().unwrap();
    Some((c, urn.rsplit(':').next().unwrap().to_owned()))
}

/// The chat event a bundle was written for (its Provenance's source entity).
pub fn bundle_event(b: &serde_json::Value) -> String {
    let prov = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == "Provenance")
        .expect("every bundle has a Provenance");
    let urn = prov["entity"][0]["what"]["identifier"]["value"]
        .as_str()
        .unwrap();
    urn.rsplit(':').next().unwrap().to_owned()
}

/// Wait for a child, sampling its peak RSS (VmHWM, kB) from /proc until it exits.
/// (getrusage(RUSAGE_CHILDREN) would count the parent's pages copied at fork.)
pub fn wait_with_peak_rss(mut child: std::process::Child) -> (std::process::ExitStatus, u64) {
    let path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(s) = std::fs::read_to_string(&path)
            && let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kb);
        }
        if let Some(st) = child.try_wait().expect("child status") {
            return (st, peak);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A numeric setting of a benchmark from the environment, or its default.
pub fn env_or(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(d)
}
