//! Edits, redactions and reactions: acting on a message the thread already has
//! (filed, held or quarantined), under the same rules as a new message.

use super::filing::{file_edit, move_task};
use super::message::{after_new_patients, flagged, foreign_spans, hold, message, remember};
use super::{Decision, Outcome, Policy, Write, reason};
use crate::decide::state::{Held, ThreadState, near_miss};
use crate::decide::task::{Status, TaskChange};
use crate::event::ChatEvent;
use crate::identify::Found;
use chrono::{DateTime, Utc};

pub(super) fn edit(
    state: &mut ThreadState,
    event: ChatEvent,
    found: Found,
    now: DateTime<Utc>,
    policy: &Policy,
    out: &mut Vec<Decision>,
) {
    let target = event.target.clone().unwrap_or_default();
    let filed_to = state.filed.get(&target).cloned();
    // An edit's spans are weighed against the patient its target is filed to.
    let foreign = foreign_spans(&found, filed_to.as_ref());
    let why = flagged(&found);
    let ids = found.valid;
    if let Some(p) = filed_to {
        if ids.iter().any(|id| *id != p) {
            // The patient the edit names is named in the thread from now on.
            for id in &ids {
                state.add_patient(id);
            }
            out.push(Decision::new(
                event,
                Outcome::Quarantined,
                Some(reason::EDIT_CHANGES_PATIENT),
                ids,
            ));
        } else if found.invalid > 0 || !foreign.is_empty() {
            out.push(Decision::new(event, Outcome::Quarantined, Some(why), ids));
            state.unexplained.extend(foreign);
        } else {
            out.push(file_edit(state, event, p, ids, target, policy));
        }
    } else if state.held.iter().any(|h| h.event.id == target) {
        // Held with its target; when the thread names its patient the edit
        // is filed after the message it edits. An edit that itself names a
        // patient (or holds anything identifier-like) is not filed on a guess.
        if ids.is_empty() && found.invalid == 0 && foreign.is_empty() {
            out.push(hold(state, event, now, policy));
        } else if let ([id], 0, true, 0, false) = (
            ids.as_slice(),
            found.invalid,
            foreign.is_empty(),
            state.patients.len(),
            state.suspect(),
        ) {
            // The edit names the thread's first patient (late identification,
            // rule 3): the thread's held messages are filed to it, then the
            // edit replaces its target's content.
            let id = id.clone();
            state.add_patient(&id);
            after_new_patients(state, 0, out, policy);
            if state.filed.contains_key(&target) {
                out.push(file_edit(state, event, id, ids, target, policy));
            } else {
                // Its target was an edit of its own or went elsewhere.
                out.push(Decision::new(
                    event,
                    Outcome::Quarantined,
                    Some(reason::EDIT_CHANGES_PATIENT),
                    ids,
                ));
            }
        } else {
            let had = state.patients.len();
            remember(state, &ids, foreign);
            out.push(Decision::new(
                event,
                Outcome::Quarantined,
                Some(reason::EDIT_CHANGES_PATIENT),
                ids,
            ));
            after_new_patients(state, had, out, policy);
        }
    } else if state.quarantined.get(&target) == Some(&event.sender)
        && ids.len() == 1
        && found.invalid == 0
        && foreign.is_empty()
    {
        // The sender's edit of their own quarantined message that names one
        // patient and nothing else identifier-like (a mistyped number put
        // right): their corrected message, decided on its own text as a new
        // message (rule 1 and the thread's rules). The original stays in
        // quarantine for review.
        // The mistyped number the edit puts right is gone from the chat.
        state
            .unexplained
            .retain(|span| !ids.iter().any(|id| near_miss(span, &id.value)));
        let found = Found {
            valid: ids,
            ..found
        };
        message(state, event, found, now, policy, out);
    } else {
        // Not applied (its target was quarantined or is unknown), but what it
        // names still counts in the thread: a later message must not inherit
        // one patient while an edit named another.
        let had = state.patients.len();
        remember(state, &ids, foreign);
        out.push(Decision::new(
            event,
            Outcome::Ignored,
            Some(reason::TARGET_NOT_FILED),
            ids,
        ));
        after_new_patients(state, had, out, policy);
    }
}

pub(super) fn redaction(state: &mut ThreadState, event: ChatEvent, out: &mut Vec<Decision>) {
    let target = event.target.clone().unwrap_or_default();
    if let Some(p) = state.filed.get(&target).cloned() {
        let mut d = Decision::new(event, Outcome::Filed, None, Vec::new());
        d.patient = Some(p);
        // Its open Task is cancelled; nothing is deleted from the record.
        if let Some(t) = state.tasks.get_mut(&target)
            && t.status.is_open()
        {
            t.status = Status::Cancelled;
            t.last_modified = d.event.sent_at;
            d.task = Some(TaskChange {
                request_id: target.clone(),
                task: t.clone(),
                created: false,
            });
        }
        state.redacted.insert(target.clone());
        // Its content is withdrawn: nothing of it is kept to revert to.
        state.versions.remove(&target);
        let meta = state.meta.get(&target).cloned();
        d.write = Some(Write::Redact { target, meta });
        out.push(d);
    } else if let Some(message) = state.edits.remove(&target) {
        redact_edit(state, event, target, message, out);
    } else if state.held.iter().any(|h| h.event.id == target) {
        // Redacted before filing: its content (and held edits of it) is deleted.
        let (gone, kept): (Vec<Held>, Vec<Held>) =
            std::mem::take(&mut state.held).into_iter().partition(|h| {
                h.event.id == target || h.event.target.as_deref() == Some(target.as_str())
            });
        state.held = kept;
        out.push(Decision::new(
            event,
            Outcome::Ignored,
            Some(reason::REDACTED),
            Vec::new(),
        ));
        for h in gone {
            out.push(Decision::new(
                h.event,
                Outcome::Ignored,
                Some(reason::REDACTED),
                Vec::new(),
            ));
        }
    } else {
        out.push(Decision::new(
            event,
            Outcome::Ignored,
            Some(reason::TARGET_NOT_FILED),
            Vec::new(),
        ));
    }
}

/// Redaction of the applied edit `edit` of `message`: the message shows the
/// content it had before that edit again, as a new version of its
/// Communication (Matrix: a redacted replacement is not shown). An edit that
/// a later edit had already replaced changes nothing; when the earlier
/// content is no longer kept, a person restores the record (quarantine).
pub(super) fn redact_edit(
    state: &mut ThreadState,
    event: ChatEvent,
    edit: String,
    message: String,
    out: &mut Vec<Decision>,
) {
    let patient = state.filed.get(&message).cloned();
    let meta = state.meta.get(&message).cloned();
    let versions = state.versions.entry(message.clone()).or_default();
    let at = versions
        .iter()
        .position(|v| v.edit.as_deref() == Some(&edit));
    let shown = at.is_some_and(|i| i + 1 == versions.len());
    if let Some(i) = at {
        versions.remove(i);
    }
    let before = versions.last().cloned();
    if versions.is_empty() {
        state.versions.remove(&message);
    }
    let redacted = state.redacted.contains(&message);
    let superseded = redacted || (at.is_some() && !shown);
    match (patient, meta, before) {
        _ if superseded => out.push(Decision::new(
            event,
            Outcome::Ignored,
            Some(reason::EDIT_SUPERSEDED),
            Vec::new(),
        )),
        (Some(p), Some(meta), Some(v)) if at.is_some() => {
            let mut d = Decision::new(event, Outcome::Filed, None, Vec::new());
            d.patient = Some(p);
            d.write = Some(Write::Edit {
                target: message,
                meta,
                content: Some(Box::new(v)),
            });
            out.push(d);
        }
        _ => out.push(Decision::new(
            event,
            Outcome::Quarantined,
            Some(reason::REVERT_UNAVAILABLE),
            Vec::new(),
        )),
    }
}

/// A reaction moves on the open Task of the message it reacts to; otherwise
/// it is ignored.
pub(super) fn reaction(
    state: &mut ThreadState,
    event: ChatEvent,
    found: Found,
    policy: &Policy,
    out: &mut Vec<Decision>,
) {
    let target = event.target.clone().unwrap_or_default();
    let to = event.key.as_deref().and_then(|k| policy.tasks.reaction(k));
    if let Some(to) = to
        && let Some(t) = state.tasks.get_mut(&target)
        && t.status.can_move_to(to)
    {
        move_task(t, to, &event);
        let change = TaskChange {
            request_id: target,
            task: t.clone(),
            created: false,
        };
        let mut d = Decision::new(event, Outcome::Filed, None, found.valid);
        d.patient = Some(change.task.patient.clone());
        d.write = Some(Write::TaskOnly);
        d.task = Some(change);
        out.push(d);
        return;
    }
    out.push(Decision::new(
        event,
        Outcome::Ignored,
        Some(reason::REACTION),
        found.valid,
    ));
}
