//! AMQP benchmark (not a test): the release binary consuming from the local
//! RabbitMQ.
//!
//! 1. **Backlog**: `BENCH_EVENTS` (default 100,000) chat events are published
//!    first, then the bridge starts: events/s from start to the last outcome
//!    event, and the bridge's peak RSS (prefetch bounds what it holds).
//! 2. **Steady load**: `BENCH_STEADY` (default 3,000) events published at
//!    `BENCH_RATE` events/s (default: half the backlog throughput): latency
//!    from publish to its outcome event, p50/p99/max.
//!
//! `cargo bench --bench amqp` (RabbitMQ at 127.0.0.1:5672 or
//! `RECORDBRIDGE_TEST_AMQP_URL`). Sink: bundle directory; `BENCH_SINK=fhir`
//! uses a fresh Helios FHIR Server instead (`HFS_BIN`, as the tests).
//! `BENCH_PREFETCH` sets `amqp.prefetch` (default 200).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;

/// Synthetic chat: threads of 8, each opened by a handover naming a patient.
fn event(i: usize, tag: &str, patients: &[serde_json::Value]) -> Vec<u8> {
    let t = i / 8;
    let p = patients[t % patients.len()]["nhs_number"].as_str().unwrap();
    let text = if i.is_multiple_of(8) {
        format!("Handover: NHS {p}, stable overnight")
    } else {
        format!("update {i}: obs fine")
    };
    let mut v = serde_json::json!({"id": format!("${tag}{i}"), "platform": "bench",
        "room": format!("!r{}", t % 7), "sender": "@nurse", "sent_at": "2026-11-21T08:00:00Z", "text": text});
    if !i.is_multiple_of(8) {
        v["thread"] = format!("${tag}{}", t * 8).into();
        v["reply_to"] = format!("${tag}{}", i - 1).into();
    }
    v.to_string().into_bytes()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn vm_hwm_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = common::env_or("BENCH_EVENTS", 100_000);
    let steady = common::env_or("BENCH_STEADY", 3_000);
    let prefetch = common::env_or("BENCH_PREFETCH", 200);
    let patients = common::hfs::patients("patients.json");
    let (r, listener) = common::amqp::Rabbit::declared().await;

    let hfs = if std::env::var("BENCH_SINK").as_deref() == Ok("fhir") {
        let h = common::hfs::Hfs::start().await;
        h.seed(&patients).await;
        Some(h)
    } else {
        None
    };
    let tmp = tempfile::tempdir().unwrap();
    let sink = match &hfs {
        Some(h) => format!("fhir:{}", h.base),
        None => format!("dir:{}", tmp.path().join("out").display()),
    };

    // 1. Backlog.
    let t = Instant::now();
    let bodies: Vec<Vec<u8>> = (0..n).map(|i| event(i, "b", &patients)).collect();
    r.publish(&bodies).await;
    drop(bodies);
    println!(
        "published backlog: {n} events in {:.1} s ({:.0} events/s, publisher confirms)",
        t.elapsed().as_secs_f64(),
        n as f64 / t.elapsed().as_secs_f64()
    );

    let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut consumer = r.consume(&listener).await;
    let seen = arrivals.clone();
    tokio::spawn(async move {
        while let Some(Ok(d)) = consumer.next().await {
            let v: serde_json::Value = serde_json::from_slice(&d.data).unwrap();
            if let Some(id) = v["event_id"].as_str() {
                seen.lock()
                    .unwrap()
                    .entry(id.to_owned())
                    .or_insert_with(Instant::now);
            }
        }
    });

    let mut env = r.env();
    env.push(("RECORDBRIDGE_AMQP__PREFETCH".into(), prefetch.to_string()));
    env.push(("RECORDBRIDGE_LOG__LEVEL".into(), "warn".into()));
    let start = Instant::now();
    let bridge = common::amqp::spawn_bridge(
        &r.url,
        &sink,
        &tmp.path().join("ledger.db"),
        &env,
        Stdio::null(),
    );
    let pid = bridge.id();
    let mut peak = 0;
    loop {
        peak = peak.max(vm_hwm_kb(pid));
        if arrivals.lock().unwrap().len() >= n {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1800),
            "backlog not done in 30 min"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = n as f64 / secs;
    println!(
        "backlog: {n} events to their outcome events in {secs:.1} s = {rate:.0} events/s; \
         bridge peak RSS {:.1} MB (prefetch {prefetch})",
        peak as f64 / 1024.0
    );

    // 2. Steady load at a fixed rate below capacity: publish → outcome latency.
    let target = common::env_or("BENCH_RATE", (rate / 2.0).max(1.0) as usize) as f64;
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let begin = Instant::now();
    let mut confirms = Vec::new();
    for i in 0..steady {
        let due = begin + Duration::from_secs_f64(i as f64 / target);
        tokio::time::sleep_until(due.into()).await;
        let body = event(i, "s", &patients);
        sent.lock()
            .unwrap()
            .insert(format!("$s{i}"), Instant::now());
        confirms.push(
            r.ch.basic_publish(
                r.cfg.exchange.as_str().into(),
                "chat.bench".into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap(),
        );
    }
    for c in confirms {
        assert!(c.await.unwrap().is_ack());
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = {
            let a = arrivals.lock().unwrap();
            (0..steady).all(|i| a.contains_key(&format!("$s{i}")))
        };
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let a = arrivals.lock().unwrap().clone();
    let s = sent.lock().unwrap().clone();
    let mut lat: Vec<f64> = s
        .iter()
        .filter_map(|(id, t0)| {
            a.get(id)
                .map(|t1| t1.duration_since(*t0).as_secs_f64() * 1000.0)
        })
        .collect();
    lat.sort_by(|x, y| x.total_cmp(y));
    println!(
        "steady: {} events at {target:.0} events/s: publish → outcome latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} of {steady} arrived)",
        steady,
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN),
        lat.len()
    );
    let peak_all = vm_hwm_kb(pid);
    let o = common::amqp::stop(bridge);
    assert!(o.status.success(), "bridge exit {:?}", o.status);
    println!(
        "bridge peak RSS over the whole run: {:.1} MB",
        peak_all as f64 / 1024.0
    );
    r.cleanup().await;
}
