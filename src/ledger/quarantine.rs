//! Quarantine items and their audit trail (who viewed, resolved or discarded).

use super::threads::{record_decision, save_thread};
use super::{Ledger, q, ts};
use crate::decide::Decision;
use crate::decide::state::ThreadState;
use crate::event::ChatEvent;
use anyhow::Context;
use chrono::DateTime;
use chrono::Utc;
use sqlx::Row;

/// One review action on a quarantine item.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditRow {
    pub action: String,
    pub actor: String,
    pub detail: Option<String>,
    pub at: String,
}

/// A quarantine item as listed (no message text).
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuarantineItem {
    pub qid: i64,
    pub platform: String,
    pub event_id: String,
    pub thread_key: String,
    pub reason: String,
    pub status: String,
    pub created_at: String,
}

impl Ledger {
    /// Quarantine items, optionally only those with `status`.
    pub async fn quarantine_list(
        &self,
        status: Option<&str>,
    ) -> anyhow::Result<Vec<QuarantineItem>> {
        let rows = sqlx::query(q(
            self.pg,
            "SELECT qid, platform, id, thread_key, reason, status, created_at FROM quarantine \
             WHERE (CAST(?1 AS TEXT) IS NULL OR status = ?1) ORDER BY qid",
        ))
        .bind(status)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| QuarantineItem {
                qid: r.get(0),
                platform: r.get(1),
                event_id: r.get(2),
                thread_key: r.get(3),
                reason: r.get(4),
                status: r.get(5),
                created_at: r.get(6),
            })
            .collect())
    }

    /// One quarantine item with its content (for review by a person).
    pub async fn quarantine_item(
        &self,
        qid: i64,
    ) -> anyhow::Result<Option<(QuarantineItem, Option<ChatEvent>)>> {
        let row = sqlx::query(
            q(self.pg, "SELECT qid, platform, id, thread_key, reason, status, created_at, content FROM quarantine WHERE qid = ?"),
        )
        .bind(qid)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let content: Option<String> = r.get(7);
        let event = content
            .map(|c| serde_json::from_str::<ChatEvent>(&c))
            .transpose()
            .context("quarantined content in ledger is corrupt")?;
        Ok(Some((
            QuarantineItem {
                qid: r.get(0),
                platform: r.get(1),
                event_id: r.get(2),
                thread_key: r.get(3),
                reason: r.get(4),
                status: r.get(5),
                created_at: r.get(6),
            },
            event,
        )))
    }

    /// The review actions on a quarantine item, oldest first.
    pub async fn audit_trail(&self, qid: i64) -> anyhow::Result<Vec<AuditRow>> {
        let rows = sqlx::query(q(
            self.pg,
            "SELECT action, actor, detail, at FROM audit WHERE qid = ? ORDER BY seq",
        ))
        .bind(qid)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| AuditRow {
                action: r.get(0),
                actor: r.get(1),
                detail: r.get(2),
                at: r.get(3),
            })
            .collect())
    }

    /// Record that a person viewed a quarantined item's content.
    pub async fn audit_view(
        &self,
        qid: i64,
        actor: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        sqlx::query(q(
            self.pg,
            "INSERT INTO audit (qid, action, actor, detail, at) VALUES (?, 'viewed', ?, NULL, ?)",
        ))
        .bind(qid)
        .bind(actor)
        .bind(ts(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Close an open quarantine item with a person's decision, in one
    /// transaction: the thread's new state, the decision, the item's status
    /// (its content deleted) and the audit row. Fails when the item is not open.
    #[allow(clippy::too_many_arguments)]
    pub async fn close_quarantine(
        &self,
        qid: i64,
        status: &str,
        key: &str,
        state: &ThreadState,
        decisions: &[Decision],
        actor: &str,
        detail: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(q(
            self.pg,
            "UPDATE quarantine SET status = ?, content = NULL WHERE qid = ? AND status = 'open'",
        ))
        .bind(status)
        .bind(qid)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            anyhow::bail!("quarantine item {qid} is not open");
        }
        save_thread(&mut tx, self.pg, key, state, now).await?;
        for d in decisions {
            record_decision(&mut tx, self.pg, key, d, now).await?;
        }
        let action = if status == "resolved" {
            "resolved"
        } else {
            "discarded"
        };
        sqlx::query(q(
            self.pg,
            "INSERT INTO audit (qid, action, actor, detail, at) VALUES (?, ?, ?, ?, ?)",
        ))
        .bind(qid)
        .bind(action)
        .bind(actor)
        .bind(detail)
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
