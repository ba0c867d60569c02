//! The transactional outbox: outcome events stored with their decision,
//! read back for publishing, marked once the broker confirmed them.

use super::{Ledger, q};
use sqlx::Row;

/// An outcome event to publish, stored with the decision that produced it.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub platform: String,
    pub event_id: String,
    pub routing_key: String,
    pub payload: String,
}

/// An outcome event waiting in the outbox.
#[derive(Debug, Clone)]
pub struct Pending {
    pub seq: i64,
    pub event_id: String,
    pub routing_key: String,
    pub payload: String,
}

pub(super) fn pending_of(r: sqlx::any::AnyRow) -> Pending {
    Pending {
        seq: r.get(0),
        event_id: r.get(1),
        routing_key: r.get(2),
        payload: r.get(3),
    }
}

impl Ledger {
    /// Outcome events not yet published for one event (after a crash between
    /// commit and publication), oldest first.
    pub async fn pending_outcomes_of(
        &self,
        platform: &str,
        event_id: &str,
    ) -> anyhow::Result<Vec<Pending>> {
        let rows = sqlx::query(
            q(self.pg, "SELECT seq, event_id, routing_key, payload FROM outbox WHERE platform = ? AND event_id = ? ORDER BY seq"),
        )
        .bind(platform)
        .bind(event_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(pending_of).collect())
    }

    /// Up to `limit` unpublished outcome events, oldest first.
    pub async fn pending_outcomes(&self, limit: i64) -> anyhow::Result<Vec<Pending>> {
        let rows = sqlx::query(q(
            self.pg,
            "SELECT seq, event_id, routing_key, payload FROM outbox ORDER BY seq LIMIT ?",
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(pending_of).collect())
    }

    /// Forget outcome events the broker has confirmed.
    pub async fn published(&self, seqs: &[i64]) -> anyhow::Result<()> {
        for s in seqs {
            sqlx::query(q(self.pg, "DELETE FROM outbox WHERE seq = ?"))
                .bind(s)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}
