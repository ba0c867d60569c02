//! Quarantine review: show, resolve and discard by a person, with the audit
//! trail in the ledger and as FHIR AuditEvents (bundle directory and hfs).

mod common;

use std::process::Output;

use common::hfs::{Hfs, patients};
use common::*;

const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";

fn rb(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn resolve(ledger: &str, sink: &str, qid: &str, patient: &str, by: &str) -> Output {
    rb(&[
        "quarantine",
        "resolve",
        qid,
        "--patient",
        patient,
        "--by",
        by,
        "--ledger",
        ledger,
        "--sink",
        sink,
    ])
}

fn discard(ledger: &str, sink: &str, qid: &str, by: &str, reason: &str) -> Output {
    rb(&[
        "quarantine",
        "discard",
        qid,
        "--by",
        by,
        "--reason",
        reason,
        "--ledger",
        ledger,
        "--sink",
        sink,
    ])
}

/// `quarantine show --json` (the viewing is recorded), parsed.
fn show_json(ledger: &str, qid: &str, by: &str) -> serde_json::Value {
    serde_json::from_str(&ok(&rb(&[
        "quarantine",
        "show",
        qid,
        "--by",
        by,
        "--ledger",
        ledger,
        "--json",
    ])))
    .unwrap()
}

/// Open quarantine items (qid, event id, reason).
fn open_items(ledger: &str) -> Vec<(i64, String, String)> {
    ok(&rb(&[
        "quarantine",
        "list",
        "--json",
        "--status",
        "open",
        "--ledger",
        ledger,
    ]))
    .lines()
    .map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        (
            v["qid"].as_i64().unwrap(),
            v["event_id"].as_str().unwrap().to_owned(),
            v["reason"].as_str().unwrap().to_owned(),
        )
    })
    .collect()
}

fn event_text(id: &str) -> String {
    std::fs::read_to_string(fixture("ward-chat.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["id"] == id)
        .and_then(|v| v["text"].as_str().map(str::to_owned))
        .unwrap()
}

#[test]
fn resolve_and_discard_with_an_audit_trail_in_the_ledger_and_as_audit_events() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let sink = format!("dir:{}", out.display());
    run_src_sink(
        &format!("file:{}", fixture("ward-chat.ndjson").display()),
        &sink,
    );
    let ledger = out.join("ledger.db").display().to_string();
    let items = open_items(&ledger);
    let amb = items.iter().find(|i| i.2 == "ambiguous").unwrap().clone();
    let other = items.iter().find(|i| i.0 != amb.0).unwrap().clone();
    let before = bundles(&out).len();
    let pat = patients("patients.json")[3]["nhs_number"]
        .as_str()
        .unwrap()
        .to_owned();

    // Show: the reviewer sees the content; the viewing is recorded.
    let shown = ok(&rb(&[
        "quarantine",
        "show",
        &amb.0.to_string(),
        "--by",
        "Dr Ada Reviewer",
        "--ledger",
        &ledger,
    ]));
    assert!(shown.contains(&event_text(&amb.1)), "{shown}");
    assert!(shown.contains("viewed") && shown.contains("Dr Ada Reviewer"));
    // A wrong NHS number is refused and changes nothing.
    let bad = resolve(
        &ledger,
        &sink,
        &amb.0.to_string(),
        &format!("{NHS}|9434765918"),
        "Dr Ada Reviewer",
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("Modulus 11"));
    assert_eq!(bundles(&out).len(), before);

    // Resolve: filed to the chosen patient, with an AuditEvent in the same Bundle.
    ok(&resolve(
        &ledger,
        &sink,
        &amb.0.to_string(),
        &format!("{NHS}|{pat}"),
        "Dr Ada Reviewer",
    ));
    let bs = bundles(&out);
    assert_eq!(bs.len(), before + 1);
    let b = bs.last().unwrap();
    let (c, id) = communication(b).unwrap();
    assert_eq!(id, amb.1);
    assert!(
        c["subject"]["reference"]
            .as_str()
            .unwrap()
            .ends_with(&format!("|{pat}"))
    );
    let entries = b["entry"].as_array().unwrap();
    let audit = &entries.last().unwrap()["resource"];
    assert_eq!(audit["resourceType"], "AuditEvent");
    assert_eq!(audit["action"], "C");
    assert_eq!(audit["agent"][0]["who"]["display"], "Dr Ada Reviewer");
    assert_eq!(
        audit["entity"][0]["what"]["reference"],
        entries[0]["fullUrl"]
    );
    let prov = entries
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == "Provenance")
        .unwrap();
    assert!(
        prov["agent"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["who"]["display"] == "Dr Ada Reviewer"),
        "the Provenance names the reviewer"
    );
    // Resolved once only.
    let again = resolve(
        &ledger,
        &sink,
        &amb.0.to_string(),
        &format!("{NHS}|{pat}"),
        "Dr Ada Reviewer",
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already resolved"));

    // Discard: not filed, content deleted, AuditEvent with the reason.
    ok(&discard(
        &ledger,
        &sink,
        &other.0.to_string(),
        "Sister Bea Checker",
        "duplicate of a filed message",
    ));
    let bs = bundles(&out);
    assert_eq!(bs.len(), before + 2);
    let d = &bs.last().unwrap()["entry"][0]["resource"];
    assert_eq!(d["resourceType"], "AuditEvent");
    assert_eq!(d["action"], "E");
    assert_eq!(d["outcomeDesc"], "duplicate of a filed message");
    assert_eq!(
        d["entity"][0]["what"]["identifier"]["value"],
        format!("urn:chat:matrix:{}", other.1)
    );

    // The ledger's trail: who did what, and the content is gone.
    let s: serde_json::Value = show_json(&ledger, &other.0.to_string(), "Auditor Cy");
    assert_eq!(s["item"]["status"], "discarded");
    assert!(s["event"].is_null(), "content deleted");
    let trail: Vec<(String, String)> = s["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap().to_owned(),
                a["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        trail,
        [
            ("discarded".into(), "Sister Bea Checker".into()),
            ("viewed".into(), "Auditor Cy".into())
        ]
    );
    let s: serde_json::Value = show_json(&ledger, &amb.0.to_string(), "Auditor Cy");
    let actions: Vec<&str> = s["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["viewed", "resolved", "viewed"]);
    assert!(s["audit"][1]["detail"].as_str().unwrap().contains(&pat));
    assert_eq!(open_items(&ledger).len(), items.len() - 2);
    // The report counts them as filed and ignored now.
    let r: serde_json::Value =
        serde_json::from_str(&ok(&rb(&["report", "--ledger", &ledger]))).unwrap();
    let q = items.len() as u64 - 2;
    assert_eq!(r["totals"]["quarantined"], q);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_and_discard_against_the_fhir_server() {
    let h = Hfs::start().await;
    h.seed(&patients("patients.json")).await;
    let tmp = tempfile::tempdir().unwrap();
    let ledger = tmp.path().join("ledger.db").display().to_string();
    let sink = format!("fhir:{}", h.base);
    let src = format!("file:{}", fixture("ward-chat.ndjson").display());
    // (The binary is a separate process: blocking here is fine, hfs runs on its own.)
    ok(&rb(&[
        "run", "--source", &src, "--sink", &sink, "--ledger", &ledger,
    ]));
    let items = open_items(&ledger);
    let amb = items.iter().find(|i| i.2 == "ambiguous").unwrap().clone();
    let other = items.iter().find(|i| i.0 != amb.0).unwrap().clone();
    let p = &patients("patients.json")[5];
    let pat = p["nhs_number"].as_str().unwrap();

    // A patient the server does not know: refused, nothing written, still open.
    let unknown = patients("unknown-patients.json")[0]["nhs_number"]
        .as_str()
        .unwrap()
        .to_owned();
    let o = resolve(
        &ledger,
        &sink,
        &amb.0.to_string(),
        &format!("{NHS}|{unknown}"),
        "Dr Ada Reviewer",
    );
    assert!(!o.status.success());
    assert_eq!(h.count("AuditEvent").await, 0);
    assert_eq!(open_items(&ledger).len(), items.len());

    ok(&resolve(
        &ledger,
        &sink,
        &amb.0.to_string(),
        &format!("{NHS}|{pat}"),
        "Dr Ada Reviewer",
    ));
    let comms = h
        .all(&format!(
            "Communication?identifier=urn:chat:matrix:{}",
            amb.1
        ))
        .await;
    assert_eq!(comms.len(), 1);
    let subject = comms[0]["subject"]["reference"].as_str().unwrap();
    let patient = reqwest::get(format!("{}/{subject}", h.base))
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert!(
        patient["identifier"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["value"] == pat)
    );
    // The reviewer is named in the record: the Provenance of the filed Communication.
    let cid = format!("Communication/{}", comms[0]["id"].as_str().unwrap());
    let provs = h.all("Provenance").await;
    let prov = provs
        .iter()
        .find(|p| {
            p["target"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["reference"] == cid.as_str())
        })
        .expect("a Provenance for the resolved Communication");
    assert!(
        prov["agent"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["who"]["display"] == "Dr Ada Reviewer"
                && a["type"]["coding"][0]["code"] == "verifier")
    );
    // Helios keeps AuditEvents to itself (405 for client writes): the review
    // still completes, and the ledger's trail says the server refused it.
    let accepts_audit = h.count("AuditEvent").await > 0;
    let s: serde_json::Value = show_json(&ledger, &amb.0.to_string(), "Auditor Cy");
    let resolved = s["audit"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "resolved")
        .unwrap()
        .clone();
    assert_eq!(resolved["actor"], "Dr Ada Reviewer");
    if accepts_audit {
        let audits = h.all("AuditEvent").await;
        assert_eq!(audits[0]["entity"][0]["what"]["reference"], cid.as_str());
    } else {
        assert!(
            resolved["detail"]
                .as_str()
                .unwrap()
                .contains("refused the AuditEvent")
        );
    }

    ok(&discard(
        &ledger,
        &sink,
        &other.0.to_string(),
        "Sister Bea Checker",
        "not about a patient",
    ));
    assert_eq!(
        h.all(&format!(
            "Communication?identifier=urn:chat:matrix:{}",
            other.1
        ))
        .await
        .len(),
        0
    );
    assert_eq!(open_items(&ledger).len(), items.len() - 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_finds_a_communication_deleted_on_the_server() {
    let h = Hfs::start().await;
    h.seed(&patients("patients.json")).await;
    let tmp = tempfile::tempdir().unwrap();
    let ledger = tmp.path().join("ledger.db").display().to_string();
    let sink = format!("fhir:{}", h.base);
    let src = format!("file:{}", fixture("ward-chat.ndjson").display());
    ok(&rb(&[
        "run", "--source", &src, "--sink", &sink, "--ledger", &ledger,
    ]));
    let clean: serde_json::Value = serde_json::from_str(&ok(&rb(&[
        "reconcile",
        "--sink",
        &sink,
        "--ledger",
        &ledger,
        "--json",
    ])))
    .unwrap();
    assert_eq!(clean["missing"], 0, "{clean}");
    assert_eq!(clean["mismatched"], 0, "{clean}");
    let n = h.count("Communication").await;
    assert_eq!(clean["communications_checked"], n);
    assert!(clean["tasks_checked"].as_u64().unwrap() > 20);

    // Delete one Communication on the server: reconcile names it and fails.
    let comms = h.all("Communication?status=completed").await;
    let victim = &comms[comms.len() / 2];
    let urn = victim["identifier"][0]["value"].as_str().unwrap();
    let event_id = urn.rsplit(':').next().unwrap();
    let del = reqwest::Client::new()
        .delete(format!(
            "{}/Communication/{}",
            h.base,
            victim["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert!(del.status().is_success(), "{}", del.status());
    let o = rb(&["reconcile", "--sink", &sink, "--ledger", &ledger, "--json"]);
    assert!(
        !o.status.success(),
        "non-zero exit when a resource is missing"
    );
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["missing"], 1, "{r}");
    let f = &r["findings"][0];
    assert_eq!(f["resource"], "Communication");
    assert_eq!(f["problem"], "missing");
    assert_eq!(f["event_id"], event_id);
    // The text form names it too.
    let o = rb(&["reconcile", "--sink", &sink, "--ledger", &ledger]);
    assert!(String::from_utf8_lossy(&o.stdout).contains(event_id));
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 missing"));
}
