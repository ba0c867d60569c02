//! Where rejected input goes, behind one interface: the reject report of a
//! file or stdin run (one JSON line each, with the raw content), or the
//! dead-letter queue of a broker run (the message unchanged, the reason in
//! an `x-recordbridge-reason` header). Both malformed deliveries and events
//! the sink refused for good go there.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use tracing::warn;

use crate::event::ChatEvent;
use crate::source::amqp::Broker;
use crate::source::{Delivery, RawLine};

use super::SinkUnavailable;

pub(super) enum Rejects {
    /// A file or stdin run: the reject report (a dry run's has no path and
    /// writes nothing).
    Report(Mutex<RejectReport>),
    /// A broker run: its dead-letter exchange.
    DeadLetters(Arc<Broker>),
}

impl Rejects {
    /// A delivery that is not a chat event. `Ok(false)`: it could not be
    /// kept (the broker is away), so it must stay unacknowledged.
    pub(super) async fn malformed(
        &self,
        source: &str,
        d: &Delivery,
        why: &str,
    ) -> anyhow::Result<bool> {
        match self {
            Rejects::Report(r) => {
                r.lock().unwrap_or_else(PoisonError::into_inner).write(
                    source,
                    d.seq,
                    why,
                    d.body.as_deref().ok(),
                    d.raw.as_ref(),
                )?;
                Ok(true)
            }
            Rejects::DeadLetters(b) => {
                let Some(m) = &d.amqp else {
                    return Ok(true);
                };
                let body = match (&d.body, &m.raw_invalid) {
                    (Ok(s), _) => s.as_bytes(),
                    (Err(_), Some(raw)) => raw.as_slice(),
                    (Err(_), None) => &[],
                };
                if let Err(e) = b
                    .dead_letter(&m.routing_key, &m.properties, body, why)
                    .await
                {
                    warn!(error = %e, "could not dead-letter a malformed delivery; it will be redelivered");
                    return Ok(false);
                }
                Ok(true)
            }
        }
    }

    /// An event the sink refused for good: kept whole, so that it can be
    /// corrected and replayed. The broker away is the sink away: the event
    /// stays uncommitted and unacknowledged, to be redone.
    pub(super) async fn refused(
        &self,
        source: &str,
        ev: &ChatEvent,
        why: &str,
        detail: Option<&str>,
    ) -> anyhow::Result<()> {
        match self {
            Rejects::Report(r) => r
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .write_event(source, ev, why, detail),
            Rejects::DeadLetters(b) => {
                let body = serde_json::to_vec(ev)?;
                let props = lapin::BasicProperties::default()
                    .with_content_type("application/json".into())
                    .with_message_id(ev.id.as_str().into());
                // The header travels with the event's own content.
                let why = match detail {
                    Some(d) => format!("{why}: {d}"),
                    None => why.to_owned(),
                };
                b.dead_letter(&ev.platform, &props, &body, &why)
                    .await
                    .map_err(|e| SinkUnavailable(e.to_string()).into())
            }
        }
    }
}

/// Reject report: one JSON line per malformed input, with its position, reason and raw content.
pub(super) struct RejectReport {
    pub(super) path: Option<PathBuf>,
    pub(super) file: Option<std::fs::File>,
}

impl RejectReport {
    /// A line that is not a chat event: its text as `raw`, or, for a line
    /// that is not text at all, its bytes as `raw_base64` with their count
    /// (`raw_bytes`, and `raw_kept` when only the first ones are kept) and
    /// the whole line's `raw_sha256`.
    pub(super) fn write(
        &mut self,
        source: &str,
        line: u64,
        reason: &str,
        raw: Option<&str>,
        bytes: Option<&RawLine>,
    ) -> anyhow::Result<()> {
        let mut rec = serde_json::json!({"source": source, "line": line, "outcome": "rejected", "reason": reason, "raw": raw});
        if let Some(b) = bytes {
            use base64::Engine as _;
            rec["raw_base64"] = base64::engine::general_purpose::STANDARD
                .encode(&b.kept)
                .into();
            rec["raw_bytes"] = b.len.into();
            if (b.kept.len() as u64) < b.len {
                rec["raw_kept"] = b.kept.len().into();
            }
            rec["raw_sha256"] = b.sha256.clone().into();
        }
        self.append(&rec)
    }

    /// A parsed event the FHIR server refused: kept whole so it can be corrected and replayed.
    pub(super) fn write_event(
        &mut self,
        source: &str,
        ev: &ChatEvent,
        reason: &str,
        detail: Option<&str>,
    ) -> anyhow::Result<()> {
        let raw = serde_json::to_string(ev)?;
        let rec = serde_json::json!({"source": source, "event_id": ev.id, "outcome": "rejected", "reason": reason, "detail": detail, "raw": raw});
        self.append(&rec)
    }

    fn append(&mut self, rec: &serde_json::Value) -> anyhow::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let f = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening reject report {}", path.display()))?,
            ),
        };
        writeln!(f, "{rec}")?;
        f.sync_data()?;
        Ok(())
    }
}
