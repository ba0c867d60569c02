//! Record completeness for CCIOs: what reached the record, how fast, and what
//! is stuck and why. Built from the ledger only; never any message text.

pub mod html;

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
