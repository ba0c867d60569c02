//! Threads and their decisions: what was seen, a thread's state, and the
//! one transaction that commits a step (decisions, state, outbox).

use super::outbox::{OutboxRow, Pending};
use super::{Ledger, q, ts};
use crate::decide::state::Held;
use crate::decide::state::ThreadState;
use crate::decide::{Decision, Outcome};
use crate::event::ChatEvent;
use anyhow::Context;
use chrono::DateTime;
use chrono::Utc;
use sqlx::Any;
use sqlx::Row;
use sqlx::Transaction;

pub(super) async fn save_thread(
    tx: &mut Transaction<'_, Any>,
    pg: bool,
    key: &str,
    state: &ThreadState,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let json = serde_json::to_string(state)?;
    sqlx::query(
        q(pg, "INSERT INTO threads (thread_key, state, updated_at) VALUES (?, ?, ?) \
         ON CONFLICT(thread_key) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at"),
    )
    .bind(key)
    .bind(json)
    .bind(ts(now))
    .execute(&mut **tx)
    .await?;
    // Held content mirrors the state: what is no longer held is deleted.
    sqlx::query(q(pg, "DELETE FROM held WHERE thread_key = ?"))
        .bind(key)
        .execute(&mut **tx)
        .await?;
    for (i, h) in state.held.iter().enumerate() {
        sqlx::query(q(pg, "INSERT INTO held (platform, id, thread_key, seq, content, expires_at) VALUES (?, ?, ?, ?, ?, ?) \
         ON CONFLICT (platform, id) DO UPDATE SET thread_key = excluded.thread_key, seq = excluded.seq, \
         content = excluded.content, expires_at = excluded.expires_at"))
            .bind(&h.event.platform)
            .bind(&h.event.id)
            .bind(key)
            .bind(i as i64)
            .bind(serde_json::to_string(&h.event)?)
            .bind(ts(h.expires_at))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

pub(super) async fn record_decision(
    tx: &mut Transaction<'_, Any>,
    pg: bool,
    key: &str,
    d: &Decision,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let e = &d.event;
    sqlx::query(
        q(pg, "INSERT INTO events (platform, id, thread_key, outcome, reason, patient_system, patient_value, decided_at, room, sent_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(platform, id) DO UPDATE SET outcome = excluded.outcome, \
         reason = excluded.reason, patient_system = excluded.patient_system, patient_value = excluded.patient_value, \
         decided_at = excluded.decided_at, room = excluded.room, sent_at = excluded.sent_at"),
    )
    .bind(&e.platform)
    .bind(&e.id)
    .bind(key)
    .bind(d.outcome.as_str())
    .bind(d.reason.as_deref())
    .bind(d.patient.as_ref().map(|p| p.system.as_str()))
    .bind(d.patient.as_ref().map(|p| p.value.as_str()))
    .bind(ts(now))
    .bind(&e.room)
    .bind(ts(e.sent_at.with_timezone(&Utc)))
    .execute(&mut **tx)
    .await?;
    sqlx::query(q(
        pg,
        "INSERT INTO decisions (platform, event_id, line, decided_at) VALUES (?, ?, ?, ?)",
    ))
    .bind(&e.platform)
    .bind(&e.id)
    .bind(serde_json::to_string(&d.line())?)
    .bind(ts(now))
    .execute(&mut **tx)
    .await?;
    if d.outcome == Outcome::Quarantined {
        sqlx::query(q(pg, "INSERT INTO quarantine (platform, id, thread_key, reason, content, created_at) VALUES (?, ?, ?, ?, ?, ?)"))
            .bind(&e.platform)
            .bind(&e.id)
            .bind(key)
            .bind(d.reason.as_deref().unwrap_or("unspecified"))
            .bind(serde_json::to_string(e)?)
            .bind(ts(now))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

impl Ledger {
    /// The last outcome of an event already seen, if any (dedup).
    pub async fn seen(&self, platform: &str, id: &str) -> anyhow::Result<Option<String>> {
        self.event_field(
            "SELECT outcome FROM events WHERE platform = ? AND id = ?",
            platform,
            id,
        )
        .await
    }

    /// The thread an earlier event belongs to (edits, redactions, reactions).
    pub async fn thread_of(&self, platform: &str, id: &str) -> anyhow::Result<Option<String>> {
        self.event_field(
            "SELECT thread_key FROM events WHERE platform = ? AND id = ?",
            platform,
            id,
        )
        .await
    }

    /// One text column of an event's row, if the event is known.
    pub(super) async fn event_field(
        &self,
        sql: &str,
        platform: &str,
        id: &str,
    ) -> anyhow::Result<Option<String>> {
        let row = sqlx::query(q(self.pg, sql))
            .bind(platform)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get::<String, _>(0)))
    }

    /// A thread's state with its held events.
    pub async fn load_thread(&self, key: &str) -> anyhow::Result<ThreadState> {
        let row = sqlx::query(q(self.pg, "SELECT state FROM threads WHERE thread_key = ?"))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        let mut state: ThreadState = match row {
            Some(r) => serde_json::from_str(&r.get::<String, _>(0))
                .context("thread state in ledger is corrupt")?,
            None => ThreadState::default(),
        };
        let rows = sqlx::query(q(
            self.pg,
            "SELECT content, expires_at FROM held WHERE thread_key = ? ORDER BY seq",
        ))
        .bind(key)
        .fetch_all(&self.pool)
        .await?;
        for r in rows {
            let event: ChatEvent = serde_json::from_str(&r.get::<String, _>(0))
                .context("held content in ledger is corrupt")?;
            let expires_at =
                DateTime::parse_from_rfc3339(&r.get::<String, _>(1))?.with_timezone(&Utc);
            state.held.push(Held { event, expires_at });
        }
        Ok(state)
    }

    /// Durably record a thread's new state and the decisions that produced it,
    /// with the outcome events still to publish (transactional outbox: an
    /// outcome is never lost between the commit and its publication).
    pub async fn commit(
        &self,
        key: &str,
        state: &ThreadState,
        decisions: &[Decision],
        outbox: &[OutboxRow],
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Pending>> {
        let mut tx = self.pool.begin().await?;
        save_thread(&mut tx, self.pg, key, state, now).await?;
        for d in decisions {
            record_decision(&mut tx, self.pg, key, d, now).await?;
        }
        let mut pending = Vec::with_capacity(outbox.len());
        for o in outbox {
            let seq: i64 = sqlx::query(q(
                self.pg,
                "INSERT INTO outbox (platform, event_id, routing_key, payload, created_at) \
                 VALUES (?, ?, ?, ?, ?) RETURNING seq",
            ))
            .bind(&o.platform)
            .bind(&o.event_id)
            .bind(&o.routing_key)
            .bind(&o.payload)
            .bind(ts(now))
            .fetch_one(&mut *tx)
            .await?
            .get(0);
            pending.push(Pending {
                seq,
                event_id: o.event_id.clone(),
                routing_key: o.routing_key.clone(),
                payload: o.payload.clone(),
            });
        }
        tx.commit().await?;
        Ok(pending)
    }

    /// Threads with held content past its expiry.
    pub async fn threads_with_expired_holds(
        &self,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<String>> {
        let rows = sqlx::query(q(
            self.pg,
            "SELECT DISTINCT thread_key FROM held WHERE expires_at <= ?",
        ))
        .bind(ts(now))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.get::<String, _>(0)).collect())
    }

    /// Threads last decided before `before` whose state still keeps message
    /// content (versions to revert a redacted edit to): all of it is past
    /// its window, and the sweep drops it.
    pub async fn threads_with_old_content(
        &self,
        before: DateTime<Utc>,
    ) -> anyhow::Result<Vec<String>> {
        let rows = sqlx::query(q(
            self.pg,
            "SELECT thread_key FROM threads WHERE updated_at <= ? AND state LIKE '%\"kept_until\"%'",
        ))
        .bind(ts(before))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.get::<String, _>(0)).collect())
    }

    /// Every event whose final decision is `filed`, with its thread's state
    /// (reconcile input): (platform, event id, patient value, thread state).
    pub async fn filed_with_state(
        &self,
    ) -> anyhow::Result<Vec<(String, String, Option<String>, std::sync::Arc<ThreadState>)>> {
        let mut states: std::collections::HashMap<String, std::sync::Arc<ThreadState>> =
            std::collections::HashMap::new();
        for r in sqlx::query(q(self.pg, "SELECT thread_key, state FROM threads"))
            .fetch_all(&self.pool)
            .await?
        {
            let st: ThreadState = serde_json::from_str(&r.get::<String, _>(1))
                .context("thread state in ledger is corrupt")?;
            states.insert(r.get(0), std::sync::Arc::new(st));
        }
        let rows = sqlx::query(
            q(self.pg, "SELECT platform, id, patient_value, thread_key FROM events WHERE outcome = 'filed' ORDER BY sent_at, id"),
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let st = states.get(&r.get::<String, _>(3))?.clone();
                Some((r.get(0), r.get(1), r.get(2), st))
            })
            .collect())
    }
}
