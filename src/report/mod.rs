//! Record completeness for CCIOs: what reached the record, how fast, and what
//! is stuck and why. Built from the ledger only; never any message text.

pub mod html;
pub mod reconcile;

use serde::Serialize;

/// Counts of events by outcome (final decision per event).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Events decided (every outcome, rejects included).
    pub seen: u64,
    /// Filed + quarantined + held: events about a patient, or possibly so.
    pub patient_related: u64,
    pub filed: u64,
    pub held: u64,
    pub quarantined: u64,
    pub rejected: u64,
    pub ignored: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomCounts {
    pub room: String,
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayCounts {
    /// `YYYY-MM-DD` (UTC) of the event's `sent_at`.
    pub day: String,
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReasonCount {
    pub reason: String,
    pub count: u64,
}

/// One bar of the lag histogram.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// e.g. "< 1 s", "1–10 s", "10 s–1 min", "1–10 min", "10 min–1 h", "1–24 h", "≥ 24 h".
    pub label: String,
    pub count: u64,
}

/// Lag from `sent_at` to filed, over filed events.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Lag {
    pub count: u64,
    pub p50_secs: Option<f64>,
    pub p95_secs: Option<f64>,
    pub max_secs: Option<f64>,
    pub histogram: Vec<Bucket>,
}

/// A held or quarantined item not yet resolved, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unresolved {
    pub event_id: String,
    pub room: String,
    /// `held` or `quarantined`.
    pub status: String,
    pub reason: Option<String>,
    /// RFC 3339, when it became unresolved.
    pub since: String,
    pub age_hours: f64,
}

/// The whole report (JSON as is; CSV and HTML are renderings of it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// RFC 3339.
    pub generated_at: String,
    /// Period, RFC 3339 or null (open).
    pub since: Option<String>,
    pub until: Option<String>,
    pub totals: Counts,
    pub by_room: Vec<RoomCounts>,
    pub by_day: Vec<DayCounts>,
    pub quarantine_reasons: Vec<ReasonCount>,
    pub lag: Lag,
    pub oldest_unresolved: Vec<Unresolved>,
}

pub use crate::ledger::EventRow;

impl Counts {
    /// The counts in column order: seen, patient-related, filed, held,
    /// quarantined, rejected, ignored.
    pub fn values(&self) -> [u64; 7] {
        [
            self.seen,
            self.patient_related,
            self.filed,
            self.held,
            self.quarantined,
            self.rejected,
            self.ignored,
        ]
    }

    fn add(&mut self, outcome: &str) {
        self.seen += 1;
        match outcome {
            "filed" => self.filed += 1,
            "held" => self.held += 1,
            "quarantined" => self.quarantined += 1,
            "rejected" => self.rejected += 1,
            _ => self.ignored += 1,
        }
        self.patient_related = self.filed + self.held + self.quarantined;
    }
}

/// Nearest-rank percentile of sorted values: the smallest value with at least
/// `p` percent of the values at or below it.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

const BUCKETS: [(f64, &str); 7] = [
    (1.0, "< 1 s"),
    (10.0, "1–10 s"),
    (60.0, "10 s–1 min"),
    (600.0, "1–10 min"),
    (3600.0, "10 min–1 h"),
    (86400.0, "1–24 h"),
    (f64::INFINITY, "≥ 24 h"),
];

/// How many unresolved items the report lists.
pub const OLDEST_LISTED: usize = 20;

/// Inputs that never became a decided chat event, by when they were received.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Malformed inputs (the reject report, the dead-letter queue).
    pub rejected: Vec<chrono::DateTime<chrono::Utc>>,
    /// Deliveries that are not chat (state events, encrypted events, types
    /// no rule maps).
    pub ignored: Vec<chrono::DateTime<chrono::Utc>>,
}

/// Build the report from the ledger's rows (pure: `now` is an input).
/// Inputs that were never a decided chat event count in the totals and by
/// day as rejected or ignored (so `seen` accounts for every event
/// received); they have no room.
pub fn build(
    rows: &[EventRow],
    inputs: &Inputs,
    since: Option<chrono::DateTime<chrono::Utc>>,
    until: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> Report {
    use std::collections::BTreeMap;
    let rfc =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut totals = Counts::default();
    let mut rooms: BTreeMap<String, Counts> = BTreeMap::new();
    let mut days: BTreeMap<String, Counts> = BTreeMap::new();
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    let mut lags = Vec::new();
    let mut unresolved = Vec::new();
    for r in rows {
        totals.add(&r.outcome);
        rooms.entry(r.room.clone()).or_default().add(&r.outcome);
        if let Some(t) = r.sent_at {
            days.entry(t.format("%Y-%m-%d").to_string())
                .or_default()
                .add(&r.outcome);
        }
        match r.outcome.as_str() {
            "filed" => {
                if let (Some(s), Some(d)) = (r.sent_at, r.decided_at) {
                    lags.push(((d - s).num_milliseconds() as f64 / 1000.0).max(0.0));
                }
            }
            "quarantined" | "held" => {
                if r.outcome == "quarantined" {
                    *reasons
                        .entry(r.reason.clone().unwrap_or_else(|| "unspecified".into()))
                        .or_default() += 1;
                }
                let since_t = r.quarantined_at.or(r.decided_at).or(r.sent_at);
                if let Some(t) = since_t {
                    unresolved.push(Unresolved {
                        event_id: r.event_id.clone(),
                        room: r.room.clone(),
                        status: r.outcome.clone(),
                        reason: r.reason.clone(),
                        since: rfc(t),
                        age_hours: ((now - t).num_seconds() as f64 / 3600.0).max(0.0),
                    });
                }
            }
            _ => {}
        }
    }
    for (outcome, times) in [("rejected", &inputs.rejected), ("ignored", &inputs.ignored)] {
        for t in times {
            totals.add(outcome);
            days.entry(t.format("%Y-%m-%d").to_string())
                .or_default()
                .add(outcome);
        }
    }
    lags.sort_by(f64::total_cmp);
    let mut histogram: Vec<Bucket> = BUCKETS
        .iter()
        .map(|(_, l)| Bucket {
            label: (*l).to_owned(),
            count: 0,
        })
        .collect();
    for l in &lags {
        let i = BUCKETS
            .iter()
            .position(|(max, _)| l < max)
            .unwrap_or(BUCKETS.len() - 1);
        histogram[i].count += 1;
    }
    unresolved.sort_by(|a, b| a.since.cmp(&b.since).then(a.event_id.cmp(&b.event_id)));
    unresolved.truncate(OLDEST_LISTED);
    let mut quarantine_reasons: Vec<ReasonCount> = reasons
        .into_iter()
        .map(|(reason, count)| ReasonCount { reason, count })
        .collect();
    quarantine_reasons.sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.cmp(&b.reason)));
    Report {
        generated_at: rfc(now),
        since: since.map(rfc),
        until: until.map(rfc),
        totals,
        by_room: rooms
            .into_iter()
            .map(|(room, counts)| RoomCounts { room, counts })
            .collect(),
        by_day: days
            .into_iter()
            .map(|(day, counts)| DayCounts { day, counts })
            .collect(),
        quarantine_reasons,
        lag: Lag {
            count: lags.len() as u64,
            p50_secs: percentile(&lags, 50.0),
            p95_secs: percentile(&lags, 95.0),
            max_secs: lags.last().copied(),
            histogram,
        },
        oldest_unresolved: unresolved,
    }
}

/// CSV rendering: one row per scope (total, room, day, quarantine reason).
pub fn csv(r: &Report) -> String {
    fn field(s: &str) -> String {
        // OWASP CSV injection: a cell a spreadsheet would read as a formula
        // (=, +, -, @, tab, carriage return first) is kept as text with a
        // leading apostrophe.
        let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{s}")
        } else {
            s.to_owned()
        };
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s
        }
    }
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_default();
    let mut out = String::from(
        "scope,key,seen,patient_related,filed,held,quarantined,rejected,ignored,lag_p50_secs,lag_p95_secs,lag_max_secs\n",
    );
    let row = |out: &mut String, scope: &str, key: &str, c: &Counts, lag: Option<&Lag>| {
        let counts: Vec<String> = c.values().iter().map(u64::to_string).collect();
        out.push_str(&format!(
            "{scope},{},{},{},{},{}\n",
            field(key),
            counts.join(","),
            opt(lag.and_then(|l| l.p50_secs)),
            opt(lag.and_then(|l| l.p95_secs)),
            opt(lag.and_then(|l| l.max_secs)),
        ));
    };
    row(&mut out, "total", "all", &r.totals, Some(&r.lag));
    for x in &r.by_room {
        row(&mut out, "room", &x.room, &x.counts, None);
    }
    for x in &r.by_day {
        row(&mut out, "day", &x.day, &x.counts, None);
    }
    for x in &r.quarantine_reasons {
        out.push_str(&format!(
            "quarantine_reason,{},{},,,,{},,,,,\n",
            field(&x.reason),
            x.count,
            x.count
        ));
    }
    out
}

#[cfg(test)]
mod tests;
