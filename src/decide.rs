//! The filing rules (ARCHITECTURE §4), pure: (thread state, event, identifiers,
//! now) → (decisions, new thread state). No I/O, no clock, no randomness.
//!
//! Order of the rules for one message, most protective first:
//! 1. two or more distinct patients in the message → quarantined `multi-patient`;
//! 2. an NHS-number-shaped number failing its check digit → quarantined
//!    `invalid-identifier`;
//! 3. an identifier-like span that is not a recognised identifier of the
//!    message (nor, for a message without one, of its thread's single patient)
//!    → quarantined `unrecognised-identifier` (fail safe: a number the grammar
//!    missed never lets the message inherit the thread's patient);
//! 4. exactly one patient → filed to it (and held messages of the thread are
//!    filed to it when it is the thread's first patient);
//! 5. none: thread has one patient → filed to it; two or more → quarantined
//!    `ambiguous`; none → held until the thread names its patient or the hold expires.
//!
//! Rules 2 and 3 also mark the thread as possibly naming another patient
//! (`ThreadState::unexplained`): from then on it counts as having one patient more
//! than it names, so its messages without their own identifier are quarantined
//! `ambiguous` (rule 4 of ARCHITECTURE §4), never inherited.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

mod edit;
mod filing;
mod line;
mod message;
pub mod state;
pub mod task;

pub use line::{DecisionLine, TaskLine};

use crate::decide::state::{FiledMeta, Held, ThreadState, Version};
use crate::event::{ChatEvent, EventKind};
use crate::identify::{Found, Identifier};
use edit::{edit, reaction, redaction};
use filing::file;
use message::{after_new_patients, foreign_spans, message, remember};
use task::{TaskChange, TaskRules};

/// What happened to an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Filed,
    Held,
    Quarantined,
    Ignored,
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Filed => "filed",
            Outcome::Held => "held",
            Outcome::Quarantined => "quarantined",
            Outcome::Ignored => "ignored",
            Outcome::Rejected => "rejected",
        }
    }
}

/// Reasons, named after the rule that applied (decision line `reason`).
pub mod reason {
    pub const AMBIGUOUS: &str = "ambiguous";
    pub const MULTI_PATIENT: &str = "multi-patient";
    pub const INVALID_IDENTIFIER: &str = "invalid-identifier";
    pub const UNRECOGNISED_IDENTIFIER: &str = "unrecognised-identifier";
    pub const OTHER_LOCATION: &str = "other-location";
    pub const UNKNOWN_PATIENT: &str = "unknown-patient";
    pub const AMBIGUOUS_PATIENT: &str = "ambiguous-patient";
    pub const NOT_PATIENT_RELATED: &str = "not-patient-related";
    pub const MALFORMED: &str = "malformed";
    pub const EDIT_CHANGES_PATIENT: &str = "edit-changes-patient";
    pub const TARGET_NOT_FILED: &str = "target-not-filed";
    /// An edit, redaction or reaction from another room than its target's.
    pub const OTHER_ROOM: &str = "target-in-other-room";
    /// An edit sent by someone other than its target's sender (Matrix: an
    /// invalid replacement, ignored).
    pub const NOT_SENDER: &str = "edit-not-by-sender";
    pub const REDACTED: &str = "redacted";
    pub const REACTION: &str = "reaction";
    /// A redacted edit that is not the message's shown content (a later
    /// edit replaced it): the record does not change.
    pub const EDIT_SUPERSEDED: &str = "edit-superseded";
    /// A redacted edit whose earlier content is no longer kept (hold
    /// window passed): a person restores the record.
    pub const REVERT_UNAVAILABLE: &str = "revert-unavailable";
    /// A reviewer discarded the quarantined event.
    pub const DISCARDED: &str = "discarded";
}

/// What must be written for a filed decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// A new Communication for a message.
    Communication {
        part_of: Option<String>,
        in_response_to: Option<String>,
    },
    /// An edit: the target's Communication replaced by one with the edited
    /// content (a new version; the old text stays in the server's history).
    Edit {
        target: String,
        meta: FiledMeta,
        /// The content to show, when it is not the deciding event's (a
        /// redacted edit brings back the version before it).
        content: Option<Box<Version>>,
    },
    /// Mark the target's Communication entered-in-error and remove its
    /// payload; its time, sender and thread links stay (`meta`, absent for
    /// messages filed before they were kept).
    Redact {
        target: String,
        meta: Option<FiledMeta>,
    },
    /// Only a Task changes (a reaction).
    TaskOnly,
}

/// One decision about one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub event: ChatEvent,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub patient: Option<Identifier>,
    /// Every valid identifier found in the event itself.
    pub identifiers: Vec<Identifier>,
    pub write: Option<Write>,
    /// The Task this decision creates or moves on.
    pub task: Option<TaskChange>,
    /// A refusal's explanation in the sink's own words (it may quote the
    /// event): kept with the event in the reject report, never in the
    /// reason, a log line, a metric or an outcome event.
    pub detail: Option<String>,
}

impl Decision {
    fn new(
        event: ChatEvent,
        outcome: Outcome,
        reason: Option<&str>,
        identifiers: Vec<Identifier>,
    ) -> Self {
        Self {
            event,
            outcome,
            reason: reason.map(str::to_owned),
            patient: None,
            identifiers,
            write: None,
            task: None,
            detail: None,
        }
    }

    /// The decision line of ARCHITECTURE §6.
    pub fn line(&self) -> DecisionLine<'_> {
        DecisionLine::of(self)
    }
}

/// Settings of the rules.
#[derive(Debug, Clone)]
pub struct Policy {
    /// How long held content is kept waiting for the thread's patient.
    pub hold_window: Duration,
    /// Task detection (mappings/tasks.toml).
    pub tasks: std::sync::Arc<TaskRules>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            hold_window: Duration::hours(72),
            tasks: std::sync::Arc::new(TaskRules::builtin()),
        }
    }
}

/// The result of deciding one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// In write order: earlier held events released by this one come first.
    pub decisions: Vec<Decision>,
    pub state: ThreadState,
}

/// What the sink found when it came to write a filed decision. The shell
/// reports it; [`Step::after_write`] decides what it means (rule 7 and the
/// server's refusals), so the decision the core returns is the one made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Written, or nothing to write (a dry run).
    Written,
    /// No Patient on the server has the identifier (rule 7).
    UnknownPatient,
    /// More than one Patient has it.
    AmbiguousPatient,
    /// The message's second identifier, written beside the first as the same
    /// person's, is another Patient's.
    OtherPatient,
    /// The server refused the bundle (4xx): its status as the reason
    /// (`HTTP 422`), and its explanation for the reject report only.
    Refused { reason: String, detail: String },
}

impl Step {
    /// The final decision on `self.decisions[i]` once the sink has given its
    /// verdict: a patient the EPR does not know, or knows twice, or a second
    /// identifier of another Patient quarantines the message; a refusal
    /// rejects it. Either way nothing was written, so the thread forgets it
    /// was filed (nothing later links to a resource that does not exist).
    pub fn after_write(&mut self, i: usize, verdict: Verdict) {
        let Some(d) = self.decisions.get_mut(i) else {
            return;
        };
        let (outcome, why) = match verdict {
            Verdict::Written => return,
            Verdict::UnknownPatient => (Outcome::Quarantined, reason::UNKNOWN_PATIENT.to_owned()),
            Verdict::AmbiguousPatient => {
                (Outcome::Quarantined, reason::AMBIGUOUS_PATIENT.to_owned())
            }
            Verdict::OtherPatient => (Outcome::Quarantined, reason::MULTI_PATIENT.to_owned()),
            Verdict::Refused { reason, detail } => {
                d.detail = Some(detail);
                (Outcome::Rejected, reason)
            }
        };
        d.outcome = outcome;
        d.reason = Some(why);
        d.write = None;
        self.state.unfile(&d.event.id);
    }
}

/// Drop held events whose window has passed: their content is deleted and
/// they end `ignored` / `not-patient-related` (rule 8). In a thread with an
/// unexplained identifier-like span they may well be about a patient, so
/// they are quarantined `ambiguous` for review instead (nothing lost).
pub fn expire(mut state: ThreadState, now: DateTime<Utc>) -> Step {
    let mut decisions = Vec::new();
    // Content kept to revert edits goes when its window has passed.
    state.versions.retain(|_, vs| {
        vs.retain(|v| v.kept_until.is_none_or(|t| t > now));
        !vs.is_empty()
    });
    if state.held.iter().any(|h| h.expires_at <= now) {
        let (gone, kept): (Vec<Held>, Vec<Held>) = std::mem::take(&mut state.held)
            .into_iter()
            .partition(|h| h.expires_at <= now);
        state.held = kept;
        let (outcome, why) = if state.suspect() {
            (Outcome::Quarantined, reason::AMBIGUOUS)
        } else {
            (Outcome::Ignored, reason::NOT_PATIENT_RELATED)
        };
        for h in gone {
            decisions.push(Decision::new(h.event, outcome, Some(why), Vec::new()));
        }
    }
    note_quarantined(&mut state, &decisions);
    Step { decisions, state }
}

/// A person's decision on a quarantined event: file it to `patient`, linked
/// into its thread like any filed message (and its Task detected). The
/// patient joins the thread's patients.
pub fn resolve(
    mut state: ThreadState,
    event: ChatEvent,
    patient: Identifier,
    policy: &Policy,
) -> Step {
    state.add_patient(&patient);
    let d = file(&mut state, event, patient, Vec::new(), policy);
    keep_until(&mut state, Utc::now() + policy.hold_window);
    Step {
        decisions: vec![d],
        state,
    }
}

/// A person's decision to discard a quarantined event: it is not filed.
pub fn discard(state: ThreadState, event: ChatEvent) -> Step {
    Step {
        decisions: vec![Decision::new(
            event,
            Outcome::Ignored,
            Some(reason::DISCARDED),
            Vec::new(),
        )],
        state,
    }
}

/// Decide one event of a thread.
pub fn decide(
    state: ThreadState,
    event: ChatEvent,
    found: Found,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Step {
    let Step {
        mut decisions,
        mut state,
    } = expire(state, now);
    if let Some(why) = not_allowed(&state, &event) {
        // Not applied; what it names still counts in the thread (fail safe).
        let had = state.patients.len();
        let foreign = foreign_spans(&found, None);
        remember(&mut state, &found.valid, foreign);
        decisions.push(Decision::new(
            event,
            Outcome::Ignored,
            Some(why),
            found.valid,
        ));
        after_new_patients(&mut state, had, &mut decisions, policy);
        return Step { decisions, state };
    }
    // A named patient's second identifier is reported with the event's own.
    let (id, paired) = (event.id.clone(), found.paired.clone());
    match event.kind {
        EventKind::Message => message(&mut state, event, found, now, policy, &mut decisions),
        EventKind::Edit => edit(&mut state, event, found, now, policy, &mut decisions),
        EventKind::Redaction => redaction(&mut state, event, &mut decisions),
        EventKind::Reaction => reaction(&mut state, event, found, policy, &mut decisions),
    }
    note_quarantined(&mut state, &decisions);
    for d in decisions.iter_mut().filter(|d| d.event.id == id) {
        for p in &paired {
            if !d.identifiers.contains(p) {
                d.identifiers.push(p.clone());
            }
        }
    }
    keep_until(&mut state, now + policy.hold_window);
    Step { decisions, state }
}

/// Quarantined messages (this event, or held ones released by it) are
/// remembered with their sender: the sender's edit may put one right.
fn note_quarantined(state: &mut ThreadState, decisions: &[Decision]) {
    for d in decisions
        .iter()
        .filter(|d| d.outcome == Outcome::Quarantined && matches!(d.event.kind, EventKind::Message))
    {
        state
            .quarantined
            .insert(d.event.id.clone(), d.event.sender.clone());
    }
}

/// Content versions recorded by this step are kept until `until`.
fn keep_until(state: &mut ThreadState, until: DateTime<Utc>) {
    for v in state.versions.values_mut().flatten() {
        v.kept_until.get_or_insert(until);
    }
}

/// May `event` act on its target? Edits, redactions and reactions must come
/// from the target's room, and edits from its sender (ARCHITECTURE §4): in
/// Matrix a replacement by another user is invalid, and no room may rewrite
/// another's record. Redactions by another sender of the same room are
/// applied: the homeserver lets only the sender and the room's moderators
/// redact (power levels), which the bridge cannot see but can rely on.
fn not_allowed(state: &ThreadState, event: &ChatEvent) -> Option<&'static str> {
    if event.kind == EventKind::Message {
        return None;
    }
    let target = event.target.as_deref()?;
    let (room, sender) = match state.meta.get(target) {
        Some(m) => (m.room.as_deref(), m.sender.as_deref()),
        None => match state.held.iter().find(|h| h.event.id == target) {
            Some(h) => (Some(h.event.room.as_str()), Some(h.event.sender.as_str())),
            None => return None,
        },
    };
    if room.is_some_and(|r| r != event.room) {
        return Some(reason::OTHER_ROOM);
    }
    if event.kind == EventKind::Edit && sender.is_some_and(|s| s != event.sender) {
        return Some(reason::NOT_SENDER);
    }
    None
}

#[cfg(test)]
mod tests;
