use super::*;
use chrono::{DateTime, Duration, Utc};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn row(id: &str, room: &str, outcome: &str, sent: &str, lag_secs: i64) -> EventRow {
    let s = t(sent);
    EventRow {
        platform: "chat".into(),
        event_id: id.into(),
        room: room.into(),
        outcome: outcome.into(),
        reason: (outcome == "quarantined").then(|| "ambiguous".into()),
        sent_at: Some(s),
        decided_at: Some(s + Duration::seconds(lag_secs)),
        quarantined_at: None,
    }
}

#[test]
fn percentiles_are_nearest_rank() {
    let v: Vec<f64> = (1..=20).map(f64::from).collect();
    assert_eq!(percentile(&v, 50.0), Some(10.0));
    assert_eq!(percentile(&v, 95.0), Some(19.0));
    assert_eq!(percentile(&v, 100.0), Some(20.0));
    assert_eq!(percentile(&[7.0], 50.0), Some(7.0));
    assert_eq!(percentile(&[], 50.0), None);
}

#[test]
fn lag_counts_rooms_days_and_unresolved_on_known_timestamps() {
    // Filed lags 1..=10 s and one of 2 h: p50 is the 6th of 11 (6 s), p95 the 11th.
    let mut rows: Vec<EventRow> = (1..=10)
        .map(|i| row(&format!("$f{i}"), "!a", "filed", "2026-11-20T08:00:00Z", i))
        .collect();
    rows.push(row("$slow", "!b", "filed", "2026-11-21T09:00:00Z", 7200));
    rows.push(row("$q1", "!b", "quarantined", "2026-11-21T10:00:00Z", 0));
    rows.push(row("$h1", "!a", "held", "2026-11-20T07:00:00Z", 0));
    rows.push(row("$i1", "!a", "ignored", "2026-11-20T07:00:00Z", 0));
    let now = t("2026-11-22T07:00:00Z");
    let r = build(
        &rows,
        &Inputs {
            rejected: vec![t("2026-11-21T11:00:00Z")],
            ignored: vec![],
        },
        None,
        None,
        now,
    );
    assert_eq!(r.lag.count, 11);
    assert_eq!(r.lag.p50_secs, Some(6.0));
    assert_eq!(r.lag.p95_secs, Some(7200.0));
    assert_eq!(r.lag.max_secs, Some(7200.0));
    let hist: Vec<u64> = r.lag.histogram.iter().map(|b| b.count).collect();
    assert_eq!(hist, [0, 9, 1, 0, 0, 1, 0], "1–9 s, 10 s, 2 h");
    assert_eq!(
        r.totals,
        Counts {
            seen: 15,
            patient_related: 13,
            filed: 11,
            held: 1,
            quarantined: 1,
            rejected: 1,
            ignored: 1
        }
    );
    assert_eq!(r.by_room.len(), 2);
    assert_eq!(r.by_room[0].counts.filed, 10);
    assert_eq!(
        r.by_day.iter().map(|d| d.day.as_str()).collect::<Vec<_>>(),
        ["2026-11-20", "2026-11-21"]
    );
    assert_eq!(
        r.by_day[1].counts.rejected, 1,
        "malformed input counts on its day"
    );
    assert_eq!(
        r.quarantine_reasons,
        [ReasonCount {
            reason: "ambiguous".into(),
            count: 1
        }]
    );
    // Oldest first: the held one (2026-11-20T07:00) then the quarantined one.
    let ids: Vec<&str> = r
        .oldest_unresolved
        .iter()
        .map(|u| u.event_id.as_str())
        .collect();
    assert_eq!(ids, ["$h1", "$q1"]);
    assert_eq!(r.oldest_unresolved[0].age_hours, 48.0);
    let c = csv(&r);
    assert!(c.starts_with("scope,key,seen"));
    assert!(
        c.contains("total,all,15,13,11,1,1,1,1,6.000,7200.000,7200.000\n"),
        "{c}"
    );
    assert!(c.contains("quarantine_reason,ambiguous,1,,,,1,,,,,\n"));
}

#[test]
fn csv_quotes_awkward_room_names() {
    let rows = vec![row("$1", "!a,\"b\"", "filed", "2026-11-20T08:00:00Z", 1)];
    let r = build(
        &rows,
        &Inputs::default(),
        None,
        None,
        t("2026-11-22T00:00:00Z"),
    );
    assert!(csv(&r).contains("room,\"!a,\"\"b\"\"\",1,"));
}

#[test]
fn csv_never_writes_a_room_name_as_a_live_formula() {
    for (room, cell) in [
        ("=1+1", "'=1+1"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1", "'\t=1"),
        (
            "=HYPERLINK(\"x\",\"y\")",
            "\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\"",
        ),
    ] {
        let rows = vec![row("$1", room, "filed", "2026-11-20T08:00:00Z", 1)];
        let r = build(
            &rows,
            &Inputs::default(),
            None,
            None,
            t("2026-11-22T00:00:00Z"),
        );
        let c = csv(&r);
        assert!(c.contains(&format!("room,{cell},1,")), "{room:?}: {c}");
    }
    // An ordinary name, or one with a formula character later on, is as written.
    let rows = vec![row(
        "$1",
        "Ward 7 = AMU",
        "filed",
        "2026-11-20T08:00:00Z",
        1,
    )];
    let r = build(
        &rows,
        &Inputs::default(),
        None,
        None,
        t("2026-11-22T00:00:00Z"),
    );
    assert!(csv(&r).contains("room,Ward 7 = AMU,1,"));
}
