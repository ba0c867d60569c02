//! Black-box tests of the chat platforms' own formats (mappings/formats/):
//! the real binary on the Matrix and Teams fixtures, decided as the same chat
//! in chat event v1; through the bundle directory, a real FHIR server and a
//! real RabbitMQ; mapping-file errors; a third format added as a file alone.
//!
//! Fixtures: fixtures/formats/generate.py writes the ward chat in Matrix and
//! Teams form; the *-examples files are written by hand from the Matrix
//! specification and the Microsoft Graph documentation.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use common::amqp::{Rabbit, outcome_json, spawn_bridge, stop};
use common::hfs::{Hfs, assert_communications, expected_communications, free_port, patients};
use common::*;

fn formats(rel: &str) -> std::path::PathBuf {
    fixture("formats").join(rel)
}

fn src(p: &Path) -> String {
    format!("file:{}", p.display())
}

/// `run --dry-run` of a file in a format, which must succeed; its decision lines.
fn dry(file: &Path, format: &str, mappings: &Path) -> Vec<serde_json::Value> {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_ok(&[
        "run",
        "--dry-run",
        "--source",
        &src(file),
        "--sink",
        &format!("dir:{}", tmp.path().join("out").display()),
        "--format",
        format,
        "--mappings",
        &mappings.display().to_string(),
    ]);
    lines(&out.stdout)
}

fn lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn mappings() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings")
}

fn read_lines(p: &Path) -> Vec<serde_json::Value> {
    lines(&std::fs::read(p).unwrap())
}

/// The two runs made the same decisions, line for line (event ids of `got`
/// translated by `ids`).
fn assert_same_decisions(
    got: &[serde_json::Value],
    want: &[serde_json::Value],
    ids: &HashMap<String, String>,
) {
    assert_eq!(got.len(), want.len(), "number of decision lines");
    for (g, w) in got.iter().zip(want) {
        let mut g = g.clone();
        let id = g["event_id"].as_str().unwrap().to_owned();
        g["event_id"] = ids.get(&id).cloned().unwrap_or(id).into();
        assert_eq!(&g, w, "decision differs from the same chat in v1");
    }
}

#[test]
fn matrix_ward_chat_is_decided_exactly_as_the_same_chat_in_v1() {
    let v1 = dry(&fixture("ward-chat.ndjson"), "v1", &mappings());
    let matrix = dry(&formats("matrix/ward-chat.ndjson"), "matrix", &mappings());
    assert_same_decisions(&matrix, &v1, &HashMap::new());
    // and those are the fixture's expected decisions
    let raw: Vec<u8> = matrix
        .iter()
        .map(|v| format!("{v}\n"))
        .collect::<String>()
        .into_bytes();
    let got = final_decisions(&raw);
    let want = expected();
    assert_eq!(got.len(), want.len());
    for (id, w) in &want {
        assert_eq!(got.get(id), Some(w), "final decision of {id}");
    }
    // The quoted reply fallbacks hold other messages' identifiers; stripped,
    // they did not change a decision (checked above). Make sure there were some.
    let quoted = std::fs::read_to_string(formats("matrix/ward-chat.ndjson"))
        .unwrap()
        .lines()
        .filter(|l| l.contains(r#""body":"> <@"#))
        .count();
    assert!(quoted >= 10, "the fixture has reply fallbacks ({quoted})");
}

#[test]
fn teams_ward_chat_is_decided_exactly_as_the_same_chat_in_v1() {
    // The same chat in v1 is the ward chat without what Teams cannot carry:
    // reactions (Graph has no reaction events) and explicit patient tags.
    let original = read_lines(&fixture("ward-chat.ndjson"));
    let same_in_v1 = read_lines(&formats("teams/ward-chat.v1.ndjson"));
    let derived: Vec<serde_json::Value> = original
        .into_iter()
        .filter(|v| v["type"] != "reaction")
        .map(|mut v| {
            v.as_object_mut().unwrap().remove("patient");
            v
        })
        .collect();
    assert_eq!(
        same_in_v1, derived,
        "teams/ward-chat.v1.ndjson is the ward chat as Teams carries it"
    );

    let ids: HashMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(formats("teams/ids.json")).unwrap()).unwrap();
    let v1 = dry(&formats("teams/ward-chat.v1.ndjson"), "v1", &mappings());
    let teams = dry(&formats("teams/ward-chat.ndjson"), "teams", &mappings());
    assert_same_decisions(&teams, &v1, &ids);
    // Enough of the chat is filed, and tasks found, for the comparison to mean something.
    assert!(v1.iter().filter(|v| v["outcome"] == "filed").count() > 150);
    assert!(v1.iter().filter(|v| !v["task"].is_null()).count() > 20);
}

#[test]
fn matrix_chat_into_the_bundle_directory_writes_what_the_v1_chat_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |file: &Path, format: &str, name: &str| {
        let out = tmp.path().join(name);
        run_ok(&[
            "run",
            "--source",
            &src(file),
            "--sink",
            &format!("dir:{}", out.display()),
            "--ledger",
            &tmp.path().join(format!("{name}.db")).display().to_string(),
            "--format",
            format,
        ]);
        // Per bundle: the event, and the Communication's subject, status and text.
        bundles(&out)
            .iter()
            .map(|b| {
                let c = communication(b).map(|(c, id)| {
                    (
                        id,
                        c["subject"]["identifier"]["value"].to_string(),
                        c["status"].to_string(),
                        c["payload"].to_string(),
                    )
                });
                (bundle_event(b), c)
            })
            .collect::<Vec<_>>()
    };
    let v1 = run(&fixture("ward-chat.ndjson"), "v1", "v1");
    let matrix = run(&formats("matrix/ward-chat.ndjson"), "matrix", "matrix");
    assert!(v1.len() > 150, "bundles written ({})", v1.len());
    let v1: HashSet<_> = v1.into_iter().collect();
    let matrix: HashSet<_> = matrix.into_iter().collect();
    assert_eq!(
        matrix, v1,
        "same bundles: events, subjects, statuses, texts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_chat_into_a_real_fhir_server_files_each_message_once_for_its_patient() {
    let h = Hfs::start().await;
    h.seed(&patients("patients.json")).await;
    let tmp = tempfile::tempdir().unwrap();
    let args: Vec<String> = [
        "run",
        "--source",
        &src(&formats("matrix/ward-chat.ndjson")),
        "--sink",
        &format!("fhir:{}", h.base),
        "--ledger",
        &tmp.path().join("l.db").display().to_string(),
        "--format",
        "matrix",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = tokio::task::spawn_blocking(move || bin().args(&args).output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_communications(&h, &expected_communications(None)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_format_header_selects_the_mapping_per_message_and_an_unknown_one_is_dead_lettered() {
    let (r, listener) = Rabbit::declared().await;
    let matrix: Vec<Vec<u8>> = std::fs::read_to_string(formats("matrix/ward-chat.ndjson"))
        .unwrap()
        .lines()
        .map(|l| l.as_bytes().to_vec())
        .collect();
    let n = matrix.len();
    // The bridge's own format stays v1: the header alone selects Matrix.
    r.publish_format(&matrix, "matrix").await;
    // A Matrix membership event (state, not chat) and an unknown format.
    let member = br#"{"type":"m.room.member","event_id":"$member1","room_id":"!ward7:trust.example","sender":"@ada:trust.example","state_key":"@ada:trust.example","origin_server_ts":1795158348000,"content":{"membership":"join"}}"#.to_vec();
    r.publish_format(std::slice::from_ref(&member), "matrix")
        .await;
    let unknown = br#"{"id":"$x1","room":"!r","sender":"@s","sent_at":"2026-11-20T10:00:00Z","text":"hello"}"#.to_vec();
    r.publish_format(std::slice::from_ref(&unknown), "telegram")
        .await;
    // An end-to-end encrypted event (the specification's m.room.encrypted shape).
    let encrypted = br#"{"type":"m.room.encrypted","event_id":"$enc1","room_id":"!ward7:trust.example","sender":"@ada:trust.example","origin_server_ts":1795158349000,"content":{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":"AwgAEnACgAkLmt6qF84IK++J7UDH2Za1YVchHyprqTqsg","device_id":"RJYKSTBOIE","sender_key":"IlRMeOPX2e0MurIyfWEucYBRVOEEUMrOHqn/8mLqMjA","session_id":"X3lUlvLELLYxeTx4yOVu6UDpasGEVO0Jbu+QFnm0P6g"}}"#.to_vec();
    r.publish_format(std::slice::from_ref(&encrypted), "matrix")
        .await;

    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut env = r.env();
    env.push((
        "RECORDBRIDGE_HEALTH__LISTEN".into(),
        format!("127.0.0.1:{port}"),
    ));
    let bridge = spawn_bridge(
        &r.url,
        &format!("dir:{}", tmp.path().join("out").display()),
        &tmp.path().join("ledger.db"),
        &env,
        Stdio::null(),
    );
    let want = expected();
    let done = |g: &[common::amqp::Got]| {
        let evs = outcome_json(g);
        let mut last: HashMap<&str, &str> = HashMap::new();
        for v in &evs {
            if let (Some(id), Some(o)) = (v["event_id"].as_str(), v["outcome"].as_str()) {
                last.insert(id, o);
            }
        }
        want.iter()
            .all(|(id, w)| last.get(id.as_str()) == Some(&w.0.as_str()))
            && last.get("$member1") == Some(&"ignored")
            && last.get("$enc1") == Some(&"ignored")
            && evs.iter().any(|v| v["outcome"] == "rejected")
    };
    let got = r
        .collect_until(&listener, Duration::from_secs(120), done)
        .await;
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let o = stop(bridge);
    // The encrypted event is counted apart (an alert), with its own reason.
    assert!(
        metrics.contains("recordbridge_encrypted_events_total{platform=\"matrix\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("recordbridge_events_total{outcome=\"ignored\",reason=\"encrypted\"} 1\n"),
        "{metrics}"
    );
    let enc: Vec<_> = outcome_json(&got)
        .into_iter()
        .filter(|v| v["event_id"] == "$enc1")
        .collect();
    assert_eq!(enc.len(), 1);
    assert_eq!(enc[0]["reason"], "encrypted");
    assert!(o.status.success(), "exit status {:?}", o.status);
    assert!(
        done(&got),
        "not every event got its expected outcome ({} outcome events)",
        got.len()
    );
    assert_eq!(n, want.len());

    let evs = outcome_json(&got);
    let state: Vec<_> = got
        .iter()
        .zip(&evs)
        .filter(|(_, v)| v["reason"] == "state-event")
        .collect();
    assert_eq!(state.len(), 1, "one outcome for the state event");
    assert_eq!(state[0].1["event_id"], "$member1");
    assert_eq!(state[0].1["outcome"], "ignored");
    assert_eq!(state[0].0.routing_key, "ignored.matrix");

    let dead = r.take_all(&r.cfg.dead_queue).await;
    assert_eq!(dead.len(), 1, "only the unknown format is dead-lettered");
    assert_eq!(
        dead[0].body, unknown,
        "dead letter is the body as published"
    );
    let why = &dead[0].headers["x-recordbridge-reason"];
    assert!(
        why.contains("`telegram` is not a known format") && why.contains("matrix"),
        "reason names the format and the known ones: {why}"
    );
    assert_eq!(r.count(&r.cfg.queue).await, 0, "queue drained");
    r.cleanup().await;
}

/// `check --mappings DIR --format F --sample FILE`.
fn check(dir: &Path, format: &str, sample: &Path) -> Output {
    bin()
        .args([
            "check",
            "--mappings",
            &dir.display().to_string(),
            "--format",
            format,
            "--sample",
            &sample.display().to_string(),
        ])
        .output()
        .unwrap()
}

/// Check output equals the hand-written expectation (times compared as instants).
fn assert_check_output(out: &Output, expected: &Path) {
    assert!(
        out.status.success(),
        "check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = lines(&out.stdout);
    let want = read_lines(expected);
    assert_eq!(got.len(), want.len(), "one output line per sample event");
    let instant =
        |v: &serde_json::Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    for (mut g, mut w) in got.into_iter().zip(want) {
        if g.get("event").is_some() && w.get("event").is_some() {
            assert_eq!(
                instant(&g["event"]["sent_at"]),
                instant(&w["event"]["sent_at"]),
                "line {}",
                w["line"]
            );
            g["event"]["sent_at"] = serde_json::Value::Null;
            w["event"]["sent_at"] = serde_json::Value::Null;
        }
        assert_eq!(g, w, "line {}", w["line"]);
    }
}

/// The hand-written examples: Matrix specification events and Microsoft
/// Graph chatMessage resources, each with what it must become.
#[test]
fn check_shows_what_matrix_specification_and_graph_examples_become() {
    for (format, examples) in [
        ("matrix", "matrix/spec-examples"),
        ("teams", "teams/graph-examples"),
    ] {
        let out = check(&mappings(), format, &formats(&format!("{examples}.ndjson")));
        assert_check_output(&out, &formats(&format!("{examples}.expected.ndjson")));
    }
}

#[test]
fn state_and_unknown_events_are_decided_ignored_with_a_reason_not_rejected() {
    let got = dry(
        &formats("matrix/spec-examples.ndjson"),
        "matrix",
        &mappings(),
    );
    let by_id: HashMap<&str, &serde_json::Value> = got
        .iter()
        .map(|v| (v["event_id"].as_str().unwrap(), v))
        .collect();
    assert_eq!(
        by_id["$1432735824413PhrSn:example.org"]["outcome"],
        "ignored"
    );
    assert_eq!(
        by_id["$1432735824413PhrSn:example.org"]["reason"],
        "state-event"
    );
    assert_eq!(
        by_id["$1432735824414PhrSn:example.org"]["outcome"],
        "ignored"
    );
    // m.room.encrypted: the bridge cannot read it, and says so (issue 16 item 13).
    assert_eq!(
        by_id["$1432735824414PhrSn:example.org"]["reason"],
        "encrypted"
    );
    assert!(
        got.iter().all(|v| v["outcome"] != "rejected"),
        "nothing rejected: {got:?}"
    );
}

#[test]
fn a_sample_event_that_does_not_fit_its_mapping_is_an_error_naming_rule_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = tmp.path().join("s.ndjson");
    // A Matrix message without a sender; then a good one.
    std::fs::write(
        &sample,
        "{\"type\":\"m.room.message\",\"event_id\":\"$a\",\"room_id\":\"!r\",\"origin_server_ts\":1,\"content\":{\"msgtype\":\"m.text\",\"body\":\"hi\"}}\n\
         {\"type\":\"m.room.message\",\"event_id\":\"$b\",\"room_id\":\"!r\",\"sender\":\"@s\",\"origin_server_ts\":1,\"content\":{\"msgtype\":\"m.text\",\"body\":\"hi\"}}\n",
    )
    .unwrap();
    let out = check(&mappings(), "matrix", &sample);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a sample that does not map: exit 1"
    );
    let got = lines(&out.stdout);
    let err = got[0]["error"].as_str().expect("line 1 is an error");
    assert!(
        err.contains("rule `message`")
            && err.contains("field `sender`")
            && err.contains("matrix.toml:"),
        "{err}"
    );
    assert_eq!(got[1]["event"]["sender"], "@s");
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn mapping_file_errors_name_the_file_the_line_and_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let bad_path = "[format]\nplatform = \"webhook\"\n\n[fields]\nid = \"/data/id\"\nroom = \"/data/conversation\"\nsender = \"data/author/id\"\nsent_at = \"/data/created_at\"\n\n[[rule]]\nname = \"created\"\n[rule.fields]\ntext = \"/data/text\"\n";
    let missing = "[format]\nplatform = \"webhook\"\n\n[fields]\nid = \"/data/id\"\nsender = \"/data/author/id\"\nsent_at = \"/data/created_at\"\n\n[[rule]]\nname = \"created\"\n[rule.fields]\ntext = \"/data/text\"\n";
    let cases = [
        (
            "bad-path",
            bad_path,
            "sender",
            line_of(bad_path, "sender ="),
            "must start with `/`",
        ),
        (
            "missing",
            missing,
            "room",
            line_of(missing, "[[rule]]"),
            "room",
        ),
    ];
    for (name, text, field, line, problem) in cases {
        let dir = tmp.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        let file = dir.join(format!("{name}.toml"));
        std::fs::write(&file, text).unwrap();
        let want = format!("{}:{line}: field `{field}`: ", file.display());
        // check: exit 2 and the error.
        let out = bin()
            .args(["check", "--mappings", &dir.display().to_string()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(
            err.contains(&want) && err.contains(problem),
            "{name}: want {want}…{problem}, got: {err}"
        );
        // run refuses to start, with the same error, as a configuration error.
        let out = bin()
            .args([
                "run",
                "--dry-run",
                "--source",
                &src(&fixture("ward-chat.ndjson")),
                "--sink",
                &format!("dir:{}", tmp.path().join("out").display()),
                "--mappings",
                &dir.display().to_string(),
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(&want), "{name}: {err}");
        assert!(
            out.stdout.is_empty(),
            "nothing decided with a broken mapping"
        );
    }
    // An unknown --format is a configuration error that lists the known ones.
    let out = bin()
        .args([
            "run",
            "--dry-run",
            "--source",
            &src(&fixture("ward-chat.ndjson")),
            "--sink",
            &format!("dir:{}", tmp.path().join("out").display()),
            "--format",
            "telegram",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`telegram` is not a known format (known: v1, matrix, teams"),
        "{err}"
    );
}

/// A generic webhook format, declared only by a mapping file written here.
const WEBHOOK: &str = r#"# A generic chat webhook: {"event": "...", "data": {...}}
[format]
platform = "webhook"
description = "Generic chat webhook JSON"
id = "/data/id"
type = "/event"

[fields]
id = "/data/id"
room = "/data/conversation"
thread = "/data/thread_id"
sender = "/data/author/id"
sender_name = "/data/author/name"
sender_role = "/data/author/role"
sent_at = "/data/created_at"

[[rule]]
name = "created"
when = { path = "/event", equals = "message.created" }
[rule.fields]
type = { const = "message" }
reply_to = "/data/in_reply_to"
text = "/data/text"
mentions = "/data/mentions/*/id"
patient = { fields = { system = "/data/patient/system", value = "/data/patient/value" } }

[[rule]]
name = "updated"
when = { path = "/event", equals = "message.updated" }
[rule.fields]
type = { const = "edit" }
target = "/data/message_id"
text = "/data/text"
mentions = "/data/mentions/*/id"

[[rule]]
name = "deleted"
when = { path = "/event", equals = "message.deleted" }
[rule.fields]
type = { const = "redaction" }
target = "/data/message_id"

[[rule]]
name = "reaction"
when = { path = "/event", equals = "reaction.added" }
[rule.fields]
type = { const = "reaction" }
target = "/data/message_id"
key = "/data/emoji"
"#;

/// The ward chat as webhook JSON (test data made here, from the v1 fixture).
fn to_webhook(v: &serde_json::Value) -> serde_json::Value {
    let kind = v["type"].as_str().unwrap();
    let event = match kind {
        "message" => "message.created",
        "edit" => "message.updated",
        "redaction" => "message.deleted",
        "reaction" => "reaction.added",
        other => panic!("{other}"),
    };
    let mut data = serde_json::json!({
        "id": v["id"], "conversation": v["room"], "thread_id": v["thread"],
        "author": {"id": v["sender"], "name": v["sender_name"], "role": v["sender_role"]},
        "created_at": v["sent_at"], "text": v["text"], "in_reply_to": v["reply_to"],
        "message_id": v["target"], "emoji": v["key"], "patient": v["patient"],
        "mentions": v["mentions"].as_array().map(|m| m.iter().map(|id| serde_json::json!({"id": id})).collect::<Vec<_>>()),
    });
    data.as_object_mut().unwrap().retain(|_, x| !x.is_null());
    serde_json::json!({"event": event, "data": data, "delivery": {"attempt": 1}})
}

#[test]
fn a_third_format_added_as_a_mapping_file_alone_is_decided_as_v1() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("formats");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("webhook.toml"), WEBHOOK).unwrap();
    let mut text: String = read_lines(&fixture("ward-chat.ndjson"))
        .iter()
        .map(|v| format!("{}\n", to_webhook(v)))
        .collect();
    // and an event type the file does not map
    text.push_str(
        r#"{"event":"typing.started","data":{"id":"t1","conversation":"!ward7:trust.example"}}"#,
    );
    text.push('\n');
    let file = tmp.path().join("webhook.ndjson");
    std::fs::write(&file, &text).unwrap();

    // check lists the format and maps every sample event
    let out = check(&dir, "webhook", &file);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("format `webhook`"), "{err}");
    let shown = lines(&out.stdout);
    let original = read_lines(&fixture("ward-chat.ndjson"));
    for (s, o) in shown.iter().zip(&original) {
        let mut e = s["event"].clone();
        e["platform"] = o["platform"].clone();
        let mut o = o.clone();
        // chrono writes Z as +00:00; compare as instants
        e["sent_at"] = serde_json::Value::Null;
        o["sent_at"] = serde_json::Value::Null;
        assert_eq!(e, o, "webhook event maps back to the v1 event");
    }
    assert_eq!(
        shown.last().unwrap()["ignored"]["reason"],
        "unsupported-event-type"
    );

    // the pipeline decides it as the v1 chat
    let v1 = dry(&fixture("ward-chat.ndjson"), "v1", &mappings());
    let mut webhook = dry(&file, "webhook", &dir);
    let typing = webhook
        .iter()
        .position(|v| v["event_id"] == "t1")
        .expect("a line for t1");
    let typing = webhook.remove(typing);
    assert_eq!(typing["outcome"], "ignored");
    assert_eq!(typing["reason"], "unsupported-event-type");
    assert_same_decisions(&webhook, &v1, &HashMap::new());
}

// ---------------------------------------------------------------------------
// Real platform payload shapes (issue 16): fixtures/formats/*/{spec,graph}-shapes
// hold events in the exact shapes of the Matrix specification's and the
// Microsoft Graph documentation's examples, with clinical content written for
// them; the *.labels.ndjson beside each says what each line must become.

/// What a Communication carries, as one text: its strings and its
/// attachments' titles and URLs.
fn carried(c: &serde_json::Value) -> String {
    let mut s = String::new();
    for p in c["payload"].as_array().into_iter().flatten() {
        if let Some(t) = p["contentString"].as_str() {
            s.push_str(t);
        }
        for k in ["title", "url", "contentType"] {
            if let Some(t) = p["contentAttachment"][k].as_str() {
                s.push_str(&format!(" {t}"));
            }
        }
        s.push('\n');
    }
    s
}

fn validate_bundles(dir: &Path) {
    let Ok(schema) = std::env::var("RECORDBRIDGE_TEST_FHIR_SCHEMA") else {
        assert!(
            std::env::var("CI").is_err(),
            "RECORDBRIDGE_TEST_FHIR_SCHEMA must be set in CI (deploy/local/test.sh sets it)"
        );
        eprintln!("RECORDBRIDGE_TEST_FHIR_SCHEMA not set: FHIR validation skipped");
        return;
    };
    let o = std::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/local/validate_bundles.py"))
        .args(["--schema", &schema, "--r4b", "error"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "bundles invalid (R4 schema or fhir.resources):\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Each line of a spec-shape fixture is decided as labelled; nothing is
/// rejected; every Communication carries content (or is entered-in-error
/// and keeps its facts); the final record of each message carries what its
/// label says and lacks what it must not show; partOf and inResponseTo point
/// at the thread root's and the replied-to message's Communication; both
/// validators accept every bundle. With `only`, the decisions and records
/// checked are those of that item of issue 16 (a record belongs to its own
/// line's item and to the items of the edits and redactions that target it).
fn spec_shapes(file: &str, format: &str, only: Option<u64>) {
    let mine = |items: &[u64]| only.is_none_or(|n| items.contains(&n));
    let events = read_lines(&formats(&format!("{file}.ndjson")));
    let labels = read_lines(&formats(&format!("{file}.labels.ndjson")));
    assert_eq!(events.len(), labels.len());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let sink = format!("dir:{}", out.display());
    let path = formats(&format!("{file}.ndjson"));
    // What each line becomes in chat event v1 (thread, reply).
    let checked = bin()
        .args([
            "check",
            "--format",
            format,
            "--sample",
            &path.display().to_string(),
        ])
        .output()
        .unwrap();
    let checked = lines(&checked.stdout);
    let v1: HashMap<u64, serde_json::Value> = checked
        .iter()
        .filter_map(|l| Some((l["line"].as_u64()?, l.get("event")?.clone())))
        .collect();
    // The id the mapping gives each line (an event's, or an ignored one's).
    let ids: HashMap<u64, String> = checked
        .iter()
        .filter_map(|l| {
            let id = l["event"]["id"].as_str().or(l["ignored"]["id"].as_str())?;
            Some((l["line"].as_u64()?, id.to_owned()))
        })
        .collect();
    let dry = bin()
        .args([
            "run",
            "--dry-run",
            "--format",
            format,
            "--source",
            &src(&path),
            "--sink",
            &sink,
        ])
        .output()
        .unwrap();
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let decisions = lines(&dry.stdout);
    assert!(
        decisions.iter().all(|d| d["outcome"] != "rejected"),
        "nothing rejected: {}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let mut last: HashMap<String, serde_json::Value> = HashMap::new();
    for d in decisions {
        last.insert(d["event_id"].as_str().unwrap_or("").to_owned(), d);
    }
    let mut wrong = Vec::new();
    for (e, l) in events.iter().zip(&labels) {
        let id = ids[&l["line"].as_u64().unwrap()].clone();
        // An edit of a message never seen is decided as that message.
        let raw = e["id"]
            .as_str()
            .or(e["event_id"].as_str())
            .unwrap()
            .to_owned();
        if !mine(&[l["item"].as_u64().unwrap()]) {
            continue;
        }
        let d = last.get(&id).or_else(|| last.get(&raw));
        let got = d.map(|d| (d["outcome"].clone(), d["patient"]["value"].clone()));
        let want = (l["expect"].clone(), l["patient"].clone());
        if let Some(why) = l["pending"].as_str() {
            // Labelled as it must become, but not built yet: it must still
            // differ, so the label's `pending` is removed when it is built.
            assert_ne!(
                got.as_ref(),
                Some(&want),
                "line {} is done: remove `pending` ({why})",
                l["line"]
            );
            continue;
        }
        // An ignored event's label may say why; the reason must say the same.
        let why = l["why"].as_str().and_then(|w| match w {
            "encrypted" => Some("encrypted"),
            "edit-by-other-sender" => Some("edit-not-by-sender"),
            "other-room" => Some("target-in-other-room"),
            "state" => Some("state-event"),
            _ => None,
        });
        if let (Some(why), Some(d)) = (why, d)
            && d["reason"] != why
        {
            wrong.push(format!(
                "line {}: reason {} not {why}",
                l["line"], d["reason"]
            ));
        }
        if got.as_ref() != Some(&want) {
            wrong.push(format!(
                "line {} (item {}): {:?} not {want:?} ({})",
                l["line"],
                l["item"],
                got,
                d.map(|d| d["reason"].to_string()).unwrap_or_default()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{file}: decisions differ from labels:\n{}",
        wrong.join("\n")
    );

    run_ok(&[
        "run",
        "--format",
        format,
        "--source",
        &src(&path),
        "--sink",
        &sink,
    ]);
    let bs = bundles(&out);
    assert!(!bs.is_empty());
    let prefix = format!("urn:chat:{format}:");
    let mut records: HashMap<String, serde_json::Value> = HashMap::new();
    for b in &bs {
        // R4: only a POST may leave out its entry's fullUrl.
        for e in b["entry"].as_array().unwrap() {
            assert!(
                e["fullUrl"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("urn:uuid:")),
                "{file}: an entry without fullUrl: {}",
                e["request"]
            );
        }
        for c in b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["resource"])
        {
            if c["resourceType"] != "Communication" {
                continue;
            }
            let id = c["identifier"][0]["value"].as_str().unwrap();
            let id = id.strip_prefix(&prefix).unwrap().to_owned();
            if c["status"] == "entered-in-error" {
                assert!(
                    c["payload"].is_null(),
                    "{id}: a withdrawn record shows no content"
                );
                assert!(
                    c["sent"].is_string() && c["sender"].is_object(),
                    "{id}: a withdrawn record keeps when and who: {c}"
                );
            } else {
                assert!(
                    !carried(c).trim().is_empty(),
                    "{id}: an empty Communication: {c}"
                );
            }
            records.insert(id, c.clone());
        }
    }
    let ref_of = |id: &str| {
        format!(
            "Communication?identifier=urn:ietf:rfc:3986|urn:chat:{format}:{}",
            id.replace('#', "%23").replace('+', "%2B").replace('/', "/")
        )
    };
    let by_id: HashMap<&str, &serde_json::Value> = v1
        .values()
        .filter_map(|e| Some((e["id"].as_str()?, e)))
        .collect();
    let mut links = 0;
    let mut checked = 0;
    for (e, l) in events.iter().zip(&labels) {
        let Some(rec) = l.get("record").filter(|r| !r.is_null()) else {
            continue;
        };
        let me = v1[&l["line"].as_u64().unwrap()]["id"].clone();
        let items: Vec<u64> = labels
            .iter()
            .filter(|o| {
                *o == l
                    || v1
                        .get(&o["line"].as_u64().unwrap())
                        .is_some_and(|x| x["target"] == me)
            })
            .map(|o| o["item"].as_u64().unwrap())
            .collect();
        if !mine(&items) {
            continue;
        }
        checked += 1;
        let raw = e["id"]
            .as_str()
            .or(e["event_id"].as_str())
            .unwrap()
            .to_owned();
        let c = records
            .get(&raw)
            .unwrap_or_else(|| panic!("{file} line {}: no record written", l["line"]));
        assert_eq!(c["status"], rec["status"], "{file} line {}", l["line"]);
        let text = carried(c);
        let strs = |k: &str| {
            rec[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect::<Vec<_>>()
        };
        let missing: Vec<_> = strs("carries")
            .into_iter()
            .filter(|s| !text.contains(s))
            .collect();
        let shown: Vec<_> = strs("lacks")
            .into_iter()
            .filter(|s| text.contains(s))
            .collect();
        if let Some(why) = rec["pending"].as_str() {
            assert!(
                !missing.is_empty() || !shown.is_empty(),
                "{file} line {}: the record is done: remove `pending` ({why})",
                l["line"]
            );
        } else {
            assert!(
                missing.is_empty(),
                "{file} line {}: record lacks {missing:?}: {text}",
                l["line"]
            );
            assert!(
                shown.is_empty(),
                "{file} line {}: record shows {shown:?}",
                l["line"]
            );
        }
        // Thread links: partOf is the thread root's record, inResponseTo the replied-to message's.
        let ev = &v1[&l["line"].as_u64().unwrap()];
        // The conversation's root: the thread root, or for a reply outside
        // a thread the first message of the chain it answers.
        let mut root = ev["thread"].as_str();
        let mut at = ev;
        while root.is_none() {
            let Some(r) = at["reply_to"].as_str() else {
                break;
            };
            match by_id.get(r) {
                Some(up) if up["reply_to"].is_string() || up["thread"].is_string() => {
                    root = up["thread"].as_str();
                    at = up;
                }
                _ => root = Some(r),
            }
        }
        let root = root.filter(|r| records.contains_key(*r));
        let part_of = c["partOf"][0]["reference"].as_str();
        assert_eq!(
            part_of,
            root.map(ref_of).as_deref(),
            "{file} line {}: partOf",
            l["line"]
        );
        let reply = ev["reply_to"].as_str().filter(|r| records.contains_key(*r));
        let in_response = c["inResponseTo"][0]["reference"].as_str();
        assert_eq!(
            in_response,
            reply.map(ref_of).as_deref(),
            "{file} line {}: inResponseTo",
            l["line"]
        );
        links += usize::from(root.is_some()) + usize::from(reply.is_some());
    }
    if only.is_none() {
        assert!(
            links >= 3,
            "{file}: the fixture links messages to thread roots and replies"
        );
    }
    let n = only.map_or(1, |n| labels.iter().filter(|l| l["item"] == n).count());
    assert!(
        n > 0 && (checked > 0 || only.is_some()),
        "{file}: item {only:?} has lines"
    );
    validate_bundles(&out);
}

#[test]
fn matrix_specification_shapes_are_filed_as_labelled() {
    spec_shapes("matrix/spec-shapes", "matrix", None);
}

#[test]
fn graph_documentation_shapes_are_filed_as_labelled() {
    spec_shapes("teams/graph-shapes", "teams", None);
}

const MATRIX: (&str, &str) = ("matrix/spec-shapes", "matrix");
const TEAMS: (&str, &str) = ("teams/graph-shapes", "teams");

fn item(files: &[(&str, &str)], n: u64) {
    for (file, format) in files {
        spec_shapes(file, format, Some(n));
    }
}

#[test]
fn item01_an_edit_by_another_sender_leaves_the_record_as_it_was() {
    item(&[MATRIX], 1);
}

#[test]
fn item02_graph_deletions_without_sender_or_body_withdraw_the_record() {
    item(&[TEAMS], 2);
}

#[test]
fn item03_a_message_first_seen_already_edited_is_filed_with_its_content() {
    item(&[TEAMS], 3);
}

#[test]
fn item04_replies_outside_a_thread_join_the_conversation_they_answer() {
    item(&[MATRIX, TEAMS], 4);
}

#[test]
fn item05_redacting_an_edit_brings_back_the_content_before_it() {
    item(&[MATRIX], 5);
}

#[test]
fn item06_what_was_said_is_carried_never_an_empty_record() {
    item(&[MATRIX, TEAMS], 6);
}

#[test]
fn item07_attachment_urls_and_content_types_are_valid_fhir() {
    item(&[TEAMS], 7);
}

#[test]
fn item08_a_withdrawn_record_keeps_time_sender_and_links() {
    item(&[MATRIX], 8);
}

#[test]
fn item11_only_a_replys_own_fallback_quote_is_removed() {
    item(&[MATRIX], 11);
}

#[test]
fn item12_edits_and_redactions_from_another_room_are_not_applied() {
    item(&[MATRIX], 12);
}

#[test]
fn item13_an_encrypted_event_is_ignored_as_encrypted() {
    item(&[MATRIX], 13);
}

/// `--dry-run` writes decision lines in input order: ignored and rejected
/// lines where they are read, not ahead of the events being decided.
#[test]
fn dry_run_keeps_input_order_with_ignored_and_rejected_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let mut body = String::new();
    let mut want = Vec::new();
    for (i, l) in std::fs::read_to_string(formats("matrix/spec-shapes.ndjson"))
        .unwrap()
        .lines()
        .enumerate()
    {
        body.push_str(l);
        body.push('\n');
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        want.push(Some(v["event_id"].as_str().unwrap().to_owned()));
        if i % 5 == 2 {
            body.push_str("{not json\n"); // rejected where it is read
            want.push(None);
        }
    }
    let path = tmp.path().join("in.ndjson");
    std::fs::write(&path, body).unwrap();
    let o = bin()
        .args([
            "run",
            "--dry-run",
            "--format",
            "matrix",
            "--source",
            &src(&path),
        ])
        .args([
            "--sink",
            &format!("dir:{}", tmp.path().join("out").display()),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // First line of each event, in the order written (a held message that
    // is filed later has a second line then).
    let mut seen = HashSet::new();
    let got: Vec<Option<String>> = lines(&o.stdout)
        .into_iter()
        .filter(|d| match d["event_id"].as_str() {
            Some(id) => seen.insert(id.to_owned()),
            None => true,
        })
        .map(|d| d["event_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(got, want);
}
