//! `recordbridge report` over a real run's ledger: the figures equal the
//! decisions written, by outcome, room and day; no message text anywhere.

mod common;

use std::collections::HashMap;

use common::*;

fn events() -> Vec<serde_json::Value> {
    std::fs::read_to_string(fixture("ward-chat.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn report_counts_equal_the_decisions_and_carry_no_text() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let sink = format!("dir:{}", out.display());
    let src = format!("file:{}", fixture("ward-chat.ndjson").display());
    let finals = final_decisions(&dry_run(&src, &sink).stdout);
    run_src_sink(&src, &sink);
    // Malformed input in the same ledger: 12 rejects, 5 valid events.
    let bad = format!("file:{}", fixture("malformed.ndjson").display());
    let mut finals = finals;
    for (id, f) in final_decisions(&dry_run(&bad, &sink).stdout) {
        if f.0 != "rejected" {
            finals.insert(id, f);
        }
    }
    run_src_sink(&bad, &sink);
    let ledger = out.join("ledger.db").display().to_string();
    let json = run_ok(&["report", "--ledger", &ledger, "--format", "json"]);
    let r: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();

    let evs = events();
    let count = |o: &str| finals.values().filter(|f| f.0 == o).count() as u64;
    let t = &r["totals"];
    assert_eq!(t["filed"], count("filed"));
    assert_eq!(t["quarantined"], count("quarantined"));
    assert_eq!(t["held"], count("held"));
    assert_eq!(t["ignored"], count("ignored"));
    assert_eq!(t["rejected"], 12);
    assert_eq!(t["seen"], finals.len() as u64 + 12);
    assert_eq!(finals.len(), evs.len() + 5);
    // By room: each room's figures are its events' final decisions.
    let mut want: HashMap<String, HashMap<String, u64>> = HashMap::new();
    let valid_bad: Vec<serde_json::Value> = std::fs::read_to_string(fixture("malformed.ndjson"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["id"].as_str().is_some_and(|id| finals.contains_key(id)) && v["room"].is_string()
        })
        .collect();
    assert_eq!(valid_bad.len(), 5);
    for e in evs.iter().chain(&valid_bad) {
        let o = &finals[e["id"].as_str().unwrap()].0;
        *want
            .entry(e["room"].as_str().unwrap().to_owned())
            .or_default()
            .entry(o.clone())
            .or_default() += 1;
    }
    for x in r["by_room"].as_array().unwrap() {
        let room = x["room"].as_str().unwrap();
        let w = &want[room];
        for o in ["filed", "held", "quarantined", "ignored"] {
            assert_eq!(x["counts"][o], w.get(o).copied().unwrap_or(0), "{room} {o}");
        }
    }
    // Quarantine reasons add up; lag is over every filed event.
    let reasons: u64 = r["quarantine_reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["count"].as_u64().unwrap())
        .sum();
    assert_eq!(reasons, count("quarantined"));
    assert_eq!(r["lag"]["count"], t["filed"]);
    let (p50, p95, max) = (
        r["lag"]["p50_secs"].as_f64().unwrap(),
        r["lag"]["p95_secs"].as_f64().unwrap(),
        r["lag"]["max_secs"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p95 && p95 <= max, "{p50} {p95} {max}");
    let listed = r["oldest_unresolved"].as_array().unwrap();
    assert!(!listed.is_empty() && listed.len() <= 20);

    // A period: only events sent on 2026-11-21.
    let day = run_ok(&[
        "report",
        "--ledger",
        &ledger,
        "--since",
        "2026-11-21",
        "--until",
        "2026-11-22",
    ]);
    let d: serde_json::Value = serde_json::from_slice(&day.stdout).unwrap();
    let on_day = evs
        .iter()
        .filter(|e| e["sent_at"].as_str().unwrap().starts_with("2026-11-21"))
        .count() as u64;
    assert_eq!(
        d["totals"]["seen"].as_u64().unwrap() - d["totals"]["rejected"].as_u64().unwrap(),
        on_day
    );
    assert!(
        d["by_day"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["day"] == "2026-11-21")
    );

    // CSV and HTML: same figures, no message text, no identifiers.
    let csv = run_ok(&["report", "--ledger", &ledger, "--format", "csv"]);
    let csv = String::from_utf8(csv.stdout).unwrap();
    assert!(csv.contains(&format!("total,all,{},", t["seen"].as_u64().unwrap())));
    let html_path = tmp.path().join("report.html");
    run_ok(&[
        "report",
        "--ledger",
        &ledger,
        "--format",
        "html",
        "--out",
        &html_path.display().to_string(),
    ]);
    let html = std::fs::read_to_string(&html_path).unwrap();
    for text in [&json.stdout[..], csv.as_bytes(), html.as_bytes()] {
        let s = String::from_utf8_lossy(text);
        for e in &evs {
            if let Some(m) = e["text"].as_str().filter(|m| m.len() > 12) {
                assert!(!s.contains(m), "report carries message text");
            }
        }
        for p in common::hfs::patients("patients.json") {
            assert!(!s.contains(p["nhs_number"].as_str().unwrap()));
        }
    }
}

/// Every event received is seen: a platform's events that are not chat
/// (state events, encrypted events) count as seen and ignored, like the
/// chat events the rules ignore.
#[test]
fn the_report_accounts_for_every_event_received_not_chat_included() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let input = fixture("formats/matrix/spec-examples.ndjson");
    let lines = std::fs::read_to_string(&input).unwrap();
    let received = lines.lines().filter(|l| !l.trim().is_empty()).count() as u64;
    let not_chat = lines
        .lines()
        .filter(|l| l.contains("\"state_key\"") || l.contains("m.room.encrypted"))
        .count() as u64;
    assert!(not_chat >= 2, "the fixture has state and encrypted events");
    let o = bin()
        .args(["run", "--format", "matrix", "--source"])
        .arg(format!("file:{}", input.display()))
        .arg("--sink")
        .arg(format!("dir:{}", out.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ledger = out.join("ledger.db");
    let r: serde_json::Value =
        serde_json::from_slice(&run_ok(&["report", "--ledger", ledger.to_str().unwrap()]).stdout)
            .unwrap();
    let totals = &r["totals"];
    assert_eq!(totals["seen"], received, "{totals}");
    assert!(totals["ignored"].as_u64().unwrap() >= not_chat, "{totals}");
    let by_day: u64 = r["by_day"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["counts"]["seen"].as_u64().unwrap())
        .sum();
    assert_eq!(by_day, received, "every event is in a day");
}
