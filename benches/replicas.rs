//! Partitioned consumption benchmark (not a test): 1, 2 and 3 bridge
//! replicas (release binary) over 8 partition queues of the local RabbitMQ
//! and a shared PostgreSQL ledger.
//!
//! For each replica count: a fresh database and topology, a backlog of
//! `BENCH_EVENTS` (default 20,000) chat events in `BENCH_EVENTS / 20`
//! threads over 97 rooms is published, then the replicas start. Printed:
//! events/s from the first to the last outcome event, and the CPU each
//! party used in that time (bridges, PostgreSQL, RabbitMQ, the FHIR server),
//! as cores busy, which says where the limit is on this machine.
//!
//! `cargo bench --bench replicas` (RabbitMQ with the consistent-hash
//! plugin, PostgreSQL: deploy/local/test.sh sets both up). Sink: one bundle
//! directory per replica; `BENCH_SINK=fhir` shares a fresh Helios FHIR
//! Server. `BENCH_REPLICAS=1,2,3` chooses the counts.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// CPU ticks (user + system) of one process.
fn ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// CPU ticks of every process whose command name is one of `names`.
fn ticks_of(names: &[&str]) -> u64 {
    let mut sum = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if names.iter().any(|n| comm.trim() == *n) {
            sum += ticks(pid);
        }
    }
    sum
}

const TICK: f64 = 100.0; // USER_HZ on Linux

struct Row {
    replicas: usize,
    events: usize,
    secs: f64,
    bridge: f64,
    pg: f64,
    rabbit: f64,
    fhir: f64,
}

async fn one(replicas: usize, n: usize, nhs: &[String], fhir: Option<&str>) -> Row {
    let (db, name) = common::pg::fresh_db("rbbench").await;

    let mut r = common::amqp::Rabbit::new().await;
    r.cfg.partitions = 8;
    r.cfg.lease_secs = 3;
    r.declare().await;
    let listener = r.listen_outcomes().await;
    let msgs: Vec<(String, Vec<u8>)> = common::workload::partitioned(n, (n / 20).max(1), 97, nhs)
        .into_iter()
        .map(|(k, b)| (k, b.into_bytes()))
        .collect();
    r.publish_keyed(&msgs).await;

    let tmp = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..replicas)
        .map(|i| {
            let sink = match fhir {
                Some(base) => format!("fhir:{base}"),
                None => format!("dir:{}", tmp.path().join(format!("out{i}")).display()),
            };
            let mut c = common::bin();
            c.args(["run", "--source", &r.url, "--sink", &sink, "--ledger", &db]);
            for (k, v) in r.env() {
                c.env(k, v);
            }
            c.env("RECORDBRIDGE_LOG__LEVEL", "warn");
            c.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();

    // Wait for the first outcome, then for the last.
    let mut seen: HashSet<String> = HashSet::new();
    let mut first = None;
    let (mut pg0, mut rb0, mut hfs0) = (0, 0, 0);
    let deadline = Instant::now() + Duration::from_secs(1800);
    while seen.len() < n {
        assert!(
            Instant::now() < deadline,
            "benchmark timed out ({} of {n})",
            seen.len()
        );
        for g in r.take_all(&listener).await {
            let v: serde_json::Value = serde_json::from_slice(&g.body).unwrap();
            if let Some(id) = v["event_id"].as_str() {
                seen.insert(id.to_owned());
            }
        }
        if first.is_none() && !seen.is_empty() {
            first = Some(Instant::now());
            pg0 = ticks_of(&["postgres"]);
            rb0 = ticks_of(&["beam.smp"]);
            hfs0 = ticks_of(&["hfs"]);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = first.unwrap().elapsed().as_secs_f64();
    let busy = |t0: u64, t1: u64| (t1.saturating_sub(t0)) as f64 / TICK / secs;
    let pg = busy(pg0, ticks_of(&["postgres"]));
    let rabbit = busy(rb0, ticks_of(&["beam.smp"]));
    let fhir_busy = busy(hfs0, ticks_of(&["hfs"]));
    // Bridge CPU over its whole life (start-up is small next to the run).
    let bridge: f64 = children
        .iter()
        .map(|c| ticks(c.id()) as f64 / TICK)
        .sum::<f64>()
        / secs;
    for c in children {
        common::amqp::stop(c);
    }
    r.cleanup().await;
    common::pg::drop_db(&name).await;
    Row {
        replicas,
        events: n,
        secs,
        bridge,
        pg,
        rabbit,
        fhir: fhir_busy,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = common::env_or("BENCH_EVENTS", 20_000);
    let counts: Vec<usize> = std::env::var("BENCH_REPLICAS")
        .unwrap_or_else(|_| "1,2,3".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let patients = common::hfs::patients("patients.json");
    let nhs: Vec<String> = patients
        .iter()
        .map(|p| p["nhs_number"].as_str().unwrap().to_owned())
        .collect();
    let hfs = if std::env::var("BENCH_SINK").as_deref() == Ok("fhir") {
        let h = common::hfs::Hfs::start().await;
        h.seed(&patients).await;
        Some(h)
    } else {
        None
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "partitioned consumption: {n} events, 8 partitions, sink {}, PostgreSQL ledger, {cores} cores",
        if hfs.is_some() {
            "FHIR (hfs)"
        } else {
            "bundle directory per replica"
        }
    );
    println!("replicas  events/s   secs   cores busy: bridges  postgres  rabbitmq  fhir");
    for &k in &counts {
        let row = one(k, n, &nhs, hfs.as_ref().map(|h| h.base.as_str())).await;
        println!(
            "{:>8}  {:>8.0}  {:>5.1}               {:>5.2}     {:>5.2}     {:>5.2}  {:>5.2}",
            row.replicas,
            row.events as f64 / row.secs,
            row.secs,
            row.bridge,
            row.pg,
            row.rabbit,
            row.fhir
        );
    }
}
