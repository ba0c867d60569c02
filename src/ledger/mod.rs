//! The durable ledger (SQLite, or PostgreSQL for shared state; sqlx): events
//! seen (dedup), thread state, held content with its expiry, quarantine items
//! with their audit trail, the outcome outbox and the decision log.
//!
//! One transaction per decided event keeps the thread state, held content,
//! outcomes and quarantine consistent with each other.

use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AssertSqlSafe, Row, Transaction};

use crate::decide::state::{Held, ThreadState};
use crate::decide::{Decision, Outcome};
use crate::event::ChatEvent;

mod partitions;
pub use partitions::Leases;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS events (
    platform TEXT NOT NULL,
    id TEXT NOT NULL,
    thread_key TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    patient_system TEXT,
    patient_value TEXT,
    decided_at TEXT NOT NULL,
    room TEXT,
    sent_at TEXT,
    PRIMARY KEY (platform, id)
);
CREATE TABLE IF NOT EXISTS threads (
    thread_key TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS held (
    platform TEXT NOT NULL,
    id TEXT NOT NULL,
    thread_key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    content TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (platform, id)
);
CREATE INDEX IF NOT EXISTS held_thread ON held (thread_key, seq);
CREATE INDEX IF NOT EXISTS held_expiry ON held (expires_at);
CREATE TABLE IF NOT EXISTS quarantine (
    qid INTEGER PRIMARY KEY AUTOINCREMENT,
    platform TEXT NOT NULL,
    id TEXT NOT NULL,
    thread_key TEXT NOT NULL,
    reason TEXT NOT NULL,
    content TEXT,
    status TEXT NOT NULL DEFAULT 'open',
    created_at TEXT NOT NULL,
    actor TEXT,
    acted_at TEXT,
    resolution TEXT
);
CREATE INDEX IF NOT EXISTS quarantine_status ON quarantine (status);
CREATE TABLE IF NOT EXISTS replicas (
    id TEXT PRIMARY KEY,
    seen_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS partitions (
    part BIGINT PRIMARY KEY,
    owner TEXT,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    platform TEXT NOT NULL,
    event_id TEXT NOT NULL,
    line TEXT NOT NULL,
    decided_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    platform TEXT NOT NULL,
    event_id TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_event ON outbox (platform, event_id);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    qid INTEGER NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    detail TEXT,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rejects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL
);
"#;
/// The schema for a backend: PostgreSQL gets 64-bit identity keys.
fn schema(pg: bool) -> String {
    if !pg {
        return SCHEMA.to_owned();
    }
    SCHEMA
        .replace(
            "INTEGER PRIMARY KEY AUTOINCREMENT",
            "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        )
        .replace("INTEGER NOT NULL", "BIGINT NOT NULL")
}

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

fn pending_of(r: sqlx::any::AnyRow) -> Pending {
    Pending {
        seq: r.get(0),
        event_id: r.get(1),
        routing_key: r.get(2),
        payload: r.get(3),
    }
}

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

#[derive(Debug, Clone)]
pub struct Ledger {
    pool: AnyPool,
    /// PostgreSQL (else SQLite): `?` placeholders become `$n`.
    pg: bool,
}

/// Is this ledger setting a PostgreSQL URL?
pub fn is_postgres(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// A query for the backend: written with SQLite's `?` / `?N` placeholders,
/// rewritten to PostgreSQL's `$n`. (Our SQL has no `?` inside literals.)
fn q(pg: bool, sql: &str) -> AssertSqlSafe<String> {
    if !pg {
        return AssertSqlSafe(sql.to_owned());
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' {
            out.push('$');
            if !chars.peek().is_some_and(char::is_ascii_digit) {
                n += 1;
                out.push_str(&n.to_string());
            }
        } else {
            out.push(c);
        }
    }
    AssertSqlSafe(out)
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl Ledger {
    /// Open (creating if missing) the ledger: a SQLite file, or a PostgreSQL
    /// database when `path` is a `postgres://` / `postgresql://` URL.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let text = path.to_string_lossy();
        let pg = is_postgres(&text);
        let pool = if pg {
            AnyPoolOptions::new()
                .max_connections(8)
                .connect(&text)
                .await
                .map_err(|e| {
                    anyhow::anyhow!("opening ledger {}: {e}", crate::config::redact_url(&text))
                })?
        } else {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating ledger directory {}", dir.display()))?;
            }
            let abs = std::path::absolute(path)?;
            let mut enc = String::new();
            for c in abs.to_string_lossy().chars() {
                match c {
                    '%' | '?' | '#' | ' ' => enc.push_str(&format!("%{:02X}", c as u32)),
                    c => enc.push(c),
                }
            }
            AnyPoolOptions::new()
                .max_connections(4)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        sqlx::raw_sql(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON;",
                        )
                        .execute(conn)
                        .await?;
                        Ok(())
                    })
                })
                .connect(&format!("sqlite://{enc}?mode=rwc"))
                .await
                .with_context(|| format!("opening ledger {}", path.display()))?
        };
        if pg {
            // Replicas starting together on a new database: one creates the
            // schema at a time (concurrent CREATE TABLE IF NOT EXISTS can
            // fail on PostgreSQL's catalog).
            let mut tx = pool.begin().await.context("creating ledger schema")?;
            sqlx::query("SELECT pg_advisory_xact_lock(7420117001)")
                .execute(&mut *tx)
                .await
                .context("creating ledger schema")?;
            sqlx::raw_sql(AssertSqlSafe(schema(pg)))
                .execute(&mut *tx)
                .await
                .context("creating ledger schema")?;
            tx.commit().await.context("creating ledger schema")?;
        } else {
            sqlx::raw_sql(AssertSqlSafe(schema(pg)))
                .execute(&pool)
                .await
                .context("creating ledger schema")?;
        }
        // Ledgers made before the report existed lack these columns.
        if !pg {
            for alter in [
                "ALTER TABLE events ADD COLUMN room TEXT",
                "ALTER TABLE events ADD COLUMN sent_at TEXT",
            ] {
                if let Err(e) = sqlx::query(alter).execute(&pool).await
                    && !e.to_string().contains("duplicate column")
                {
                    return Err(e).context("upgrading ledger schema");
                }
            }
        }
        Ok(Self { pool, pg })
    }

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
    async fn event_field(
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

    /// Malformed inputs recorded at `[since, until)`: their times.
    pub async fn reject_times(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> anyhow::Result<Vec<DateTime<Utc>>> {
        let rows = sqlx::query(
            q(self.pg, "SELECT at FROM rejects WHERE (CAST(?1 AS TEXT) IS NULL OR at >= ?1) AND (CAST(?2 AS TEXT) IS NULL OR at < ?2) ORDER BY at"),
        )
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

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn save_thread(
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

async fn record_decision(
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
