//! Outcome events (ARCHITECTURE §8): built from a decision, kept in the
//! ledger's outbox, published broker-confirmed before the acknowledgement.

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::decide::{Decision, Outcome};
use crate::identify::Identifier;
use crate::ledger::{OutboxRow, Pending};
use crate::source::amqp::{AmqpMsg, Broker};

use super::*;

pub(super) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(super) fn outcome_props(event_id: Option<&str>) -> lapin::BasicProperties {
    let p = lapin::BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_type("recordbridge.outcome.v1".into());
    match event_id {
        Some(id) => p.with_message_id(id.into()),
        None => p,
    }
}

/// A delivery's outcome events, to publish before it is acknowledged.
pub(super) enum Settle<'a> {
    /// One that has no ledger row (an ignored or rejected delivery).
    Direct(&'a OutcomeEvent<'a>),
    /// Those the ledger committed to its outbox with the decisions.
    Outbox(Vec<Pending>),
}

/// Publish a delivery's outcome events (broker-confirmed), then acknowledge
/// it: a crash in between leaves the outcome (in the outbox) and the delivery
/// unacknowledged, never an acknowledged delivery without its outcome.
/// `Ok(false)`: not published; the delivery stays unacknowledged and comes
/// back.
pub(super) async fn publish_then_ack(
    sh: &Shared,
    b: &Broker,
    m: Option<&AmqpMsg>,
    outcomes: Settle<'_>,
) -> anyhow::Result<bool> {
    let published = match outcomes {
        Settle::Direct(ev) => publish_direct(sh, b, ev).await,
        Settle::Outbox(pending) => publish_outcomes(sh, pending).await?,
    };
    if !published {
        return Ok(false);
    }
    if let Some(m) = m {
        b.ack(m).await;
    }
    Ok(true)
}

/// Publish an outcome event that has no ledger row (rejected or ignored
/// deliveries: they are acknowledged only after this). `false`: not
/// published; the delivery stays unacknowledged and comes back.
async fn publish_direct(sh: &Shared, b: &Broker, ev: &OutcomeEvent<'_>) -> bool {
    if !sh.outcomes {
        return true;
    }
    let (routing_key, payload, event_id) = (&ev.routing_key(), ev.payload(), ev.event_id);
    match b
        .publish(
            &b.config().outcomes_exchange,
            routing_key,
            payload.as_bytes(),
            outcome_props(event_id),
        )
        .await
    {
        Ok(_) => true,
        Err(e) => {
            warn!(error = %e, routing_key, "outcome event not published; the delivery will be redelivered");
            false
        }
    }
}

/// Publish outcome events from the outbox (broker-confirmed), then forget
/// them. `Ok(false)`: abandoned because the bridge is stopping while the broker
/// is away; they stay in the outbox and are published at the next start.
pub(super) async fn publish_outcomes(sh: &Shared, pending: Vec<Pending>) -> anyhow::Result<bool> {
    let Some(b) = sh.broker.as_ref().filter(|_| sh.outcomes) else {
        return Ok(true);
    };
    let mut done = Vec::with_capacity(pending.len());
    let mut all = true;
    for p in &pending {
        if let Err(e) = b
            .publish(
                &b.config().outcomes_exchange,
                &p.routing_key,
                p.payload.as_bytes(),
                outcome_props(Some(&p.event_id)),
            )
            .await
        {
            warn!(error = %e, "outcome events kept in the outbox for the next start");
            all = false;
            break;
        }
        done.push(p.seq);
    }
    sh.ledger.published(&done).await?;
    Ok(all)
}

/// Publish what a crash left in the outbox.
pub(super) async fn flush_outbox(sh: &Shared) -> anyhow::Result<()> {
    loop {
        let pending = sh.ledger.pending_outcomes(500).await?;
        if pending.is_empty() {
            return Ok(());
        }
        info!(
            count = pending.len(),
            "publishing outcome events left by an earlier run"
        );
        if !publish_outcomes(sh, pending).await? {
            return Ok(());
        }
    }
}

/// The chat event an outcome is about, as far as it is known (a malformed
/// delivery may have no id, room or thread).
pub(super) struct About<'a> {
    pub event_id: Option<&'a str>,
    pub platform: &'a str,
    pub room: Option<&'a str>,
    pub thread: Option<&'a str>,
}

/// ARCHITECTURE §8 outcome event: the decision on one event, with no message
/// text. Built only by [`OutcomeEvent::new`].
#[derive(serde::Serialize)]
pub(super) struct OutcomeEvent<'a> {
    event_id: Option<&'a str>,
    platform: &'a str,
    room: Option<&'a str>,
    thread: Option<&'a str>,
    outcome: Outcome,
    reason: Option<&'a str>,
    /// Why a malformed delivery was rejected (the parser's message).
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    patient: Option<&'a Identifier>,
    resources: &'a [String],
    decided_at: String,
}

impl<'a> OutcomeEvent<'a> {
    pub(super) fn new(
        about: About<'a>,
        outcome: Outcome,
        (reason, detail): (Option<&'a str>, Option<&'a str>),
        patient: Option<&'a Identifier>,
        resources: &'a [String],
        now: DateTime<Utc>,
    ) -> Self {
        OutcomeEvent {
            event_id: about.event_id,
            platform: about.platform,
            room: about.room,
            thread: about.thread,
            outcome,
            reason,
            detail,
            patient,
            resources,
            decided_at: ts(now),
        }
    }

    /// `<outcome>.<platform>`, the routing key it is published with.
    pub(super) fn routing_key(&self) -> String {
        format!("{}.{}", self.outcome.as_str(), self.platform)
    }

    pub(super) fn payload(&self) -> String {
        serde_json::to_string(self).expect("an outcome event serialises")
    }
}

/// The outbox row of a decision's outcome event.
pub(super) fn outcome_row(d: &Decision, resources: &[String], now: DateTime<Utc>) -> OutboxRow {
    let e = &d.event;
    let about = About {
        event_id: Some(&e.id),
        platform: &e.platform,
        room: Some(&e.room),
        thread: Some(e.thread.as_deref().unwrap_or(&e.id)),
    };
    let reason = (d.reason.as_deref(), None);
    let ev = OutcomeEvent::new(about, d.outcome, reason, d.patient.as_ref(), resources, now);
    OutboxRow {
        platform: e.platform.clone(),
        event_id: e.id.clone(),
        routing_key: ev.routing_key(),
        payload: ev.payload(),
    }
}
