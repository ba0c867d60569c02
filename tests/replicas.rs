//! Partitioned consumption with several bridge replicas: the real binary
//! three times over 8 partition queues of the real RabbitMQ (consistent-hash
//! exchange, single active consumer), a shared PostgreSQL ledger and a real
//! FHIR server; one replica killed mid-stream.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::amqp::{Rabbit, outcome_json, stop};
use common::hfs::{Hfs, patients};
use common::pg::{drop_db, fresh_db};
use common::workload::{partitioned, position};
use common::*;
use sqlx::{Connection, Row};

/// The partitions a replica's log says it consumes, last report.
fn consumed(log: &std::path::Path) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .rfind(|v| v["message"] == "partitions consumed")
        .map(|v| {
            // tracing's `?` formatting of a Vec<u16>: "[0, 3, 5]"
            let s = v["partitions"]
                .as_str()
                .unwrap_or("[]")
                .trim_matches(['[', ']']);
            s.split(',').filter_map(|x| x.trim().parse().ok()).collect()
        })
}

/// The replica id a bridge's log announces.
fn replica_of(log: &std::path::Path) -> String {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "partitioned consumption")
        .and_then(|v| v["replica"].as_str().map(str::to_owned))
        .expect("the log names the replica")
}

/// Every expected event's last outcome event says its expected outcome.
fn assert_final_outcomes(
    got: &[common::amqp::Got],
    want: &HashMap<String, (String, Option<String>, Option<String>)>,
) {
    let mut last: HashMap<String, String> = HashMap::new();
    for v in outcome_json(got) {
        if let (Some(id), Some(o)) = (v["event_id"].as_str(), v["outcome"].as_str()) {
            last.insert(id.to_owned(), o.to_owned());
        }
    }
    for (id, w) in want {
        assert_eq!(last.get(id), Some(&w.0), "final outcome of {id}");
    }
}

/// The shared ledger's decision log, in commit order, has each thread's
/// events in their order; returns how many events it decided.
async fn assert_thread_order(db: &str) -> usize {
    let mut c = sqlx::PgConnection::connect(db).await.unwrap();
    let rows = sqlx::query("SELECT event_id FROM decisions ORDER BY seq")
        .fetch_all(&mut c)
        .await
        .unwrap();
    let mut at: HashMap<usize, usize> = HashMap::new();
    let mut decided = HashSet::new();
    for row in rows {
        let id: String = row.get(0);
        let (t, k) = position(&id).unwrap();
        decided.insert(id.clone());
        if let Some(prev) = at.insert(t, k) {
            assert!(k > prev, "thread {t}: {id} decided after position {prev}");
        }
    }
    decided.len()
}

/// Publish stream events, each with its room as routing key.
async fn publish(r: &Rabbit, msgs: &[(String, String)]) {
    let keyed: Vec<(String, Vec<u8>)> = msgs
        .iter()
        .map(|(k, b)| (k.clone(), b.as_bytes().to_vec()))
        .collect();
    r.publish_keyed(&keyed).await;
}

/// Add outcome events to `got` until every id in `ids` has one.
async fn collect_all(
    r: &Rabbit,
    listener: &str,
    got: &mut Vec<common::amqp::Got>,
    ids: &HashSet<&str>,
) {
    let before = got.clone();
    let rest = r
        .collect_until(listener, Duration::from_secs(600), |g| {
            let mut all = before.clone();
            all.extend_from_slice(g);
            let seen = outcome_ids(&all);
            ids.iter().all(|i| seen.contains(*i))
        })
        .await;
    got.extend(rest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_over_eight_partitions_one_killed_file_every_event_once_in_thread_order() {
    const EVENTS: usize = 5_000;
    const THREADS: usize = 250;
    let nhs: Vec<String> = patients("patients.json")
        .iter()
        .map(|p| p["nhs_number"].as_str().unwrap().to_owned())
        .collect();
    let msgs = partitioned(EVENTS, THREADS, 97, &nhs);
    let tmp = tempfile::tempdir().unwrap();

    // The decisions one process makes of the same stream (the baseline).
    let want = baseline(&msgs, tmp.path());
    assert_eq!(want.len(), EVENTS);
    let filed: HashSet<&String> = want
        .iter()
        .filter(|(_, w)| w.0 == "filed")
        .map(|(id, _)| id)
        .collect();
    assert!(
        filed.len() > EVENTS * 9 / 10,
        "most of the stream is filed ({})",
        filed.len()
    );

    let h = Hfs::start().await;
    h.seed(&patients("patients.json")).await;
    let (db, db_name) = fresh_db("rbrep").await;
    let mut r = Rabbit::new().await;
    r.cfg.partitions = 8;
    r.cfg.lease_secs = 3;
    r.declare().await;
    let listener = r.listen_outcomes().await;

    let mut env = r.env();
    env.push(("RECORDBRIDGE_FHIR__BACKOFF_INITIAL_MS".into(), "20".into()));
    env.push(("RECORDBRIDGE_FHIR__MAX_RETRIES".into(), "400".into()));
    let sink = format!("fhir:{}", h.base);
    let logs: Vec<_> = (0..3)
        .map(|i| tmp.path().join(format!("replica{i}.log")))
        .collect();
    let start = |i: usize| {
        let mut c = bin();
        c.args(["run", "--source", &r.url, "--sink", &sink, "--ledger", &db]);
        for (k, v) in &env {
            c.env(k, v);
        }
        c.stdout(Stdio::null())
            .stderr(std::fs::File::create(&logs[i]).unwrap())
            .spawn()
            .expect("binary starts")
    };
    let mut replicas: Vec<_> = (0..3).map(start).collect();

    // Every replica holds some partitions, and together all 8.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all: Vec<Option<Vec<u64>>> = logs.iter().map(|l| consumed(l)).collect();
        let union: HashSet<u64> = all.iter().flatten().flatten().copied().collect();
        if all
            .iter()
            .all(|c| c.as_ref().is_some_and(|c| !c.is_empty()))
            && union.len() == 8
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replicas did not share the partitions: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The first third, then kill -9 replica 0 mid-stream, then the rest.
    let third = EVENTS / 3;
    publish(&r, &msgs[..third]).await;
    let mut got = r
        .collect_until(&listener, Duration::from_secs(120), |g| {
            g.len() >= third / 2
        })
        .await;
    let killed_held = consumed(&logs[0]).unwrap();
    replicas[0].kill().unwrap();
    replicas[0].wait().unwrap();
    publish(&r, &msgs[third..]).await;
    let ids: HashSet<&str> = want.keys().map(String::as_str).collect();
    collect_all(&r, &listener, &mut got, &ids).await;

    // Partitions taken over by the survivors.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let union: HashSet<u64> = logs[1..]
            .iter()
            .filter_map(|l| consumed(l))
            .flatten()
            .collect();
        if union.len() == 8 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "survivors hold {union:?}; replica 0 had {killed_held:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for c in replicas.drain(1..) {
        let o = stop(c);
        assert!(o.status.success(), "survivor exit {:?}", o.status);
    }

    // Every event decided as one process decides it.
    assert_final_outcomes(&got, &want);

    // Filed exactly once: one Communication per filed message on the server.
    let comms = h.all("Communication").await;
    let mut seen = HashSet::new();
    for c in &comms {
        let urn = c["identifier"][0]["value"].as_str().unwrap();
        let id = urn.rsplit(':').next().unwrap().to_owned();
        assert!(seen.insert(id.clone()), "{id} filed twice");
    }
    let want_filed: HashSet<String> = filed.iter().map(|s| s.to_string()).collect();
    assert_eq!(seen, want_filed, "the filed messages, each once");

    // Order kept within each thread: the shared ledger's decision log, in
    // commit order, has each thread's events in their order.
    assert_eq!(
        assert_thread_order(&db).await,
        EVENTS,
        "every event decided"
    );
    // The killed replica holds no lease any more.
    let mut c = sqlx::PgConnection::connect(&db).await.unwrap();
    let killed = replica_of(&logs[0]);
    let owners: Vec<Option<String>> = sqlx::query("SELECT owner FROM partitions")
        .fetch_all(&mut c)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(owners.len(), 8);
    assert!(!owners.contains(&Some(killed)), "{owners:?}");
    drop(c);

    assert_eq!(r.count(&r.cfg.dead_queue).await, 0, "nothing dead-lettered");
    r.cleanup().await;
    drop_db(&db_name).await;
}

/// Final decision per event id of one process over the same stream.
fn baseline(
    msgs: &[(String, String)],
    tmp: &std::path::Path,
) -> HashMap<String, (String, Option<String>, Option<String>)> {
    let file = tmp.join("baseline.ndjson");
    std::fs::write(
        &file,
        msgs.iter()
            .map(|(_, b)| format!("{b}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let dry = dry_run(
        &format!("file:{}", file.display()),
        &format!("dir:{}", tmp.join("baseline").display()),
    );
    final_decisions(&dry.stdout)
}

/// Every event id among outcome events.
fn outcome_ids(got: &[common::amqp::Got]) -> HashSet<String> {
    outcome_json(got)
        .iter()
        .filter_map(|v| v["event_id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_joining_mid_stream_is_handed_partitions_without_reordering_or_rewriting() {
    const EVENTS: usize = 3_000;
    let nhs: Vec<String> = patients("patients.json")
        .iter()
        .map(|p| p["nhs_number"].as_str().unwrap().to_owned())
        .collect();
    let msgs = partitioned(EVENTS, 150, 61, &nhs);
    let tmp = tempfile::tempdir().unwrap();
    let want = baseline(&msgs, tmp.path());
    assert_eq!(want.len(), EVENTS);

    let (db, db_name) = fresh_db("rbrep").await;
    let mut r = Rabbit::new().await;
    r.cfg.partitions = 8;
    r.cfg.lease_secs = 3;
    r.declare().await;
    let listener = r.listen_outcomes().await;
    let env = r.env();
    let logs: Vec<_> = (0..2)
        .map(|i| tmp.path().join(format!("replica{i}.log")))
        .collect();
    let outs: Vec<_> = (0..2).map(|i| tmp.path().join(format!("out{i}"))).collect();
    let start = |i: usize| {
        let mut c = bin();
        let sink = format!("dir:{}", outs[i].display());
        c.args(["run", "--source", &r.url, "--sink", &sink, "--ledger", &db]);
        for (k, v) in &env {
            c.env(k, v);
        }
        c.stdout(Stdio::null())
            .stderr(std::fs::File::create(&logs[i]).unwrap())
            .spawn()
            .expect("binary starts")
    };
    // Alone, the first replica takes all 8 partitions.
    let a = start(0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while consumed(&logs[0]).map_or(0, |c| c.len()) < 8 {
        assert!(
            Instant::now() < deadline,
            "replica 0 did not take the partitions"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    publish(&r, &msgs).await;
    let mut got = r
        .collect_until(&listener, Duration::from_secs(120), |g| {
            g.len() >= EVENTS / 6
        })
        .await;
    // The second joins mid-stream: the first gives half back.
    let b = start(1);
    let ids: HashSet<&str> = want.keys().map(String::as_str).collect();
    collect_all(&r, &listener, &mut got, &ids).await;
    let a_now = consumed(&logs[0]).unwrap_or_default();
    let b_now = consumed(&logs[1]).unwrap_or_default();
    for c in [a, b] {
        assert!(stop(c).status.success());
    }
    assert!(!b_now.is_empty(), "the joining replica consumed nothing");
    assert_eq!(a_now.len() + b_now.len(), 8, "{a_now:?} + {b_now:?}");
    assert!(
        a_now.iter().all(|p| !b_now.contains(p)),
        "{a_now:?} and {b_now:?} overlap"
    );
    let b_ids: Vec<String> = bundles(&outs[1]).iter().map(bundle_event).collect();
    assert!(!b_ids.is_empty(), "the joining replica filed nothing");

    // Decided as one process decides, each filed event written once in all.
    assert_final_outcomes(&got, &want);
    let mut written: Vec<String> = bundles(&outs[0]).iter().map(bundle_event).collect();
    written.extend(b_ids);
    let uniq: HashSet<&String> = written.iter().collect();
    assert_eq!(
        uniq.len(),
        written.len(),
        "an event written twice across the replicas"
    );
    let filed: HashSet<&String> = want
        .iter()
        .filter(|(_, w)| w.0 == "filed")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(uniq, filed, "every filed event written");

    // Thread order in the shared decision log.
    assert_eq!(
        assert_thread_order(&db).await,
        EVENTS,
        "every event decided"
    );
    r.cleanup().await;
    drop_db(&db_name).await;
}
