use super::charts::{nice_scale, truncate};
use super::*;
use crate::report::{Bucket, Counts, DayCounts, Lag, ReasonCount, Report, RoomCounts, Unresolved};

const EVIL_ROOM: &str = "<script>alert(1)</script>";

fn counts(filed: u64, held: u64, quarantined: u64, rejected: u64, ignored: u64) -> Counts {
    Counts {
        seen: filed + held + quarantined + rejected + ignored,
        patient_related: filed + held + quarantined,
        filed,
        held,
        quarantined,
        rejected,
        ignored,
    }
}

fn sample() -> Report {
    let days = [
        ("2025-03-01", counts(120, 2, 6, 1, 40)),
        ("2025-03-02", counts(98, 0, 11, 0, 35)),
        ("2025-03-03", counts(143, 3, 4, 2, 51)),
        ("2025-03-04", counts(0, 1, 0, 0, 12)),
        ("2025-03-05", counts(1_204, 5, 17, 0, 300)),
    ];
    let mut totals = Counts::default();
    for (_, c) in &days {
        totals.seen += c.seen;
        totals.patient_related += c.patient_related;
        totals.filed += c.filed;
        totals.held += c.held;
        totals.quarantined += c.quarantined;
        totals.rejected += c.rejected;
        totals.ignored += c.ignored;
    }
    Report {
        generated_at: "2025-03-06T08:00:00Z".into(),
        since: Some("2025-03-01T00:00:00Z".into()),
        until: Some("2025-03-06T00:00:00Z".into()),
        totals: totals.clone(),
        by_room: vec![
            RoomCounts {
                room: "Ward 7 & Acute \"Medicine\"".into(),
                counts: counts(1_000, 6, 20, 2, 300),
            },
            RoomCounts {
                room: EVIL_ROOM.into(),
                counts: counts(565, 5, 18, 1, 138),
            },
        ],
        by_day: days
            .iter()
            .map(|(d, c)| DayCounts {
                day: (*d).into(),
                counts: c.clone(),
            })
            .collect(),
        quarantine_reasons: vec![
            ReasonCount {
                reason: "ambiguous".into(),
                count: 9,
            },
            ReasonCount {
                reason: "multi-patient".into(),
                count: 25,
            },
            ReasonCount {
                reason: "invalid-identifier".into(),
                count: 4,
            },
        ],
        lag: Lag {
            count: totals.filed,
            p50_secs: Some(2.4),
            p95_secs: Some(840.0),
            max_secs: Some(30_000.0),
            histogram: [
                ("< 1 s", 300),
                ("1–10 s", 900),
                ("10 s–1 min", 200),
                ("1–10 min", 100),
                ("10 min–1 h", 40),
                ("1–24 h", 25),
                ("≥ 24 h", 0),
            ]
            .into_iter()
            .map(|(l, c)| Bucket {
                label: l.into(),
                count: c,
            })
            .collect(),
        },
        oldest_unresolved: vec![
            Unresolved {
                event_id: "$evt-1'quoted'".into(),
                room: EVIL_ROOM.into(),
                status: "quarantined".into(),
                reason: Some("multi-patient".into()),
                since: "2025-03-01T09:12:00Z".into(),
                age_hours: 118.8,
            },
            Unresolved {
                event_id: "$evt-2".into(),
                room: "Ward 7 & Acute \"Medicine\"".into(),
                status: "held".into(),
                reason: None,
                since: "2025-03-05T21:00:00Z".into(),
                age_hours: 11.04,
            },
        ],
    }
}

fn empty() -> Report {
    Report {
        generated_at: "2025-03-06T08:00:00Z".into(),
        since: None,
        until: None,
        totals: Counts::default(),
        by_room: Vec::new(),
        by_day: Vec::new(),
        quarantine_reasons: Vec::new(),
        lag: Lag::default(),
        oldest_unresolved: Vec::new(),
    }
}

/// The `<figure id="ID">…</figure>` of a chart.
fn figure_of<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<figure id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no figure {id}"));
    let end = start + html[start..].find("</figure>").expect("figure closed");
    &html[start..end]
}

fn assert_self_contained(html: &str) {
    assert!(!html.contains("http://"), "http:// in output");
    assert!(!html.contains("https://"), "https:// in output");
    assert!(!html.contains("//cdn"), "protocol-relative URL in output");
    assert!(!html.contains("src="), "src= attribute in output");
    assert!(
        !html.to_lowercase().contains("<script"),
        "script element in output"
    );
    assert!(!html.contains("@import"), "CSS import in output");
    assert!(!html.contains("url("), "CSS url() in output");
    for (i, _) in html.match_indices("href=") {
        let v = &html[i + "href=".len()..];
        assert!(
            v.starts_with("\"#"),
            "href pointing outside the page: {}",
            &v[..v.len().min(60)]
        );
    }
}

#[test]
fn page_is_html5_utf8_with_title_and_period() {
    let html = render(&sample());
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<meta charset=\"utf-8\">"));
    assert!(html.contains("recordbridge — record completeness"));
    assert!(html.contains("2025-03-01T00:00:00Z to 2025-03-06T00:00:00Z"));
    assert!(html.contains("2025-03-06T08:00:00Z"));
    assert!(html.trim_end().ends_with("</html>"));
}

#[test]
fn has_three_accessible_charts_in_figures() {
    let html = render(&sample());
    assert!(html.contains("<svg"));
    for id in [
        "chart-filed-vs-quarantined",
        "chart-lag",
        "chart-quarantine-reasons",
    ] {
        let fig = figure_of(&html, id);
        assert!(
            fig.contains("<svg role=\"img\" aria-label=\""),
            "{id}: svg role/aria"
        );
        assert!(fig.contains("<figcaption>"), "{id}: figcaption");
        assert!(fig.contains("<rect"), "{id}: bars");
        assert!(!fig.contains("no data"), "{id}: unexpected 'no data'");
    }
}

#[test]
fn day_chart_has_legend_and_day_labels() {
    let html = render(&sample());
    let fig = figure_of(&html, "chart-filed-vs-quarantined");
    assert!(fig.contains(">filed</text>"));
    assert!(fig.contains(">quarantined</text>"));
    for d in ["2025-03-01", "2025-03-05"] {
        assert!(fig.contains(&format!(">{d}</text>")), "day label {d}");
    }
    assert!(fig.contains(COLOR_FILED) && fig.contains(COLOR_QUARANTINED));
}

#[test]
fn lag_chart_has_buckets_counts_and_percentiles() {
    let html = render(&sample());
    let fig = figure_of(&html, "chart-lag");
    assert!(fig.contains(">1–10 s</text>"));
    assert!(fig.contains(">900</text>"));
    assert!(fig.contains("p50 2.4 s"));
    assert!(fig.contains("p95 14.0 min"));
    assert!(fig.contains("max 8.3 h"));
}

#[test]
fn reasons_chart_lists_reasons_with_counts_most_frequent_first() {
    let html = render(&sample());
    let fig = figure_of(&html, "chart-quarantine-reasons");
    let multi = fig.find(">multi-patient</text>").expect("multi-patient");
    let ambiguous = fig.find(">ambiguous</text>").expect("ambiguous");
    let invalid = fig
        .find(">invalid-identifier</text>")
        .expect("invalid-identifier");
    assert!(multi < ambiguous && ambiguous < invalid);
    assert!(fig.contains(">25</text>"));
}

#[test]
fn report_strings_are_escaped() {
    let html = render(&sample());
    assert!(!html.contains(EVIL_ROOM), "raw room name in output");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("Ward 7 &amp; Acute &quot;Medicine&quot;"));
    assert!(html.contains("$evt-1&#39;quoted&#39;"));
    assert_self_contained(&html);
}

#[test]
fn tables_show_rooms_days_and_unresolved() {
    let html = render(&sample());
    assert!(html.contains("<h2>By room</h2>"));
    assert!(html.contains("<h2>By day"));
    assert!(
        html.contains("<td class=\"num\">1,204</td>"),
        "thousands separator"
    );
    // Filed % of patient-related, overall: 1565 / (1565 + 11 + 38).
    assert!(html.contains("97.0 %"));
    // Age in hours, one decimal.
    assert!(html.contains("<td class=\"num\">118.8</td>"));
    assert!(html.contains("<td class=\"num\">11.0</td>"));
    assert!(
        html.contains("<td>held</td><td>—</td>"),
        "missing reason shown as a dash"
    );
}

#[test]
fn empty_report_renders_no_data() {
    let html = render(&empty());
    assert!(html.contains("all time"));
    for id in [
        "chart-filed-vs-quarantined",
        "chart-lag",
        "chart-quarantine-reasons",
    ] {
        let fig = figure_of(&html, id);
        assert!(fig.contains("no data"), "{id}: no 'no data'");
        assert!(fig.contains("role=\"img\""));
        assert!(
            !fig.contains("NaN") && !fig.contains("inf"),
            "{id}: bad number"
        );
    }
    assert!(html.contains("p50 — · p95 — · max —"));
    assert!(!html.contains("NaN"));
    assert_self_contained(&html);
}

#[test]
fn all_zero_data_renders_no_data_not_zero_height_scale() {
    let mut r = empty();
    r.by_day.push(DayCounts {
        day: "2025-03-01".into(),
        counts: counts(0, 0, 0, 0, 3),
    });
    r.lag.histogram.push(Bucket {
        label: "< 1 s".into(),
        count: 0,
    });
    r.quarantine_reasons.push(ReasonCount {
        reason: "ambiguous".into(),
        count: 0,
    });
    let html = render(&r);
    for id in [
        "chart-filed-vs-quarantined",
        "chart-lag",
        "chart-quarantine-reasons",
    ] {
        assert!(figure_of(&html, id).contains("no data"), "{id}");
    }
    assert!(!html.contains("NaN"));
}

/// The sample over 90 days (the day labels do not fit side by side).
fn ninety_days() -> Report {
    let mut r = sample();
    r.by_day = (0..90u64)
        .map(|i| {
            let day = chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap() + chrono::Days::new(i);
            DayCounts {
                day: day.to_string(),
                counts: counts(100 + (i * 37) % 250, i % 3, (i * 7) % 13, 0, 20),
            }
        })
        .collect();
    r
}

#[test]
fn many_days_and_huge_counts_do_not_break_layout() {
    let mut r = ninety_days();
    r.quarantine_reasons[0].count = u64::MAX;
    r.lag.max_secs = Some(f64::NAN);
    let html = render(&r);
    assert!(html.contains("rotate(-60"));
    assert!(!html.contains("NaN"));
    assert!(html.contains("18,446,744,073,709,551,615"));
}

#[test]
fn helpers_format_readably() {
    assert_eq!(escape("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&#39;f");
    assert_eq!(fmt_count(0), "0");
    assert_eq!(fmt_count(999), "999");
    assert_eq!(fmt_count(1000), "1,000");
    assert_eq!(fmt_count(1_234_567), "1,234,567");
    assert_eq!(fmt_pct(1, 3), "33.3 %");
    assert_eq!(fmt_pct(5, 0), "—");
    assert_eq!(fmt_secs(None), "—");
    assert_eq!(fmt_secs(Some(0.34)), "0.3 s");
    assert_eq!(fmt_secs(Some(42.0)), "42 s");
    assert_eq!(fmt_secs(Some(90.0)), "1.5 min");
    assert_eq!(fmt_secs(Some(7200.0)), "2.0 h");
    assert_eq!(fmt_secs(Some(3.0 * 86400.0)), "3.0 d");
    assert_eq!(fmt_secs(Some(-5.0)), "−5.0 s");
    assert_eq!(nice_scale(0), (1, 1));
    assert_eq!(nice_scale(7), (8, 2));
    assert_eq!(nice_scale(1204), (1500, 500));
    assert_eq!(truncate("abcdef", 4), "abc…");
}

/// Writes a rendered sample to /tmp/report-sample.html (and an empty report to
/// /tmp/report-empty.html, 90 days to /tmp/report-90days.html) for a look in a
/// browser or
/// `deploy/local/report_screenshot.sh`:
///
///     cargo test --lib report -- --ignored
#[test]
#[ignore]
fn write_sample_html() {
    std::fs::write("/tmp/report-sample.html", render(&sample())).unwrap();
    std::fs::write("/tmp/report-empty.html", render(&empty())).unwrap();
    std::fs::write("/tmp/report-90days.html", render(&ninety_days())).unwrap();
}
