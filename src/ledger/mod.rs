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
use sqlx::AssertSqlSafe;
use sqlx::any::AnyPoolOptions;

mod outbox;
mod partitions;
mod quarantine;
mod queries;
mod threads;

pub use outbox::{OutboxRow, Pending};
pub use partitions::Leases;
pub use quarantine::{AuditRow, QuarantineItem};
pub use queries::EventRow;

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
CREATE TABLE IF NOT EXISTS ignored_inputs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    platform TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL
);
"#;
/// The schema for a backend: PostgreSQL gets 64-bit identity keys.
/// Every SQLite connection: write-ahead log, and a wait for a busy database.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON;";

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
            let url = format!("sqlite://{enc}?mode=rwc");
            // One connection first, so that a file that is not a SQLite
            // database, or cannot be written, is named at once (a pool
            // would retry it until its acquire timeout).
            {
                use sqlx::Connection as _;
                let unusable = |e: sqlx::Error| {
                    crate::config::SettingError(format!(
                        "ledger {}: cannot be used as a SQLite ledger: {e}",
                        path.display()
                    ))
                };
                let mut c = sqlx::AnyConnection::connect(&url).await.map_err(unusable)?;
                sqlx::raw_sql(SQLITE_PRAGMAS)
                    .execute(&mut c)
                    .await
                    .map_err(unusable)?;
                c.close().await.map_err(unusable)?;
            }
            AnyPoolOptions::new()
                .max_connections(4)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        sqlx::raw_sql(SQLITE_PRAGMAS).execute(conn).await?;
                        Ok(())
                    })
                })
                .connect(&url)
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

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
