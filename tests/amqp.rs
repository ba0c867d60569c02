//! Black-box tests of the AMQP source: the real binary against the real
//! RabbitMQ (and, where records are counted on a server, the real FHIR server).

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::amqp::{
    Expected, Got, Rabbit, outcome_json, rabbitmqctl, replicated, spawn_bridge, stop,
};
use common::hfs::{Hfs, assert_communications, expected_communications, free_port, patients};
use common::*;

/// Last outcome event per event id.
fn last_outcomes(got: &[Got]) -> HashMap<String, String> {
    outcome_json(got)
        .into_iter()
        .filter_map(|v| {
            Some((
                v["event_id"].as_str()?.to_owned(),
                v["outcome"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// Every expected event has an outcome event with its final outcome.
fn all_final(got: &[Got], want: &Expected) -> bool {
    let last = last_outcomes(got);
    want.iter()
        .all(|(id, (o, _, _))| last.get(id).is_some_and(|x| x == o))
}

fn report_missing(got: &[Got], want: &Expected) -> String {
    let last = last_outcomes(got);
    let missing: Vec<_> = want
        .iter()
        .filter(|(id, (o, _, _))| last.get(*id) != Some(o))
        .take(10)
        .map(|(id, (o, _, _))| format!("{id}: want {o}, got {:?}", last.get(id)))
        .collect();
    format!(
        "{} of {} events lack their final outcome, e.g. {missing:?}",
        want.iter()
            .filter(|(id, (o, _, _))| last.get(*id) != Some(o))
            .count(),
        want.len()
    )
}

/// Add outcome events to `got` until every expected event has its final outcome.
async fn collect_rest(r: &Rabbit, listener: &str, got: &mut Vec<Got>, want: &Expected, secs: u64) {
    let rest = r
        .collect_until(listener, Duration::from_secs(secs), |g| {
            let mut all = got.clone();
            all.extend_from_slice(g);
            all_final(&all, want)
        })
        .await;
    got.extend(rest);
}

/// The bundle directory holds one bundle per filed event, none twice.
fn assert_filed_once_each(out: &std::path::Path, text: &str, want: &Expected) {
    let ids = bundle_event_ids(out);
    let uniq: HashSet<_> = ids.iter().cloned().collect();
    assert_eq!(uniq.len(), ids.len(), "an event written twice");
    assert_eq!(uniq, filed_messages(text, want));
}

fn dir_sink(d: &std::path::Path) -> String {
    format!("dir:{}", d.display())
}

/// The event of each bundle file, with duplicates.
fn bundle_event_ids(dir: &std::path::Path) -> Vec<String> {
    bundles(dir).iter().map(bundle_event).collect()
}

/// Event ids that must produce a bundle (filed).
fn filed_messages(text: &str, want: &Expected) -> HashSet<String> {
    text.lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            let id = v["id"].as_str()?.to_owned();
            want.get(&id).is_some_and(|w| w.0 == "filed").then_some(id)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_chat_via_rabbitmq_is_filed_the_queue_drains_and_each_decision_has_one_outcome_event()
 {
    let (r, listener) = Rabbit::declared().await;
    let text = std::fs::read_to_string(fixture("ward-chat.ndjson")).unwrap();
    let n = r.publish_lines(&text).await;
    assert_eq!(n, 394);
    assert_eq!(r.count(&r.cfg.queue).await, 394, "backlog is in the queue");

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let bridge = spawn_bridge(
        &r.url,
        &dir_sink(&out),
        &tmp.path().join("ledger.db"),
        &r.env(),
        Stdio::piped(),
    );
    let want = expected();
    let got = r
        .collect_until(&listener, Duration::from_secs(120), |g| all_final(g, &want))
        .await;
    let o = stop(bridge);
    assert!(o.status.success(), "exit status {:?}", o.status);
    assert!(all_final(&got, &want), "{}", report_missing(&got, &want));

    // The queue drained: nothing ready, nothing left unacknowledged (the
    // bridge has exited, so unacknowledged messages would be ready again).
    assert_eq!(r.count(&r.cfg.queue).await, 0, "queue drained");
    assert_eq!(r.count(&r.cfg.dead_queue).await, 0, "nothing dead-lettered");

    // Filed events are in the sink, once each.
    assert_filed_once_each(&out, &text, &want);

    // One outcome event per decision line: the same (event, outcome) pairs
    // as the dry run's decision lines, each once.
    let dry = dry_run(
        &format!("file:{}", fixture("ward-chat.ndjson").display()),
        &dir_sink(&tmp.path().join("dry")),
    );
    let mut lines: Vec<(String, String)> = String::from_utf8_lossy(&dry.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["event_id"].as_str().unwrap().to_owned(),
                v["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let events = outcome_json(&got);
    let mut pairs: Vec<(String, String)> = events
        .iter()
        .map(|v| {
            (
                v["event_id"].as_str().unwrap().to_owned(),
                v["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    lines.sort();
    pairs.sort();
    assert_eq!(pairs, lines, "one outcome event per decision");

    // Contract (ARCHITECTURE §8): fields, routing key, resources, no message text.
    let texts: Vec<String> = text
        .lines()
        .filter_map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .map(str::to_owned)
        })
        .filter(|t| t.len() > 12)
        .collect();
    for (g, v) in got.iter().zip(&events) {
        let keys: HashSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let want_keys: HashSet<&str> = [
            "event_id",
            "platform",
            "room",
            "thread",
            "outcome",
            "reason",
            "patient",
            "resources",
            "decided_at",
        ]
        .into();
        assert_eq!(keys, want_keys);
        assert_eq!(
            g.routing_key,
            format!("{}.matrix", v["outcome"].as_str().unwrap())
        );
        let body = String::from_utf8_lossy(&g.body);
        for t in &texts {
            assert!(
                !body.contains(t.as_str()),
                "outcome event carries message text"
            );
        }
        if v["outcome"] == "filed" {
            let res: Vec<&str> = v["resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap())
                .collect();
            assert!(!res.is_empty(), "a filed event names what it wrote");
            for r in &res {
                assert!(
                    r.starts_with("Communication?identifier=") || r.starts_with("Task/rbt-"),
                    "{r}"
                );
            }
            assert!(v["patient"]["value"].is_string());
        }
    }
    // Events whose decision line has a Task name it among their resources.
    let task_events: HashSet<String> = String::from_utf8_lossy(&dry.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| !v["task"].is_null())
        .map(|v| v["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(task_events.len() > 20, "fixture requests became Tasks");
    for v in &events {
        if task_events.contains(v["event_id"].as_str().unwrap()) && v["outcome"] == "filed" {
            assert!(
                v["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r.as_str().unwrap().starts_with("Task/")),
                "{v}"
            );
        }
    }
    r.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_deliveries_are_dead_lettered_with_a_reason_header_while_the_rest_flows() {
    let (r, listener) = Rabbit::declared().await;
    let reasons: HashMap<String, Option<String>> =
        serde_json::from_str(&std::fs::read_to_string(fixture("malformed-expected.json")).unwrap())
            .unwrap();
    let lines: Vec<String> = std::fs::read_to_string(fixture("malformed.ndjson"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let mut bodies: Vec<Vec<u8>> = lines.iter().map(|l| l.as_bytes().to_vec()).collect();
    // Two more kinds only a queue can carry: a body that is not UTF-8, and one over 1 MiB.
    bodies.push(vec![b'{', 0xff, 0xfe, b'}']);
    let big = format!(
        "{{\"id\":\"$big\",\"room\":\"!r\",\"sender\":\"@s\",\"sent_at\":\"2026-11-20T10:00:00Z\",\"text\":\"{}\"}}",
        "x".repeat(1_100_000)
    );
    bodies.push(big.into_bytes());
    // And valid chat after the poison, which must still flow.
    let good: Vec<String> = std::fs::read_to_string(fixture("ward-chat.ndjson"))
        .unwrap()
        .lines()
        .take(40)
        .map(str::to_owned)
        .collect();
    bodies.extend(good.iter().map(|l| l.as_bytes().to_vec()));
    r.publish(&bodies).await;

    let tmp = tempfile::tempdir().unwrap();
    let bridge = spawn_bridge(
        &r.url,
        &dir_sink(&tmp.path().join("out")),
        &tmp.path().join("ledger.db"),
        &r.env(),
        Stdio::piped(),
    );
    let bad = reasons.values().filter(|v| v.is_some()).count() + 2;
    let valid_ids: HashSet<String> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| reasons[&(i + 1).to_string()].is_none())
        .chain(good.iter().enumerate().map(|(i, l)| (i + 1000, l)))
        .map(|(_, l)| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let got = r
        .collect_until(&listener, Duration::from_secs(60), |g| {
            let evs = outcome_json(g);
            let rejected = evs.iter().filter(|v| v["outcome"] == "rejected").count();
            let seen: HashSet<&str> = evs.iter().filter_map(|v| v["event_id"].as_str()).collect();
            rejected >= bad && valid_ids.iter().all(|i| seen.contains(i.as_str()))
        })
        .await;
    // Still running: poison does not stop the consumer.
    let o = stop(bridge);
    assert!(o.status.success(), "exit status {:?}", o.status);

    let dead = r.take_all(&r.cfg.dead_queue).await;
    assert_eq!(
        dead.len(),
        bad,
        "every malformed delivery dead-lettered once"
    );
    assert_eq!(r.count(&r.cfg.queue).await, 0, "queue drained");
    let mut expected_reasons: Vec<String> = reasons.values().flatten().cloned().collect::<Vec<_>>();
    expected_reasons.push("UTF-8".into());
    expected_reasons.push("larger than".into());
    for d in &dead {
        let why = d
            .headers
            .get("x-recordbridge-reason")
            .unwrap_or_else(|| panic!("no reason header: {:?}", d.headers));
        assert!(!why.is_empty());
        // The original body goes to the dead-letter queue unchanged.
        assert!(
            bodies.contains(&d.body),
            "dead letter body differs from what was published"
        );
    }
    for want in &expected_reasons {
        assert!(
            dead.iter()
                .any(|d| d.headers["x-recordbridge-reason"].contains(want.as_str())),
            "no dead letter with reason containing {want:?}"
        );
    }
    let evs = outcome_json(&got);
    assert_eq!(
        evs.iter().filter(|v| v["outcome"] == "rejected").count(),
        bad,
        "one rejected outcome event per malformed delivery"
    );
    let seen: HashSet<&str> = evs.iter().filter_map(|v| v["event_id"].as_str()).collect();
    for id in &valid_ids {
        assert!(
            seen.contains(id.as_str()),
            "valid event {id} got no outcome"
        );
    }
    r.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_then_restart_loses_nothing_writes_nothing_twice_and_keeps_thread_order()
{
    let h = Hfs::start().await;
    h.seed(&patients("patients.json")).await;
    let (r, listener) = Rabbit::declared().await;
    let text = std::fs::read_to_string(fixture("ward-chat.ndjson")).unwrap();
    r.publish_lines(&text).await;
    let order: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();

    let tmp = tempfile::tempdir().unwrap();
    let ledger = tmp.path().join("ledger.db");
    let sink = format!("fhir:{}", h.base);
    let mut env = r.env();
    env.push(("RECORDBRIDGE_FHIR__CONCURRENCY".into(), "4".into()));
    let mut first = spawn_bridge(&r.url, &sink, &ledger, &env, Stdio::null());
    let before = r
        .collect_until(&listener, Duration::from_secs(120), |g| g.len() >= 120)
        .await;
    assert!(before.len() >= 120, "bridge made progress before the kill");
    first.kill().unwrap(); // SIGKILL: no chance to finish anything
    first.wait().unwrap();
    let filed_before = h.count("Communication").await;
    assert!(
        (filed_before as usize) < expected_communications(None).len(),
        "killed mid-stream, not after the end"
    );

    let second = spawn_bridge(&r.url, &sink, &ledger, &env, Stdio::piped());
    let want = expected();
    let mut got = before;
    collect_rest(&r, &listener, &mut got, &want, 180).await;
    let o = stop(second);
    assert!(o.status.success(), "exit status {:?}", o.status);
    assert!(all_final(&got, &want), "{}", report_missing(&got, &want));
    assert_eq!(r.count(&r.cfg.queue).await, 0, "queue drained");

    // Nothing lost and nothing written twice: one Communication per filed
    // message, counted by identifier, each about the right patient.
    assert_communications(&h, &expected_communications(None)).await;

    // Order within each thread: events reached their first outcome in the
    // order they were published.
    let pos: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut first_seen: Vec<(String, String)> = Vec::new();
    let mut seen = HashSet::new();
    for v in outcome_json(&got) {
        let id = v["event_id"].as_str().unwrap().to_owned();
        if seen.insert(id.clone()) {
            first_seen.push((v["thread"].as_str().unwrap().to_owned(), id));
        }
    }
    let mut by_thread: HashMap<String, Vec<usize>> = HashMap::new();
    for (t, id) in &first_seen {
        by_thread
            .entry(t.clone())
            .or_default()
            .push(pos[id.as_str()]);
    }
    assert!(by_thread.len() > 20);
    for (t, seq) in by_thread {
        assert!(
            seq.windows(2).all(|w| w[0] < w[1]),
            "thread {t} decided out of order: {seq:?}"
        );
    }
    r.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_mid_stream_and_a_restart_completes_without_duplicates() {
    let (r, listener) = Rabbit::declared().await;
    let (text, want, _) = replicated(12);
    r.publish_lines(&text).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let ledger = tmp.path().join("ledger.db");
    let first = spawn_bridge(&r.url, &dir_sink(&out), &ledger, &r.env(), Stdio::piped());
    let before = r
        .collect_until(&listener, Duration::from_secs(60), |g| g.len() >= 300)
        .await;
    let o = stop(first);
    assert!(o.status.success(), "SIGTERM exit status {:?}", o.status);
    let logs = String::from_utf8_lossy(&o.stderr);
    assert!(logs.contains("shutdown requested"), "{logs}");
    assert!(logs.contains("\"interrupted\":true"), "{logs}");
    assert!(
        !all_final(&before, &want),
        "stopped mid-stream, not after the end"
    );
    // Whatever was decided before the stop was acknowledged or is redelivered
    // and recognised: a restart completes the stream.
    let second = spawn_bridge(&r.url, &dir_sink(&out), &ledger, &r.env(), Stdio::null());
    let mut got = before;
    collect_rest(&r, &listener, &mut got, &want, 120).await;
    assert!(stop(second).status.success());
    assert!(all_final(&got, &want), "{}", report_missing(&got, &want));
    assert_eq!(r.count(&r.cfg.queue).await, 0, "queue drained");
    assert_filed_once_each(&out, &text, &want);
    // A graceful stop publishes each outcome once.
    let mut pairs: Vec<_> = outcome_json(&got)
        .iter()
        .map(|v| format!("{}/{}", v["event_id"], v["outcome"]))
        .collect();
    let n = pairs.len();
    pairs.sort();
    pairs.dedup();
    assert_eq!(pairs.len(), n, "an outcome event published twice");
    r.cleanup().await;
}

async fn readyz(port: u16) -> (u16, serde_json::Value) {
    let r = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Poll /readyz until it answers `want` with `broker` connected.
async fn wait_readyz(port: u16, want: u16) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
            let code = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            if code == want && body["broker"] == true {
                return body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "/readyz stayed {code} {body}"
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "health endpoint never answered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_report_the_broker_and_the_sink() {
    let r = Rabbit::new().await;
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut env = r.env();
    env.push((
        "RECORDBRIDGE_HEALTH__LISTEN".into(),
        format!("127.0.0.1:{port}"),
    ));
    let bridge = spawn_bridge(
        &r.url,
        &dir_sink(&tmp.path().join("out")),
        &tmp.path().join("ledger.db"),
        &env,
        Stdio::null(),
    );
    let body = wait_readyz(port, 200).await;
    assert_eq!(body["broker"], true);
    assert_eq!(body["sink"], true);
    let alive = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert_eq!(alive.status().as_u16(), 200);
    assert!(stop(bridge).status.success());

    // A FHIR server that is not there: alive, but not ready.
    let port = free_port();
    let dead = free_port();
    let mut env = r.env();
    env.push((
        "RECORDBRIDGE_HEALTH__LISTEN".into(),
        format!("127.0.0.1:{port}"),
    ));
    let bridge = spawn_bridge(
        &r.url,
        &format!("fhir:http://127.0.0.1:{dead}"),
        &tmp.path().join("ledger2.db"),
        &env,
        Stdio::null(),
    );
    let body = wait_readyz(port, 503).await;
    assert_eq!(body["broker"], true);
    assert_eq!(body["sink"], false);
    let (code, _) = readyz(port).await;
    assert_eq!(code, 503);
    assert!(stop(bridge).status.success());
    r.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhir_server_down_stalls_the_bridge_without_acknowledging_and_it_resumes_when_back() {
    let mut h = Hfs::start().await;
    h.seed(&patients("patients.json")).await;
    let (r, listener) = Rabbit::declared().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut env = r.env();
    env.extend([
        ("RECORDBRIDGE_FHIR__BACKOFF_INITIAL_MS".into(), "50".into()),
        ("RECORDBRIDGE_FHIR__BACKOFF_MAX_MS".into(), "500".into()),
        ("RECORDBRIDGE_FHIR__MAX_RETRIES".into(), "2".into()),
    ]);
    let bridge = spawn_bridge(
        &r.url,
        &format!("fhir:{}", h.base),
        &tmp.path().join("ledger.db"),
        &env,
        Stdio::null(),
    );
    h.stop();
    let text = std::fs::read_to_string(fixture("ward-chat.ndjson")).unwrap();
    r.publish_lines(&text).await;
    // Far beyond the sink's own retry limit: the bridge keeps waiting, files
    // nothing, dead-letters nothing and acknowledges nothing that needs the server.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = r.take_all(&listener).await;
    assert!(
        outcome_json(&during)
            .iter()
            .all(|v| v["outcome"] != "filed"),
        "nothing can be filed while the server is down"
    );
    assert_eq!(r.count(&r.cfg.dead_queue).await, 0, "nothing dead-lettered");
    h.restart().await;
    let want = expected();
    let mut got = during;
    collect_rest(&r, &listener, &mut got, &want, 180).await;
    assert!(stop(bridge).status.success());
    assert!(all_final(&got, &want), "{}", report_missing(&got, &want));
    assert_eq!(r.count(&r.cfg.queue).await, 0, "queue drained");
    assert_communications(&h, &expected_communications(None)).await;
    r.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_file_is_the_topology_the_bridge_declares() {
    definitions_case("definitions.json", &[], "consuming from AMQP").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_definitions_file_is_the_topology_the_bridge_declares() {
    definitions_case(
        "definitions-partitioned.json",
        &[
            ("RECORDBRIDGE_AMQP__PARTITIONS", "8"),
            ("RECORDBRIDGE_AMQP__LEASE_SECS", "3"),
        ],
        "partitions consumed",
    )
    .await;
}

/// Import a definitions file into a fresh vhost; the bridge (with `extra`
/// settings) must accept it as its own topology with `amqp.declare` true and
/// false (its log says `ready`), and refuse a differing delivery limit.
async fn definitions_case(file: &str, extra: &[(&str, &str)], ready: &str) {
    let vhost = format!(
        "rbtest-defs-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    rabbitmqctl(&["add_vhost", &vhost]);
    rabbitmqctl(&["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"]);
    let defs = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/rabbitmq")
            .join(file),
    )
    .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&defs).unwrap();
    v["vhosts"] = serde_json::json!([{"name": vhost}]);
    for section in ["exchanges", "queues", "bindings"] {
        for item in v[section].as_array_mut().unwrap() {
            item["vhost"] = serde_json::json!(vhost);
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("defs.json");
    std::fs::write(&file, v.to_string()).unwrap();
    rabbitmqctl(&["import_definitions", &file.display().to_string()]);

    let url = format!(
        "{}/{vhost}",
        common::amqp::amqp_url().rsplit_once('/').unwrap().0
    );
    let env = |more: &[(&str, &str)]| {
        let mut e: Vec<(String, String)> =
            vec![("RECORDBRIDGE_HEALTH__LISTEN".into(), "off".into())];
        e.extend(
            extra
                .iter()
                .chain(more)
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        e
    };
    let sink = format!("dir:{}", tmp.path().join("out").display());
    // Default settings on the imported topology: declared again without a conflict.
    for declare in ["true", "false"] {
        let mut b = spawn_bridge(
            &url,
            &sink,
            &tmp.path().join("ledger.db"),
            &env(&[("RECORDBRIDGE_AMQP__DECLARE", declare)]),
            Stdio::piped(),
        );
        let mut lines = BufReader::new(b.stderr.take().unwrap()).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut consuming = false;
        while Instant::now() < deadline {
            match lines.next() {
                Some(Ok(l)) if l.contains(ready) => {
                    consuming = true;
                    break;
                }
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        assert!(
            consuming,
            "bridge (declare = {declare}) did not accept the imported topology"
        );
        assert!(stop(b).status.success());
    }
    // A setting that differs from the broker's topology is a clear configuration error.
    let o = bin()
        .args(["run", "--source", &url, "--sink", &sink, "--ledger"])
        .arg(tmp.path().join("ledger.db"))
        .envs(env(&[("RECORDBRIDGE_AMQP__DELIVERY_LIMIT", "11")]))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("PRECONDITION_FAILED"), "{err}");
    assert!(
        !err.contains("guest:guest"),
        "the password is never printed"
    );
    rabbitmqctl(&["delete_vhost", &vhost]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_unreachable_at_start_is_retried_and_sigterm_still_stops_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", free_port());
    let b = spawn_bridge(
        &url,
        &dir_sink(&tmp.path().join("out")),
        &tmp.path().join("ledger.db"),
        &[("RECORDBRIDGE_HEALTH__LISTEN".into(), "off".into())],
        Stdio::piped(),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let o = stop(b);
    assert!(o.status.success(), "exit status {:?}", o.status);
    let logs = String::from_utf8_lossy(&o.stderr);
    assert!(logs.contains("cannot reach the AMQP broker yet"), "{logs}");
    assert!(
        !logs.contains("guest:guest"),
        "the password is never logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_failing_is_dead_lettered_by_the_delivery_limit() {
    use lapin::options::{BasicGetOptions, BasicNackOptions};
    let mut r = Rabbit::new().await;
    r.cfg.delivery_limit = 3;
    r.declare().await;
    r.publish(&[b"{\"id\":\"$poison\"}".to_vec()]).await;
    // A consumer that fails on it every time (as a crash would): returned to the queue.
    let mut deliveries = 0;
    for _ in 0..20 {
        let Some(m) =
            r.ch.basic_get(r.cfg.queue.as_str().into(), BasicGetOptions::default())
                .await
                .unwrap()
        else {
            break;
        };
        deliveries += 1;
        m.delivery
            .acker
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.count(&r.cfg.dead_queue).await == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(deliveries, 4, "delivered up to the limit, then no more");
    let dead = r.take_all(&r.cfg.dead_queue).await;
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].headers.contains_key("x-death"),
        "{:?}",
        dead[0].headers
    );
    assert_eq!(r.count(&r.cfg.queue).await, 0);
    r.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_exchange_deleted_under_the_bridge_is_declared_again_and_flow_resumes() {
    use lapin::options::{ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions};
    use lapin::types::FieldTable;
    let (mut r, listener) = Rabbit::declared().await;
    let tmp = tempfile::tempdir().unwrap();
    let bridge = spawn_bridge(
        &r.url,
        &dir_sink(&tmp.path().join("out")),
        &tmp.path().join("ledger.db"),
        &r.env(),
        Stdio::piped(),
    );
    let lines: Vec<String> = std::fs::read_to_string(fixture("ward-chat.ndjson"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    r.publish(&[lines[0].as_bytes().to_vec()]).await;
    let got = r
        .collect_until(&listener, Duration::from_secs(30), |g| !g.is_empty())
        .await;
    assert_eq!(got.len(), 1, "first outcome arrives");
    // An operator deletes the outcomes exchange (its bindings go with it).
    r.ch.exchange_delete(
        r.cfg.outcomes_exchange.as_str().into(),
        ExchangeDeleteOptions::default(),
    )
    .await
    .unwrap();
    r.publish(&[lines[2].as_bytes().to_vec()]).await;
    // The bridge declares it again once its publish fails; then bind the listener again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ch = r.ch.clone();
        let probe = ch
            .exchange_declare(
                r.cfg.outcomes_exchange.as_str().into(),
                lapin::ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        if probe.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "outcomes exchange never came back"
        );
        r.reconnect().await; // a failed passive declare closes the channel
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    r.ch.queue_bind(
        listener.as_str().into(),
        r.cfg.outcomes_exchange.as_str().into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    r.publish(&[lines[3].as_bytes().to_vec()]).await;
    let id3 = serde_json::from_str::<serde_json::Value>(&lines[3]).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = r
        .collect_until(&listener, Duration::from_secs(30), |g| {
            outcome_json(g)
                .iter()
                .any(|v| v["event_id"] == id3.as_str())
        })
        .await;
    assert!(
        outcome_json(&got)
            .iter()
            .any(|v| v["event_id"] == id3.as_str()),
        "events flow again after the exchange came back"
    );
    let o = stop(bridge);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("publishing channel closed"));
    assert_eq!(r.count(&r.cfg.queue).await, 0, "everything acknowledged");
    r.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_every_decision_by_outcome_and_reason_without_identifiers() {
    let (r, listener) = Rabbit::declared().await;
    let text = std::fs::read_to_string(fixture("ward-chat.ndjson")).unwrap();
    r.publish_lines(&text).await;
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut env = r.env();
    env.push((
        "RECORDBRIDGE_HEALTH__LISTEN".into(),
        format!("127.0.0.1:{port}"),
    ));
    let out = tmp.path().join("out");
    let bridge = spawn_bridge(
        &r.url,
        &dir_sink(&out),
        &tmp.path().join("ledger.db"),
        &env,
        Stdio::null(),
    );
    let want = expected();
    let mut got = Vec::new();
    collect_rest(&r, &listener, &mut got, &want, 120).await;
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(stop(bridge).status.success());

    // Decision lines of a dry run over the same chat, by (outcome, reason).
    let dry = dry_run(
        &format!("file:{}", fixture("ward-chat.ndjson").display()),
        &dir_sink(&tmp.path().join("dry")),
    );
    let mut lines: HashMap<(String, String), u64> = HashMap::new();
    for l in String::from_utf8_lossy(&dry.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        *lines
            .entry((
                v["outcome"].as_str().unwrap().to_owned(),
                v["reason"].as_str().unwrap_or("").to_owned(),
            ))
            .or_default() += 1;
    }
    let mut seen: HashMap<(String, String), u64> = HashMap::new();
    for l in metrics
        .lines()
        .filter(|l| l.starts_with("recordbridge_events_total{"))
    {
        let (labels, n) = l.rsplit_once(' ').unwrap();
        let label = |k: &str| {
            labels
                .split(&format!("{k}=\""))
                .nth(1)
                .and_then(|x| x.split('"').next())
                .unwrap()
                .to_owned()
        };
        seen.insert((label("outcome"), label("reason")), n.parse().unwrap());
    }
    assert_eq!(seen, lines, "one count per decision line");
    let held = want.values().filter(|w| w.0 == "held").count();
    assert!(
        metrics.contains(&format!("recordbridge_held_events {held}\n")),
        "{metrics}"
    );
    assert!(metrics.contains("recordbridge_sink_write_seconds_count "));
    assert!(metrics.contains("recordbridge_event_lag_seconds_bucket"));
    assert!(metrics.contains("recordbridge_oldest_held_age_seconds "));
    for p in common::hfs::patients("patients.json") {
        assert!(!metrics.contains(p["nhs_number"].as_str().unwrap()));
    }
    r.cleanup().await;
}
