//! Outcome events (ARCHITECTURE §8): built from a decision, kept in the
//! ledger's outbox, published broker-confirmed before the acknowledgement.

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::decide::Decision;
use crate::ledger::{OutboxRow, Pending};
use crate::source::amqp::Broker;

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

/// Publish an outcome event that has no ledger row (rejected or ignored
/// deliveries: they are acknowledged only after this). `false`: not
/// published; the delivery stays unacknowledged and comes back.
pub(super) async fn publish_direct(
    sh: &Shared,
    b: &Broker,
    routing_key: &str,
    payload: &serde_json::Value,
    event_id: Option<&str>,
) -> bool {
    if !sh.outcomes {
        return true;
    }
    match b
        .publish(
            &b.config().outcomes_exchange,
            routing_key,
            payload.to_string().as_bytes(),
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

/// The outcome event of a decision (ARCHITECTURE §8): no message text.
pub(super) fn outcome_row(d: &Decision, resources: Vec<String>, now: DateTime<Utc>) -> OutboxRow {
    let e = &d.event;
    let payload = serde_json::json!({
        "event_id": e.id,
        "platform": e.platform,
        "room": e.room,
        "thread": e.thread.as_deref().unwrap_or(&e.id),
        "outcome": d.outcome.as_str(),
        "reason": d.reason,
        "patient": d.patient,
        "resources": resources,
        "decided_at": ts(now),
    });
    OutboxRow {
        platform: e.platform.clone(),
        event_id: e.id.clone(),
        routing_key: format!("{}.{}", d.outcome.as_str(), e.platform),
        payload: payload.to_string(),
    }
}
