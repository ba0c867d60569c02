//! Tasks against the real FHIR server (Helios `hfs`): the thread moves one
//! Task on; edits and redactions change the record without deleting anything.

mod common;

use common::hfs::{Hfs, patients};
use common::*;

const NHS: &str = "9434765919";

fn line(id: &str, who: &str, extra: serde_json::Value) -> String {
    let mut v = serde_json::json!({"id": id, "platform": "matrix", "room": "!ward7:trust.example",
        "sender": who, "sender_name": format!("Staff {who}"), "sent_at": format!("2026-11-21T10:0{}:00Z", id.len() % 10)});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v.to_string()
}

fn run_into(h: &Hfs, tmp: &std::path::Path, name: &str, lines: &[String]) -> std::process::Output {
    let src = tmp.join(format!("{name}.ndjson"));
    std::fs::write(&src, lines.join("\n")).unwrap();
    run_ok(&[
        "run",
        "--source",
        &format!("file:{}", src.display()),
        "--sink",
        &format!("fhir:{}", h.base),
        "--ledger",
        &tmp.join("ledger.db").display().to_string(),
    ])
}

async fn get(url: &str) -> serde_json::Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// Versions of a resource, newest first.
async fn history(h: &Hfs, type_id: &str) -> Vec<serde_json::Value> {
    let v = get(&format!("{}/{type_id}/_history", h.base)).await;
    let mut out: Vec<serde_json::Value> = v["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"].clone())
        .collect();
    out.sort_by_key(|r| {
        std::cmp::Reverse(
            r["meta"]["versionId"]
                .as_str()
                .unwrap()
                .parse::<u32>()
                .unwrap(),
        )
    });
    out
}

fn seed_one() -> Vec<serde_json::Value> {
    patients("patients.json")
        .into_iter()
        .chain([serde_json::json!({"nhs_number": NHS, "hospital_number": "H0000001", "family": "Testcase",
            "given": "Ada", "gender": "female", "birth_date": "1950-01-01"})])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_on_it_done_is_one_task_completed_by_the_replier_in_three_versions() {
    let h = Hfs::start().await;
    h.seed(&seed_one()).await;
    let tmp = tempfile::tempdir().unwrap();
    let lines = vec![
        line(
            "$r1",
            "@nurse",
            serde_json::json!({"text": format!("Bed 12, NHS {NHS}: can someone take a repeat lactate urgently")}),
        ),
        line(
            "$r2",
            "@fy1",
            serde_json::json!({"thread": "$r1", "reply_to": "$r1", "text": "on it"}),
        ),
        line(
            "$r3",
            "@fy1",
            serde_json::json!({"thread": "$r1", "text": "Done, lactate 1.4"}),
        ),
    ];
    // The dry run shows the Task in each decision line.
    let src = tmp.path().join("dry.ndjson");
    std::fs::write(&src, lines.join("\n")).unwrap();
    let dry = dry_run(
        &format!("file:{}", src.display()),
        &format!("fhir:{}", h.base),
    );
    let tasks: Vec<serde_json::Value> = String::from_utf8_lossy(&dry.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["task"].clone())
        .collect();
    assert_eq!(
        tasks,
        [
            serde_json::json!({"priority": "urgent", "status": "requested"}),
            serde_json::json!({"priority": "urgent", "status": "in-progress"}),
            serde_json::json!({"priority": "urgent", "status": "completed"}),
        ]
    );

    run_into(&h, tmp.path(), "thread", &lines);
    let all = h.all("Task").await;
    assert_eq!(all.len(), 1, "one Task for the thread");
    let t = &all[0];
    assert_eq!(t["status"], "completed");
    assert_eq!(t["intent"], "order");
    assert_eq!(t["identifier"][0]["value"], "urn:chat:matrix:$r1#task");
    assert!(t["description"].is_string());
    assert_eq!(t["priority"], "urgent");
    assert_eq!(
        t["owner"]["identifier"]["value"], "@fy1",
        "owner = the replier"
    );
    assert_eq!(t["requester"]["identifier"]["value"], "@nurse");
    assert!(
        t["for"]["reference"]
            .as_str()
            .unwrap()
            .starts_with("Patient/")
    );
    // focus is the request's Communication.
    let focus = t["focus"]["reference"].as_str().unwrap();
    let c = get(&format!("{}/{focus}", h.base)).await;
    assert_eq!(c["identifier"][0]["value"], "urn:chat:matrix:$r1");
    assert_eq!(c["priority"], "urgent", "the request carries its priority");
    let id = format!("Task/{}", t["id"].as_str().unwrap());
    let versions = history(&h, &id).await;
    let statuses: Vec<&str> = versions
        .iter()
        .map(|v| v["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["completed", "in-progress", "requested"],
        "three versions"
    );
    // Every write has its Provenance naming the Task.
    let provs = h.all("Provenance").await;
    let naming_task = provs
        .iter()
        .filter(|p| {
            p["target"].as_array().unwrap().iter().any(|r| {
                r["reference"]
                    .as_str()
                    .unwrap_or("")
                    .contains(t["id"].as_str().unwrap())
            })
        })
        .count();
    assert_eq!(naming_task, 3);
    // Replaying the same chat changes nothing: no new Task, no new Communication.
    let comms = h.count("Communication").await;
    run_into(&h, tmp.path(), "thread", &lines);
    assert_eq!(h.count("Task").await, 1);
    assert_eq!(h.count("Communication").await, comms);
    assert_eq!(
        history(&h, &id).await.len(),
        3,
        "a replay writes no version"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_updates_the_communication_and_its_task_and_redaction_cancels_without_deleting() {
    let h = Hfs::start().await;
    h.seed(&seed_one()).await;
    let tmp = tempfile::tempdir().unwrap();
    let before = format!("NHS {NHS} please recheck her potassium this afternoon");
    let after = format!("NHS {NHS} please recheck her potassium urgently, K+ 6.2");
    let lines = vec![
        line("$e1", "@nurse", serde_json::json!({"text": before})),
        line(
            "$e2",
            "@nurse",
            serde_json::json!({"type": "edit", "thread": "$e1", "target": "$e1", "text": after}),
        ),
        line(
            "$e3",
            "@reg",
            serde_json::json!({"thread": "$e1", "text": "could someone book a repeat ECG for her"}),
        ),
        line(
            "$e4",
            "@reg",
            serde_json::json!({"type": "redaction", "thread": "$e1", "target": "$e3"}),
        ),
    ];
    run_into(&h, tmp.path(), "edits", &lines);
    // Edit: the same Communication, a new version; the old text stays in history.
    let comms = h.all("Communication?identifier=urn:chat:matrix:$e1").await;
    assert_eq!(comms.len(), 1);
    let cid = format!("Communication/{}", comms[0]["id"].as_str().unwrap());
    let v = history(&h, &cid).await;
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["payload"][0]["contentString"], after.as_str());
    assert_eq!(v[1]["payload"][0]["contentString"], before.as_str());
    assert_eq!(v[0]["sent"], v[1]["sent"], "the message keeps its time");
    // ... and its Task is re-evaluated: now urgent, still the same Task.
    let t1 = h.all("Task?identifier=urn:chat:matrix:$e1%23task").await;
    assert_eq!(t1.len(), 1);
    assert_eq!(t1[0]["priority"], "urgent");
    assert_eq!(t1[0]["status"], "requested");
    // Redaction: entered-in-error without payload, its Task cancelled; nothing deleted.
    let c3 = h.all("Communication?identifier=urn:chat:matrix:$e3").await;
    assert_eq!(c3.len(), 1);
    assert_eq!(c3[0]["status"], "entered-in-error");
    assert!(c3[0].get("payload").is_none());
    let c3id = format!("Communication/{}", c3[0]["id"].as_str().unwrap());
    let v3 = history(&h, &c3id).await;
    assert_eq!(v3.len(), 2, "the original version is kept");
    assert!(
        v3[1]["payload"][0]["contentString"]
            .as_str()
            .unwrap()
            .contains("ECG")
    );
    let t3 = h.all("Task?identifier=urn:chat:matrix:$e3%23task").await;
    assert_eq!(t3.len(), 1);
    assert_eq!(t3[0]["status"], "cancelled");
    let t3id = format!("Task/{}", t3[0]["id"].as_str().unwrap());
    assert_eq!(history(&h, &t3id).await.len(), 2);
}
