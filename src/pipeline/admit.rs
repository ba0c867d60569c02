//! Admission of a delivery: adapted to chat event v1 and routed to its
//! thread, or ignored (not chat) or rejected (malformed: the reject report of
//! a file, the dead-letter queue of a broker), each with its reason.

use std::sync::PoisonError;

use chrono::{DateTime, Utc};
use tracing::{debug, warn};

use crate::decide::{DecisionLine, Outcome, reason};
use crate::event::ChatEvent;
use crate::source::Delivery;
use crate::source::amqp::AmqpMsg;

use super::outcomes::{About, OutcomeEvent, Settle, publish_then_ack};
use super::route::{RecentThreads, thread_key};
use super::*;

/// The format of a delivery: its format header (AMQP), else the setting `format`.
pub(super) fn format_of<'a>(
    sh: &'a Shared,
    d: &Delivery,
) -> Result<crate::adapt::Format<'a>, String> {
    let named = d
        .amqp
        .as_ref()
        .and_then(|m| m.header_text(&sh.cfg.amqp.format_header));
    let name = named.as_deref().unwrap_or(&sh.cfg.format);
    sh.formats.get(name).ok_or_else(|| {
        let shown: String = name.chars().take(64).collect();
        format!(
            "header `{}`: `{shown}` is not a known format (known: {})",
            sh.cfg.amqp.format_header,
            sh.formats.names().join(", ")
        )
    })
}

/// Adapt a delivery to chat event v1 and find its thread; malformed input is
/// rejected and events that are not chat (a platform's state or system
/// events) are ignored here.
pub(super) async fn dispatch(
    sh: &Shared,
    recent: &mut RecentThreads,
    d: Delivery,
) -> anyhow::Result<Option<(ChatEvent, String, Option<AmqpMsg>)>> {
    let adapted = d.body.as_deref().map_err(|e| e.clone()).and_then(|s| {
        let format = format_of(sh, &d)?;
        crate::adapt::adapt(format, s, &sh.cfg.platform)
    });
    match adapted {
        Ok(crate::adapt::Adapted::Event(ev)) => {
            let key = thread_key(sh, recent, &ev).await?;
            Ok(Some((*ev, key, d.amqp)))
        }
        Ok(crate::adapt::Adapted::Ignored {
            id,
            platform,
            reason,
            event_type,
        }) => {
            let what = (id.as_deref(), &platform[..], event_type.as_deref());
            ignore(sh, &d, what, &reason, Utc::now()).await?;
            Ok(None)
        }
        Err(reason) => {
            reject(sh, &d, &reason, Utc::now()).await?;
            Ok(None)
        }
    }
}

/// The reason a mapping gives an end-to-end encrypted event (`matrix.toml`).
pub const ENCRYPTED: &str = "encrypted";

/// A platform event that is not a chat message (room state, a system
/// message, an event type no rule maps): decided `ignored` with the mapping's
/// reason. Nothing is filed or dead-lettered; with AMQP an outcome event is
/// published and the message acknowledged.
pub(super) async fn ignore(
    sh: &Shared,
    d: &Delivery,
    (id, platform, event_type): (Option<&str>, &str, Option<&str>),
    why: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    sh.summary
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .ignored += 1;
    // The event type is a checked token (mapping.rs), never content.
    debug!(line = d.seq, source = %sh.source_name, platform, event_type, reason = why, "ignored a platform event that is not a chat message");
    crate::metrics::metrics().decided("ignored", Some(why));
    if why == ENCRYPTED {
        crate::metrics::metrics()
            .encrypted
            .get_or_create(&vec![("platform".to_owned(), platform.to_owned())])
            .inc();
        warn!(line = d.seq, source = %sh.source_name, platform, "an end-to-end encrypted event: the bridge cannot read it, so nothing of its room reaches the record");
    }
    sh.out
        .print(&DecisionLine::without_event(id, Outcome::Ignored, why))?;
    sh.ledger.record_ignored(platform, why, now).await?;
    if let (Some(b), Some(m)) = (&sh.broker, &d.amqp) {
        let about = About {
            event_id: id,
            platform,
            room: None,
            thread: None,
        };
        let ev = OutcomeEvent::new(about, Outcome::Ignored, (Some(why), None), None, &[], now);
        publish_then_ack(sh, b, Some(m), Settle::Direct(&ev)).await?;
    }
    Ok(())
}

pub(super) async fn reject(
    sh: &Shared,
    d: &Delivery,
    why: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    sh.summary
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .rejected += 1;
    warn!(line = d.seq, source = %sh.source_name, reason = why, "rejected malformed event");
    crate::metrics::metrics().decided("rejected", Some(reason::MALFORMED));
    let id_of = || {
        d.body
            .as_ref()
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
    };
    if matches!(sh.out, Output::DryRun(_)) {
        let id = id_of().and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned));
        let line = DecisionLine::without_event(id.as_deref(), Outcome::Rejected, reason::MALFORMED);
        sh.out.print(&line)?;
    } else if !sh.rejects.malformed(&sh.source_name, d, why).await? {
        // Not kept: left unacknowledged, it comes back after a reconnect.
        return Ok(());
    }
    sh.ledger
        .record_reject(&format!("{}:{}", sh.source_name, d.seq), why, now)
        .await?;
    if let (Some(b), Some(m)) = (&sh.broker, &d.amqp) {
        let v = id_of();
        let field = |k: &str| {
            v.as_ref()
                .and_then(|v| v.get(k))
                .and_then(|x| x.as_str())
                .filter(|x| !x.is_empty() && x.len() <= 256)
                .map(str::to_owned)
        };
        let platform = field("platform").unwrap_or_else(|| sh.cfg.platform.clone());
        let (id, room, thread) = (field("id"), field("room"), field("thread"));
        let about = About {
            event_id: id.as_deref(),
            platform: &platform,
            room: room.as_deref(),
            thread: thread.as_deref(),
        };
        let why = (Some(reason::MALFORMED), Some(why));
        let ev = OutcomeEvent::new(about, Outcome::Rejected, why, None, &[], now);
        publish_then_ack(sh, b, Some(m), Settle::Direct(&ev)).await?;
    }
    Ok(())
}
