//! A new message: rules 1–5 of the module documentation, the release of held
//! messages when the thread names its patient, and the message's Task.

use super::filing::{file, file_edit};
use super::{Decision, Outcome, Policy, reason};
use crate::decide::state::{Held, ThreadState};
use crate::event::{ChatEvent, EventKind};
use crate::identify::{Found, Identifier};
use chrono::{DateTime, Utc};

pub(super) fn message(
    state: &mut ThreadState,
    event: ChatEvent,
    found: Found,
    now: DateTime<Utc>,
    policy: &Policy,
    out: &mut Vec<Decision>,
) {
    let had = state.patients.len();
    // Without its own identifier, a message is weighed against its thread's
    // single patient.
    let context = match state.patients.as_slice() {
        [one] if found.valid.is_empty() && !state.suspect() => Some(one),
        _ => None,
    };
    let foreign = foreign_spans(&found, context);
    let why = flagged(&found);
    let ids = found.valid;
    if ids.len() >= 2 {
        for id in &ids {
            state.add_patient(id);
        }
        out.push(Decision::new(
            event,
            Outcome::Quarantined,
            Some(reason::MULTI_PATIENT),
            ids,
        ));
        after_new_patients(state, had, out, policy);
        return;
    }
    if found.invalid > 0 || !foreign.is_empty() {
        // Its own patient still counts in the thread: a later message must
        // not inherit another patient as if this one had not been named.
        remember(state, &ids, foreign);
        let mut named = ids;
        named.extend(found.negated);
        out.push(Decision::new(event, Outcome::Quarantined, Some(why), named));
        after_new_patients(state, had, out, policy);
        return;
    }
    if let Some(id) = ids.first().cloned() {
        state.add_patient(&id);
        if state.patients.len() == 1 {
            for l in &found.locations {
                if !state.locations.contains(l) {
                    state.locations.push(l.clone());
                }
            }
        }
        // The thread's held messages go first: they are earlier and may be the root.
        after_new_patients(state, had, out, policy);
        out.push(file(state, event, id, ids, policy));
        return;
    }
    match (state.patients.len(), state.suspect()) {
        // No patient yet: held, even when a span is unexplained (a patient
        // named later may explain it).
        (0, _) => out.push(hold(state, event, now, policy)),
        (1, false) if let Some(place) = other_location(state, &found.locations) => {
            // "seen SR3 ..." in the thread of the patient in SR4: perhaps
            // another patient; from now on the thread may be about two.
            state.unexplained.push(place);
            out.push(Decision::new(
                event,
                Outcome::Quarantined,
                Some(reason::OTHER_LOCATION),
                ids,
            ));
        }
        (1, false) => {
            let p = state.patients[0].clone();
            out.push(file(state, event, p, ids, policy));
        }
        _ => out.push(Decision::new(
            event,
            Outcome::Quarantined,
            Some(reason::AMBIGUOUS),
            ids,
        )),
    }
}

/// What a quarantined or unapplied event names still counts in its thread:
/// its patients, and its spans that nothing explains.
pub(super) fn remember(state: &mut ThreadState, ids: &[Identifier], foreign: Vec<String>) {
    for id in ids {
        state.add_patient(id);
    }
    state.unexplained.extend(foreign);
}

/// A location the message names that differs from the thread patient's known
/// location of the same kind (bed, bay, side room, ...).
pub(super) fn other_location(state: &ThreadState, named: &[String]) -> Option<String> {
    named
        .iter()
        .find(|l| {
            let class = l.split(':').next().unwrap_or("");
            !state.locations.contains(l)
                && state
                    .locations
                    .iter()
                    .any(|k| k.split(':').next() == Some(class))
        })
        .map(|l| format!("location:{l}"))
}

/// The identifier-like spans (and mistyped numbers) of the event that neither
/// its own identifiers nor `context` explain (the same number). A negated
/// identifier is never explained.
pub(super) fn foreign_spans(found: &Found, context: Option<&Identifier>) -> Vec<String> {
    let negated: Vec<&str> = found.negated.iter().map(|i| i.value.as_str()).collect();
    found
        .unrecognised
        .iter()
        .filter(|span| {
            negated.contains(&span.as_str())
                || !found
                    .valid
                    .iter()
                    .chain(context)
                    .any(|id| **span == id.value)
        })
        .cloned()
        .collect()
}

/// The reason a message or edit with a mistyped number or a foreign span is
/// quarantined: rule 6 first.
pub(super) fn flagged(found: &Found) -> &'static str {
    if found.invalid > 0 {
        reason::INVALID_IDENTIFIER
    } else {
        reason::UNRECOGNISED_IDENTIFIER
    }
}

/// Keep the event's content until the thread names its patient or the window passes.
pub(super) fn hold(
    state: &mut ThreadState,
    event: ChatEvent,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Decision {
    state.held.push(Held {
        event: event.clone(),
        expires_at: now + policy.hold_window,
    });
    Decision::new(event, Outcome::Held, None, Vec::new())
}

/// After the thread's patients grew from `had`: release held events — filed to
/// the single patient, or quarantined as ambiguous once there are several.
pub(super) fn after_new_patients(
    state: &mut ThreadState,
    had: usize,
    out: &mut Vec<Decision>,
    policy: &Policy,
) {
    if had != 0 || state.patients.is_empty() || state.held.is_empty() {
        return;
    }
    let held = std::mem::take(&mut state.held);
    if state.patients.len() == 1 && !state.suspect() {
        let p = state.patients[0].clone();
        for h in held {
            match h.event.kind {
                EventKind::Edit => {
                    let target = h.event.target.clone().unwrap_or_default();
                    if state.filed.contains_key(&target) {
                        out.push(file_edit(
                            state,
                            h.event,
                            p.clone(),
                            Vec::new(),
                            target,
                            policy,
                        ));
                    } else {
                        out.push(Decision::new(
                            h.event,
                            Outcome::Ignored,
                            Some(reason::TARGET_NOT_FILED),
                            Vec::new(),
                        ));
                    }
                }
                _ => out.push(file(state, h.event, p.clone(), Vec::new(), policy)),
            }
        }
    } else {
        for h in held {
            out.push(Decision::new(
                h.event,
                Outcome::Quarantined,
                Some(reason::AMBIGUOUS),
                Vec::new(),
            ));
        }
    }
}
