//! Read-only figures over the ledger for health, metrics and reports (no content);
//! and the record of inputs that never became a decided chat event (rejected
//! or ignored).

use super::{Ledger, q, ts};
use chrono::DateTime;
use chrono::Utc;
use sqlx::Row;

/// One event's final decision, as the ledger keeps it (no content).
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub platform: String,
    pub event_id: String,
    pub room: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub sent_at: Option<chrono::DateTime<chrono::Utc>>,
    pub decided_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When its open quarantine item was created.
    pub quarantined_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Ledger {
    /// Record a malformed input (no content is stored: the reject report has it).
    pub async fn record_reject(
        &self,
        source: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        sqlx::query(q(
            self.pg,
            "INSERT INTO rejects (source, reason, at) VALUES (?, ?, ?)",
        ))
        .bind(source)
        .bind(reason)
        .bind(ts(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Record a delivery that is not a chat message (a state event, an
    /// encrypted event, an event type no rule maps): it was received, so the
    /// report counts it as seen and ignored. No id or content is kept.
    pub async fn record_ignored(
        &self,
        platform: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        sqlx::query(q(
            self.pg,
            "INSERT INTO ignored_inputs (platform, reason, at) VALUES (?, ?, ?)",
        ))
        .bind(platform)
        .bind(reason)
        .bind(ts(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Held events and the time the oldest was held (metrics).
    pub async fn held_summary(&self) -> anyhow::Result<(i64, Option<DateTime<Utc>>)> {
        let r = sqlx::query(q(
            self.pg,
            "SELECT COUNT(*), MIN(decided_at) FROM events WHERE outcome = 'held'",
        ))
        .fetch_one(&self.pool)
        .await?;
        let oldest: Option<String> = r.get(1);
        Ok((
            r.get(0),
            oldest
                .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
                .map(|t| t.with_timezone(&Utc)),
        ))
    }

    /// Rows in the held table (for tests and metrics).
    pub async fn held_count(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query(q(self.pg, "SELECT COUNT(*) FROM held"))
            .fetch_one(&self.pool)
            .await?
            .get(0))
    }

    /// Final outcome of every event, in event-id order (for reports and tests).
    pub async fn outcomes(
        &self,
    ) -> anyhow::Result<Vec<(String, String, Option<String>, Option<String>)>> {
        let rows = sqlx::query(q(
            self.pg,
            "SELECT id, outcome, reason, patient_value FROM events ORDER BY platform, id",
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect())
    }

    /// Final decision of every event sent in `[since, until)` (report input; no content).
    pub async fn report_rows(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> anyhow::Result<Vec<EventRow>> {
        let rows = sqlx::query(
            q(self.pg, "SELECT e.platform, e.id, COALESCE(e.room, ''), e.outcome, e.reason, e.sent_at, e.decided_at, \
             (SELECT MIN(q.created_at) FROM quarantine q WHERE q.platform = e.platform AND q.id = e.id AND q.status = 'open') \
             FROM events e WHERE (CAST(?1 AS TEXT) IS NULL OR e.sent_at >= ?1) AND (CAST(?2 AS TEXT) IS NULL OR e.sent_at < ?2) ORDER BY e.sent_at, e.id"),
        )
        .bind(since.map(ts))
        .bind(until.map(ts))
        .fetch_all(&self.pool)
        .await?;
        let parse = |s: Option<String>| {
            s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        Ok(rows
            .into_iter()
            .map(|r| EventRow {
                platform: r.get(0),
                event_id: r.get(1),
                room: r.get(2),
                outcome: r.get(3),
                reason: r.get(4),
                sent_at: parse(r.get(5)),
                decided_at: parse(Some(r.get(6))),
                quarantined_at: parse(r.get(7)),
            })
            .collect())
    }

    /// When the rejected inputs (malformed) were received, in a period.
    pub async fn reject_times(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> anyhow::Result<Vec<DateTime<Utc>>> {
        self.times_in("rejects", since, until).await
    }

    /// When the ignored deliveries (not chat) were received, in a period.
    pub async fn ignored_times(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> anyhow::Result<Vec<DateTime<Utc>>> {
        self.times_in("ignored_inputs", since, until).await
    }

    async fn times_in(
        &self,
        table: &'static str,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> anyhow::Result<Vec<DateTime<Utc>>> {
        let sql = format!(
            "SELECT at FROM {table} WHERE (CAST(?1 AS TEXT) IS NULL OR at >= ?1) AND (CAST(?2 AS TEXT) IS NULL OR at < ?2) ORDER BY at"
        );
        let rows = sqlx::query(q(self.pg, &sql))
            .bind(since.map(ts))
            .bind(until.map(ts))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                DateTime::parse_from_rfc3339(&r.get::<String, _>(0))
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            })
            .collect())
    }
}
