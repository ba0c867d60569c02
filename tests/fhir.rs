//! Black-box tests of the FHIR sink: the real binary against a real FHIR
//! server (Helios `hfs`), with a local gateway only for auth and fault injection.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Output;

use common::gateway::{Fault, Gateway, GwAuth};
use common::hfs::{Hfs, assert_communications, expected_communications, patient_ids, patients};
use common::*;

async fn run_bin(args: Vec<String>, envs: Vec<(String, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut c = bin();
        c.args(&args);
        for (k, v) in envs {
            c.env(k, v);
        }
        c.output().unwrap()
    })
    .await
    .unwrap()
}

fn run_args(source: &Path, sink: &str, ledger: &Path) -> Vec<String> {
    vec![
        "run".into(),
        "--source".into(),
        format!("file:{}", source.display()),
        "--sink".into(),
        format!("fhir:{sink}"),
        "--ledger".into(),
        ledger.display().to_string(),
    ]
}

fn fast_retries() -> Vec<(String, String)> {
    vec![
        ("RECORDBRIDGE_FHIR__BACKOFF_INITIAL_MS".into(), "20".into()),
        ("RECORDBRIDGE_FHIR__BACKOFF_MAX_MS".into(), "500".into()),
        ("RECORDBRIDGE_FHIR__MAX_RETRIES".into(), "400".into()),
    ]
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "run failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The fixture events of its first `threads` threads, whole (a thread's
/// decisions depend only on its own events, so the expected decisions hold).
fn whole_threads(threads: usize, path: &Path) -> HashSet<String> {
    let text = std::fs::read_to_string(fixture("ward-chat.ndjson")).unwrap();
    let mut roots = Vec::new();
    let mut keep = Vec::new();
    let mut ids = HashSet::new();
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let id = v["id"].as_str().unwrap().to_owned();
        let root = v["thread"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| id.clone());
        if !roots.contains(&root) && roots.len() < threads {
            roots.push(root.clone());
        }
        if roots.contains(&root) {
            keep.push(l);
            ids.insert(id);
        }
    }
    std::fs::write(path, keep.join("\n")).unwrap();
    ids
}

/// Retry warnings and server errors must not carry patient identifiers (URLs hold them in queries).
fn assert_no_identifiers(logs: &str) {
    assert!(logs.contains("\"level\""), "JSON logs were captured");
    for p in patients("patients.json") {
        for k in ["nhs_number", "hospital_number"] {
            assert!(
                !logs.contains(p[k].as_str().unwrap()),
                "logs contain a patient's {k}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixtures_into_fhir_exactly_once_and_replay_creates_nothing() {
    let h = Hfs::start().await;
    h.seed(&patients("patients.json")).await;
    let tmp = tempfile::tempdir().unwrap();
    let ledger = tmp.path().join("ledger.db");
    let src = fixture("ward-chat.ndjson");
    ok(&run_bin(run_args(&src, &h.base, &ledger), vec![]).await);
    let want = expected_communications(None);
    assert_communications(&h, &want).await;
    let comms = h.count("Communication").await;
    let provs = h.count("Provenance").await;
    let filed = expected().values().filter(|w| w.0 == "filed").count() as u64;
    assert_eq!(
        provs, filed,
        "one Provenance per write (messages, edits and redactions)"
    );
    // the same input again with the same ledger: deduplicated, nothing new
    ok(&run_bin(run_args(&src, &h.base, &ledger), vec![]).await);
    // and with a fresh ledger (as after losing it): conditional creates make the replay change nothing
    let fresh = tmp.path().join("fresh.db");
    ok(&run_bin(run_args(&src, &h.base, &fresh), vec![]).await);
    assert_eq!(h.count("Communication").await, comms);
    assert_eq!(h.count("Provenance").await, provs);
    assert_eq!(
        h.count("Patient").await,
        patients("patients.json").len() as u64,
        "the bridge never creates Patients"
    );
    // redactions left the Communication entered-in-error without its text
    let redacted = h.all("Communication?status=entered-in-error").await;
    assert!(!redacted.is_empty());
    assert!(redacted.iter().all(|c| c.get("payload").is_none()));
}

/// Runs the binary on `events` (one thread file) into `h` and returns the
/// quarantine list's reason per event id.
async fn run_and_list_quarantine(h: &Hfs, events: &[String]) -> HashMap<String, String> {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("in.ndjson");
    std::fs::write(&src, events.join("\n")).unwrap();
    let ledger = tmp.path().join("l.db");
    ok(&run_bin(run_args(&src, &h.base, &ledger), vec![]).await);
    let q = run_bin(
        vec![
            "quarantine".into(),
            "list".into(),
            "--json".into(),
            "--ledger".into(),
            ledger.display().to_string(),
        ],
        vec![],
    )
    .await;
    String::from_utf8_lossy(&q.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["event_id"].as_str().unwrap().to_owned(),
                v["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn ev(id: &str, thread: Option<&str>, text: &str) -> String {
    let mut v = serde_json::json!({"id": id, "platform": "t", "room": "!r", "sender": "@a", "sent_at": "2026-11-21T10:00:00Z", "text": text});
    if let Some(t) = thread {
        v["thread"] = t.into();
    }
    v.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paired_hospital_number_of_another_patient_is_quarantined_not_written() {
    let h = Hfs::start().await;
    let ps = patients("patients.json");
    h.seed(&ps).await;
    let field = |i: usize, k: &str| ps[i][k].as_str().unwrap().to_owned();
    let (a, a_h, b_h) = (
        field(0, "nhs_number"),
        field(0, "hospital_number"),
        field(1, "hospital_number"),
    );
    let unknown_h = "H0000017";
    let reasons = run_and_list_quarantine(
        &h,
        &[
            ev(
                "$same",
                None,
                &format!("pt {a} (H number {a_h}) for review"),
            ),
            ev(
                "$other",
                None,
                &format!("pt {a} (H number {b_h}) for review"),
            ),
            ev("$unk", None, &format!("pt {a} ({unknown_h}) bloods sent")),
        ],
    )
    .await;
    assert_eq!(
        reasons.get("$other").map(String::as_str),
        Some("multi-patient"),
        "another Patient's hospital number beside the NHS number: two patients"
    );
    assert!(!reasons.contains_key("$same"), "{reasons:?}");
    assert!(
        !reasons.contains_key("$unk"),
        "a local number the server does not hold: {reasons:?}"
    );
    let comms = h.all("Communication").await;
    let written: Vec<String> = comms
        .iter()
        .flat_map(|c| c["identifier"].as_array().cloned().unwrap_or_default())
        .filter_map(|i| i["value"].as_str().map(str::to_owned))
        .collect();
    assert!(written.iter().any(|v| v.ends_with("$same")), "{written:?}");
    assert!(written.iter().any(|v| v.ends_with("$unk")), "{written:?}");
    assert!(!written.iter().any(|v| v.contains("$other")), "{written:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_ambiguous_patients_are_quarantined_not_written() {
    let h = Hfs::start().await;
    h.seed(&patients("patients.json")).await;
    h.seed(&patients("duplicate-patients.json")).await;
    let known = patients("patients.json")[0]["nhs_number"]
        .as_str()
        .unwrap()
        .to_owned();
    let unknown = patients("unknown-patients.json")[0]["nhs_number"]
        .as_str()
        .unwrap()
        .to_owned();
    let dup = patients("duplicate-patients.json")[0]["nhs_number"]
        .as_str()
        .unwrap()
        .to_owned();
    let reasons = run_and_list_quarantine(
        &h,
        &[
            ev("$u1", None, &format!("pt {unknown} in bay 2")),
            ev("$u2", Some("$u1"), "bloods sent"),
            ev("$d1", None, &format!("pt {dup} for review")),
            ev("$k1", None, &format!("pt {known} stable")),
            ev("$k2", Some("$k1"), "for discharge"),
        ],
    )
    .await;
    assert_eq!(
        reasons.get("$u1").map(String::as_str),
        Some("unknown-patient")
    );
    assert_eq!(
        reasons.get("$u2").map(String::as_str),
        Some("unknown-patient"),
        "a thread about an unknown patient is not filed elsewhere"
    );
    assert_eq!(
        reasons.get("$d1").map(String::as_str),
        Some("ambiguous-patient")
    );
    assert_eq!(reasons.len(), 3);
    let comms = h.all("Communication").await;
    assert_eq!(
        comms.len(),
        2,
        "only the known patient's messages are written"
    );
    let pats = patient_ids(&h).await;
    for c in comms {
        assert!(pats[c["subject"]["reference"].as_str().unwrap()].contains(&known));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_bundle_is_rejected_with_the_servers_reason() {
    let h = Hfs::start().await;
    let unknown = patients("unknown-patients.json")[0]["nhs_number"]
        .as_str()
        .unwrap()
        .to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("in.ndjson");
    std::fs::write(&src, ev("$r1", None, &format!("pt {unknown}"))).unwrap();
    let ledger = tmp.path().join("l.db");
    // without resolution the conditional patient reference matches nothing: the server answers 4xx
    let o = run_bin(
        run_args(&src, &h.base, &ledger),
        vec![("RECORDBRIDGE_FHIR__RESOLVE_PATIENTS".into(), "false".into())],
    )
    .await;
    ok(&o);
    let l = recordbridge::ledger::Ledger::open(&ledger).await.unwrap();
    let out = l.outcomes().await.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1, "rejected");
    let reason = out[0].2.clone().unwrap();
    assert!(reason.starts_with("HTTP 4"), "{reason}");
    // The reason is the status only: the server's words may quote the event.
    assert_eq!(reason.len(), "HTTP 4xx".len(), "{reason}");
    assert!(
        !reason.contains(&unknown[4..]),
        "the server's text is masked: {reason}"
    );
    assert_eq!(h.count("Communication").await, 0);
    // nothing is lost: the refused event is kept whole in the reject report next to the ledger
    let report = std::fs::read_to_string(tmp.path().join("l.rejected.ndjson")).unwrap();
    let rec: serde_json::Value = serde_json::from_str(report.lines().next().unwrap()).unwrap();
    assert_eq!(rec["event_id"], "$r1");
    assert_eq!(rec["reason"].as_str(), Some(reason.as_str()));
    assert!(
        rec["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "the server's explanation is kept with the event: {rec}"
    );
    let raw: serde_json::Value = serde_json::from_str(rec["raw"].as_str().unwrap()).unwrap();
    assert!(raw["text"].as_str().unwrap().contains(&unknown));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_503_and_429_retry_after_lose_nothing_and_duplicate_nothing() {
    let h = Hfs::start().await;
    h.seed(&patients("patients.json")).await;
    let gw = Gateway::start(&h.base, GwAuth::None).await;
    gw.push_faults([
        Fault::Status(503),
        Fault::Status(503),
        Fault::RetryAfter(429, 1),
        Fault::Status(500),
        Fault::RetryAfter(503, 1),
    ]);
    gw.state
        .fault_every
        .store(5, std::sync::atomic::Ordering::SeqCst);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("in.ndjson");
    let ids = whole_threads(25, &src);
    let o = run_bin(
        run_args(&src, &gw.base, &tmp.path().join("l.db")),
        fast_retries(),
    )
    .await;
    ok(&o);
    assert!(
        gw.state
            .faults_served
            .load(std::sync::atomic::Ordering::SeqCst)
            > 20,
        "faults were injected"
    );
    assert_no_identifiers(&String::from_utf8_lossy(&o.stderr));
    assert_communications(&h, &expected_communications(Some(&ids))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhir_server_stopped_mid_run_and_restarted_loses_nothing() {
    let mut h = Hfs::start().await;
    h.seed(&patients("patients.json")).await;
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture("ward-chat.ndjson");
    let args = run_args(&src, &h.base, &tmp.path().join("l.db"));
    let mut env = fast_retries();
    env.push(("RECORDBRIDGE_FHIR__CONCURRENCY".into(), "2".into()));
    let run = tokio::spawn(run_bin(args, env));
    // wait until the run is writing, then take the server away for a while
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if h.count("Communication").await >= 10 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "run never started writing"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    h.stop();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(
        !run.is_finished(),
        "the run waits for the server rather than finishing without it"
    );
    h.restart().await;
    let o = run.await.unwrap();
    ok(&o);
    let logs = String::from_utf8_lossy(&o.stderr);
    assert!(logs.contains("retrying"), "the outage was noticed");
    assert_no_identifiers(&logs);
    assert_communications(&h, &expected_communications(None)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_beyond_retry_limit_fails_the_run_and_the_rerun_completes() {
    let mut h = Hfs::start().await;
    h.seed(&patients("patients.json")).await;
    h.stop();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("in.ndjson");
    let ids = whole_threads(8, &src);
    let ledger = tmp.path().join("l.db");
    let env = vec![
        ("RECORDBRIDGE_FHIR__MAX_RETRIES".into(), "2".into()),
        ("RECORDBRIDGE_FHIR__BACKOFF_INITIAL_MS".into(), "10".into()),
    ];
    let o = run_bin(run_args(&src, &h.base, &ledger), env.clone()).await;
    assert_eq!(o.status.code(), Some(1), "a run that cannot write fails");
    assert!(String::from_utf8_lossy(&o.stderr).contains("uncommitted"));
    h.restart().await;
    ok(&run_bin(run_args(&src, &h.base, &ledger), env).await);
    assert_communications(&h, &expected_communications(Some(&ids))).await;
}

async fn auth_case(auth: GwAuth, env: Vec<(String, String)>, secret_shown: &str) {
    let h = Hfs::start().await;
    h.seed(&patients("patients.json")).await;
    let gw = Gateway::start(&h.base, auth).await;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("in.ndjson");
    let ids = whole_threads(6, &src);
    let mut env = env;
    env.push((
        "RECORDBRIDGE_FHIR__AUTH__TOKEN_URL".into(),
        gw.token_url.clone(),
    ));
    env.push(("RECORDBRIDGE_LOG__LEVEL".into(), "debug".into()));
    let o = run_bin(
        run_args(&src, &gw.base, &tmp.path().join("l.db")),
        env.clone(),
    )
    .await;
    ok(&o);
    assert_eq!(
        gw.state
            .unauthorised
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains(secret_shown),
        "secret in logs"
    );
    assert_communications(&h, &expected_communications(Some(&ids))).await;
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_static_bearer_token() {
    auth_case(
        GwAuth::Static("s3cret-static-token".into()),
        env(&[
            ("RECORDBRIDGE_FHIR__AUTH__MODE", "bearer"),
            ("RECORDBRIDGE_FHIR__AUTH__SECRET_ENV", "RB_TEST_TOKEN"),
            ("RB_TEST_TOKEN", "s3cret-static-token"),
        ]),
        "s3cret-static-token",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_oauth2_client_credentials() {
    auth_case(
        GwAuth::ClientSecret {
            client_id: "bridge".into(),
            secret: "cl1ent-s3cret".into(),
        },
        env(&[
            ("RECORDBRIDGE_FHIR__AUTH__MODE", "client-credentials"),
            ("RECORDBRIDGE_FHIR__AUTH__CLIENT_ID", "bridge"),
            ("RECORDBRIDGE_FHIR__AUTH__SECRET_ENV", "RB_TEST_SECRET"),
            ("RB_TEST_SECRET", "cl1ent-s3cret"),
        ]),
        "cl1ent-s3cret",
    )
    .await;
}

async fn smart(alg: jsonwebtoken::Algorithm, name: &str) {
    let key = fixture(&format!("keys/smart-{}.key", name.to_lowercase()));
    let public_pem =
        std::fs::read(fixture(&format!("keys/smart-{}.pub", name.to_lowercase()))).unwrap();
    auth_case(
        GwAuth::Jwt {
            client_id: "bridge-smart".into(),
            public_pem,
            alg,
        },
        env(&[
            ("RECORDBRIDGE_FHIR__AUTH__MODE", "smart-backend"),
            ("RECORDBRIDGE_FHIR__AUTH__CLIENT_ID", "bridge-smart"),
            ("RECORDBRIDGE_FHIR__AUTH__ALGORITHM", name),
            (
                "RECORDBRIDGE_FHIR__AUTH__SECRET_FILE",
                key.to_str().unwrap(),
            ),
            (
                "RECORDBRIDGE_FHIR__AUTH__SCOPE",
                "system/Communication.write system/Patient.read",
            ),
        ]),
        "PRIVATE KEY",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_smart_backend_rs384() {
    smart(jsonwebtoken::Algorithm::RS384, "RS384").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_smart_backend_es384() {
    smart(jsonwebtoken::Algorithm::ES384, "ES384").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_refused_and_nothing_is_written() {
    let h = Hfs::start().await;
    let gw = Gateway::start(
        &h.base,
        GwAuth::ClientSecret {
            client_id: "bridge".into(),
            secret: "right".into(),
        },
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("in.ndjson");
    std::fs::write(&src, ev("$w1", None, "pt 943 476 5919")).unwrap();
    let o = run_bin(
        run_args(&src, &gw.base, &tmp.path().join("l.db")),
        env(&[
            ("RECORDBRIDGE_FHIR__AUTH__MODE", "client-credentials"),
            ("RECORDBRIDGE_FHIR__AUTH__CLIENT_ID", "bridge"),
            ("RECORDBRIDGE_FHIR__AUTH__TOKEN_URL", &gw.token_url),
            ("RECORDBRIDGE_FHIR__AUTH__SECRET_ENV", "RB_TEST_SECRET"),
            ("RB_TEST_SECRET", "wrong"),
            ("RECORDBRIDGE_FHIR__MAX_RETRIES", "1"),
            ("RECORDBRIDGE_FHIR__BACKOFF_INITIAL_MS", "10"),
        ]),
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("token endpoint answered 401") && err.contains("uncommitted"),
        "{err}"
    );
    assert!(
        !err.contains("retrying"),
        "refused credentials are not retried"
    );
    assert!(
        gw.state
            .token_refused
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 1
    );
    assert_eq!(
        gw.state.forwarded.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhir_401_stops_the_run_and_rejects_nothing() {
    let h = Hfs::start().await;
    h.seed(&patients("patients.json")).await;
    let gw = Gateway::start(&h.base, GwAuth::Static("right".into())).await;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("in.ndjson");
    let ids = whole_threads(3, &src);
    let ledger = tmp.path().join("l.db");
    let wrong = env(&[
        ("RECORDBRIDGE_FHIR__AUTH__MODE", "bearer"),
        ("RECORDBRIDGE_FHIR__AUTH__SECRET_ENV", "RB_TEST_TOKEN"),
        ("RB_TEST_TOKEN", "wrong"),
    ]);
    let o = run_bin(run_args(&src, &gw.base, &ledger), wrong).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("answered 401"));
    let l = recordbridge::ledger::Ledger::open(&ledger).await.unwrap();
    assert!(
        l.outcomes()
            .await
            .unwrap()
            .iter()
            .all(|o| o.1 != "rejected" && o.1 != "filed"),
        "no event is rejected for an auth fault"
    );
    l.close().await;
    // with the right token the same ledger completes the run
    let right = env(&[
        ("RECORDBRIDGE_FHIR__AUTH__MODE", "bearer"),
        ("RECORDBRIDGE_FHIR__AUTH__SECRET_ENV", "RB_TEST_TOKEN"),
        ("RB_TEST_TOKEN", "right"),
    ]);
    ok(&run_bin(run_args(&src, &gw.base, &ledger), right).await);
    assert_communications(&h, &expected_communications(Some(&ids))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_extra_ca_bundle() {
    let h = Hfs::start().await;
    h.seed(&patients("patients.json")).await;
    let gw = Gateway::start_tls(&h.base, GwAuth::None).await;
    assert!(gw.base.starts_with("https://"));
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("in.ndjson");
    let ids = whole_threads(3, &src);
    // without the test CA the server's certificate is not trusted: nothing is written
    let o = run_bin(
        run_args(&src, &gw.base, &tmp.path().join("a.db")),
        env(&[
            ("RECORDBRIDGE_FHIR__MAX_RETRIES", "1"),
            ("RECORDBRIDGE_FHIR__BACKOFF_INITIAL_MS", "10"),
        ]),
    )
    .await;
    assert_eq!(
        o.status.code(),
        Some(1),
        "an untrusted certificate fails the run"
    );
    assert_eq!(
        gw.state.forwarded.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    // with fhir.ca_bundle the same server is trusted
    let ca = fixture("keys/tls-ca.pem");
    let o = run_bin(
        run_args(&src, &gw.base, &tmp.path().join("b.db")),
        env(&[("RECORDBRIDGE_FHIR__CA_BUNDLE", ca.to_str().unwrap())]),
    )
    .await;
    ok(&o);
    assert_communications(&h, &expected_communications(Some(&ids))).await;
}

/// Search values are escaped by FHIR's search rules (issue 18, item 12): an
/// event id or a patient tag carrying `,` (OR) or `|` (system|value) never
/// matches another record. Checked against the real server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comma_or_bar_in_an_id_or_tag_never_matches_another_record() {
    let h = Hfs::start().await;
    let pats = patients("patients.json");
    h.seed(&pats).await;
    let a = pats[0]["nhs_number"].as_str().unwrap();
    let mut tagged = serde_json::json!({"id": "tagged", "platform": "t", "room": "!r2",
        "sender": "@a", "sent_at": "2026-11-21T10:05:00Z", "text": "obs stable",
        "patient": {"system": "https://fhir.trust.example/Id/hospital-number",
                    "value": format!("H0000000,https://fhir.nhs.uk/Id/nhs-number|{a}")}});
    tagged["thread"] = "tagged".into();
    let events = [
        ev("victim", None, &format!("NHS {a} obs stable")),
        ev(
            "x,urn:ietf:rfc:3986|urn:chat:t:victim",
            None,
            &format!("NHS {a} reviewed, plan unchanged"),
        ),
        ev("a\\b", None, &format!("NHS {a} seen")),
        tagged.to_string(),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("in.ndjson");
    std::fs::write(&src, events.join("\n")).unwrap();
    let ledger = tmp.path().join("l.db");
    ok(&run_bin(run_args(&src, &h.base, &ledger), vec![]).await);
    // Each of the three messages naming A has its own Communication.
    assert_eq!(h.count("Communication").await, 3);
    // A replay with a fresh ledger finds each by its own identifier: nothing new.
    let fresh = tmp.path().join("fresh.db");
    ok(&run_bin(run_args(&src, &h.base, &fresh), vec![]).await);
    assert_eq!(h.count("Communication").await, 3);
    // The tag names no patient on the server: quarantined, never filed to A.
    let q = run_bin(
        vec![
            "quarantine".into(),
            "list".into(),
            "--json".into(),
            "--ledger".into(),
            ledger.display().to_string(),
        ],
        vec![],
    )
    .await;
    let listed = String::from_utf8_lossy(&q.stdout).into_owned();
    assert!(
        listed.lines().any(|l| l.contains("\"tagged\"")),
        "the crafted tag is quarantined: {listed}"
    );
}
