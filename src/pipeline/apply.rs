//! One event to a durable outcome: dedup → identify → decide → write →
//! commit, the wait while the sink is away (AMQP), and the expiry sweep of
//! held content.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{debug, warn};

use crate::decide::state::ThreadState;
use crate::decide::{self, Outcome};
use crate::event::{ChatEvent, EventKind};
use crate::ledger::Pending;
use crate::source::amqp::AmqpMsg;

use super::outcomes::{Settle, outcome_row, publish_then_ack};
use super::write::write;
use super::*;
use crate::backoff::Backoff;

/// Process one event to a durable outcome, then acknowledge its delivery.
/// Returns the outcome events to publish and whether to acknowledge. With AMQP,
/// an unreachable sink is waited out (the thread stalls, readiness goes false).
pub(super) async fn process(
    sh: &Shared,
    ev: ChatEvent,
    key: &str,
    msg: Option<Box<AmqpMsg>>,
) -> anyhow::Result<(Vec<Pending>, bool)> {
    let Some(b) = &sh.broker else {
        return one(sh, ev, key).await.map(|p| (p, true));
    };
    let mut backoff = Backoff::new(
        Duration::from_millis(sh.cfg.fhir.backoff_initial_ms),
        Duration::from_millis(sh.cfg.fhir.backoff_max_ms),
    );
    let pending = loop {
        match one(sh, ev.clone(), key).await {
            Ok(p) => {
                sh.health.stalled.store(false, Ordering::SeqCst);
                break p;
            }
            Err(e) if e.is::<SinkUnavailable>() => {
                sh.health.stalled.store(true, Ordering::SeqCst);
                if b.stopping() {
                    // Left unacknowledged: the broker redelivers it.
                    return Ok((Vec::new(), false));
                }
                let wait = backoff.next_wait();
                warn!(event_id = %ev.id, thread = key, retry_in_ms = wait.as_millis() as u64, error = %e, "sink unavailable; event waits (not acknowledged)");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = b.stopped() => {}
                }
            }
            Err(e) => return Err(e),
        }
    };
    let acked = publish_then_ack(sh, b, msg.as_deref(), Settle::Outbox(pending)).await?;
    Ok((Vec::new(), acked))
}

/// Decide, write and commit one event. Returns its outcome events to publish.
pub(super) async fn one(sh: &Shared, ev: ChatEvent, key: &str) -> anyhow::Result<Vec<Pending>> {
    if sh.ledger.seen(&ev.platform, &ev.id).await?.is_some() {
        sh.summary
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .duplicates += 1;
        debug!(event_id = %ev.id, "duplicate event: already decided");
        // A crash may have come between its commit and its outcome event.
        return if sh.outcomes {
            sh.ledger.pending_outcomes_of(&ev.platform, &ev.id).await
        } else {
            Ok(Vec::new())
        };
    }
    let now = Utc::now();
    let state = sh.ledger.load_thread(key).await?;
    let ev = first_seen(sh, ev, &state).await?;
    let found = sh.identify.find(&ev);
    let step = decide::decide(state, ev, found, now, &sh.policy);
    apply(sh, key, step, now).await
}

/// An edit of a message the bridge has never seen is that message, with its
/// current content: Microsoft Graph delta queries, list calls and `updated`
/// notifications deliver a message already edited, and a Matrix
/// replacement carries the whole new content. It becomes the message (its
/// id is the target's), so a later delivery of the original is a duplicate
/// and later edits find it. A target the bridge has decided (filed,
/// quarantined, ignored) or holds is never replaced this way.
pub(super) async fn first_seen(
    sh: &Shared,
    ev: ChatEvent,
    state: &ThreadState,
) -> anyhow::Result<ChatEvent> {
    let Some(target) = ev.target.as_deref().filter(|_| ev.kind == EventKind::Edit) else {
        return Ok(ev);
    };
    let known = state.filed.contains_key(target)
        || state.held.iter().any(|h| h.event.id == target)
        || sh.ledger.seen(&ev.platform, target).await?.is_some();
    if known {
        return Ok(ev);
    }
    debug!(event_id = %ev.id, "edit of a message never seen: decided as the message");
    let mut m = ev;
    m.id = m.target.take().unwrap_or_default();
    m.kind = EventKind::Message;
    Ok(m)
}

/// Write a step's decisions in order, then commit them with the new state.
pub(super) async fn apply(
    sh: &Shared,
    key: &str,
    mut step: decide::Step,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Pending>> {
    let mut outbox = Vec::new();
    for i in 0..step.decisions.len() {
        let mut resources = Vec::new();
        if step.decisions[i].outcome == Outcome::Filed {
            let verdict;
            (resources, verdict) = write(sh, &step.decisions[i], now).await?;
            step.after_write(i, verdict);
        }
        let d = &step.decisions[i];
        if d.outcome == Outcome::Rejected {
            let why = d.reason.as_deref().unwrap_or("rejected");
            sh.rejects
                .refused(&sh.source_name, &d.event, why, d.detail.as_deref())
                .await?;
        }
        debug!(event_id = %d.event.id, thread = key, outcome = d.outcome.as_str(), reason = d.reason.as_deref(), "decided");
        sh.out.print(&d.line())?;
        if sh.outcomes {
            outbox.push(outcome_row(d, &resources, now));
        }
    }
    let pending = sh
        .ledger
        .commit(key, &step.state, &step.decisions, &outbox, now)
        .await?;
    let m = crate::metrics::metrics();
    let mut s = sh.summary.lock().unwrap_or_else(PoisonError::into_inner);
    for d in &step.decisions {
        s.count(d);
        m.decided(d.outcome.as_str(), d.reason.as_deref());
        let lag = (now - d.event.sent_at.with_timezone(&Utc)).num_milliseconds() as f64 / 1000.0;
        m.event_lag.observe(lag.max(0.0));
    }
    Ok(pending)
}

/// Expire held content past its window in every thread.
pub(super) async fn sweep(sh: &Shared, now: DateTime<Utc>) -> anyhow::Result<Vec<Pending>> {
    let mut pending = Vec::new();
    for key in threads_to_sweep(sh, now).await? {
        pending.extend(expire_thread(sh, &key, now).await?);
    }
    Ok(pending)
}

/// Threads with held content past its window, or with kept message content
/// past its window (no decision since then).
pub(super) async fn threads_to_sweep(
    sh: &Shared,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<String>> {
    let mut keys = sh.ledger.threads_with_expired_holds(now).await?;
    let before = now
        .checked_sub_signed(sh.policy.hold_window)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    for k in sh.ledger.threads_with_old_content(before).await? {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    Ok(keys)
}

/// Delete one thread's expired held content, recording the outcomes.
pub(super) async fn expire_thread(
    sh: &Shared,
    key: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Pending>> {
    let state = sh.ledger.load_thread(key).await?;
    let kept = |s: &ThreadState| s.versions.values().map(Vec::len).sum::<usize>();
    let before = kept(&state);
    let step = decide::expire(state, now);
    if step.decisions.is_empty() && kept(&step.state) == before {
        return Ok(Vec::new());
    }
    debug!(
        thread = key,
        expired = step.decisions.len(),
        "held content expired"
    );
    apply(sh, key, step, now).await
}
