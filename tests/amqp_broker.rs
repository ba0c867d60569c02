//! Tests that restart the broker itself with
//! `rabbitmqctl`. They live in their own test binary: cargo runs test binaries
//! one after another, so no other test sees the broker restart.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::time::Duration;

use common::amqp::{Rabbit, outcome_json, rabbitmqctl, replicated, spawn_bridge, stop};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_stream_loses_nothing_and_duplicates_nothing() {
    // One queue; then partitioned consumption, where the partition consumers
    // die with the connection and, after reconnecting, the replica consumes
    // its leased partitions again. One after the other in one test: tests of
    // a binary run in parallel, and each restarts the broker.
    restart_case(0).await;
    restart_case(8).await;
}

/// Messages ready in the consumed queue(s).
async fn ready(r: &Rabbit) -> u32 {
    if r.cfg.partitions == 0 {
        return r.count(&r.cfg.queue).await;
    }
    let mut n = 0;
    for p in 0..r.cfg.partitions {
        n += r
            .count(&recordbridge::source::amqp::partition_queue(&r.cfg, p))
            .await;
    }
    n
}

async fn restart_case(partitions: u16) {
    let mut r = Rabbit::new().await;
    r.cfg.partitions = partitions;
    r.cfg.lease_secs = 3;
    r.declare().await;
    let listener = r.listen_outcomes().await;
    let (text, want, _) = replicated(25);
    let want: HashMap<String, String> = want.into_iter().map(|(k, v)| (k, v.0)).collect();
    let total = r.publish_lines(&text).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut bridge = spawn_bridge(
        &r.url,
        &format!("dir:{}", out.display()),
        &tmp.path().join("ledger.db"),
        &r.env(),
        Stdio::piped(),
    );
    let before = r
        .collect_until(&listener, Duration::from_secs(60), |g| g.len() >= 200)
        .await;
    assert!(before.len() >= 200, "bridge made progress");
    let left = ready(&r).await;
    assert!(
        left > 0,
        "the restart comes mid-stream ({left} of {total} left)"
    );
    rabbitmqctl(&["stop_app"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup"]);
    r.reconnect().await;

    let mut got = before;
    let rest = r
        .collect_until(&listener, Duration::from_secs(240), |g| {
            let mut last = HashMap::new();
            for v in outcome_json(&got).into_iter().chain(outcome_json(g)) {
                last.insert(
                    v["event_id"].as_str().unwrap().to_owned(),
                    v["outcome"].as_str().unwrap().to_owned(),
                );
            }
            want.iter().all(|(id, o)| last.get(id) == Some(o))
        })
        .await;
    got.extend(rest);
    // The bridge survived the restart by itself and still stops cleanly.
    assert!(
        bridge.try_wait().unwrap().is_none(),
        "bridge exited on broker restart"
    );
    let o = stop(bridge);
    assert!(o.status.success(), "exit status {:?}", o.status);
    let logs = String::from_utf8_lossy(&o.stderr);
    assert!(
        logs.contains("AMQP connection lost; reconnecting"),
        "{logs}"
    );
    assert!(
        logs.contains("\"generation\":2"),
        "consumed again after reconnecting"
    );

    let mut last = HashMap::new();
    for v in outcome_json(&got) {
        last.insert(
            v["event_id"].as_str().unwrap().to_owned(),
            v["outcome"].as_str().unwrap().to_owned(),
        );
    }
    for (id, o) in &want {
        assert_eq!(last.get(id), Some(o), "{id}");
    }
    assert_eq!(ready(&r).await, 0, "queue drained");
    assert_eq!(r.count(&r.cfg.dead_queue).await, 0, "nothing dead-lettered");
    // Redelivered messages were recognised: one bundle per filed event.
    let ids: Vec<String> = bundles(&out).iter().map(bundle_event).collect();
    let uniq: HashSet<_> = ids.iter().collect();
    assert_eq!(uniq.len(), ids.len(), "an event written twice");
    assert_eq!(ids.len(), want.values().filter(|o| *o == "filed").count());
    r.cleanup().await;
}
