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

pub mod state;
pub mod task;

use crate::decide::state::{FiledMeta, Held, ThreadState, Version, near_miss};
use crate::event::{ChatEvent, EventKind};
use crate::identify::{Found, Identifier};
use task::{Status, TaskChange, TaskRules, TaskState};

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
        }
    }

    /// The decision line of ARCHITECTURE §6.
    pub fn line(&self) -> DecisionLine<'_> {
        DecisionLine {
            event_id: Some(&self.event.id),
            outcome: self.outcome,
            patient: self.patient.as_ref(),
            identifiers: &self.identifiers,
            task: self.task.as_ref().map(|t| TaskLine {
                priority: t.task.priority.as_str().to_owned(),
                status: t.task.status.as_str().to_owned(),
            }),
            reason: self.reason.as_deref(),
        }
    }
}

/// Task summary in a decision line: the Task this decision created or moved on.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TaskLine {
    pub priority: String,
    pub status: String,
}

/// ARCHITECTURE §6 decision line; field order is the documented one.
#[derive(Debug, Serialize)]
pub struct DecisionLine<'a> {
    /// `null` for an input that had no readable id (a malformed line).
    pub event_id: Option<&'a str>,
    pub outcome: Outcome,
    pub patient: Option<&'a Identifier>,
    pub identifiers: &'a [Identifier],
    pub task: Option<TaskLine>,
    pub reason: Option<&'a str>,
}

impl<'a> DecisionLine<'a> {
    /// The line of an input that never became a chat event: `ignored` (not
    /// chat) or `rejected` (malformed), with no patient, identifier or Task.
    pub fn without_event(event_id: Option<&'a str>, outcome: Outcome, reason: &'a str) -> Self {
        DecisionLine {
            event_id,
            outcome,
            patient: None,
            identifiers: &[],
            task: None,
            reason: Some(reason),
        }
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
    /// The server refused the bundle (4xx), with its reason.
    Refused(String),
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
            Verdict::Refused(why) => (Outcome::Rejected, why),
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

fn message(
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
fn remember(state: &mut ThreadState, ids: &[Identifier], foreign: Vec<String>) {
    for id in ids {
        state.add_patient(id);
    }
    state.unexplained.extend(foreign);
}

/// A location the message names that differs from the thread patient's known
/// location of the same kind (bed, bay, side room, ...).
fn other_location(state: &ThreadState, named: &[String]) -> Option<String> {
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
fn foreign_spans(found: &Found, context: Option<&Identifier>) -> Vec<String> {
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
fn flagged(found: &Found) -> &'static str {
    if found.invalid > 0 {
        reason::INVALID_IDENTIFIER
    } else {
        reason::UNRECOGNISED_IDENTIFIER
    }
}

/// Keep the event's content until the thread names its patient or the window passes.
fn hold(
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
fn after_new_patients(
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

/// File `event` to `patient`, linking it into the thread; create or move on
/// a Task (see `mappings/tasks.toml` for the order of evaluation).
fn file(
    state: &mut ThreadState,
    event: ChatEvent,
    patient: Identifier,
    ids: Vec<Identifier>,
    policy: &Policy,
) -> Decision {
    let part_of = state.first_filed.clone().filter(|root| *root != event.id);
    let in_response_to = event
        .reply_to
        .clone()
        .filter(|r| state.filed.contains_key(r));
    if state.first_filed.is_none() {
        state.first_filed = Some(event.id.clone());
    }
    state.filed.insert(event.id.clone(), patient.clone());
    state.meta.insert(
        event.id.clone(),
        FiledMeta {
            sent: event.sent_at,
            part_of: part_of.clone(),
            in_response_to: in_response_to.clone(),
            room: Some(event.room.clone()),
            sender: Some(event.sender.clone()),
        },
    );
    state
        .versions
        .insert(event.id.clone(), vec![Version::of(&event)]);
    let mut d = Decision::new(event, Outcome::Filed, None, ids);
    d.patient = Some(patient);
    d.write = Some(Write::Communication {
        part_of,
        in_response_to,
    });
    d.task = message_task(state, &d, &policy.tasks);
    d
}

/// The Task a filed message creates or moves on.
fn message_task(state: &mut ThreadState, d: &Decision, rules: &TaskRules) -> Option<TaskChange> {
    let e = &d.event;
    let text = e.text.as_deref().unwrap_or("");
    // 1. Lifecycle of the open Task this message answers.
    if let Some(req) = answered_task(state, e)
        && let Some(to) = rules.lifecycle(text)
        && let Some(t) = state.tasks.get_mut(&req)
        && t.status.can_move_to(to)
    {
        move_task(t, to, e);
        return Some(TaskChange {
            request_id: req,
            task: t.clone(),
            created: false,
        });
    }
    // 2. A new request.
    let priority = rules.request(text)?;
    let t = TaskState {
        patient: d.patient.clone()?,
        priority,
        status: Status::Requested,
        requester: e.sender.clone(),
        requester_name: e.sender_name.clone(),
        owner: e.mentions.first().cloned(),
        authored_on: e.sent_at,
        last_modified: e.sent_at,
    };
    state.tasks.insert(e.id.clone(), t.clone());
    Some(TaskChange {
        request_id: e.id.clone(),
        task: t,
        created: true,
    })
}

/// Move a Task on because of event `e`: its sender takes it on (not for a cancel).
fn move_task(t: &mut TaskState, to: Status, e: &ChatEvent) {
    t.status = to;
    if to != Status::Cancelled {
        t.owner = Some(e.sender.clone());
    }
    t.last_modified = e.sent_at;
}

/// The open Task a message answers: the one of the message it replies to, or
/// the thread's only open Task.
fn answered_task(state: &ThreadState, e: &ChatEvent) -> Option<String> {
    if let Some(r) = &e.reply_to
        && state.tasks.get(r).is_some_and(|t| t.status.is_open())
    {
        return Some(r.clone());
    }
    let mut open = state
        .tasks
        .iter()
        .filter(|(id, t)| t.status.is_open() && **id != e.id);
    match (open.next(), open.next()) {
        (Some((id, _)), None) => Some(id.clone()),
        _ => None,
    }
}

/// File an edit of the filed message `target`: its Communication is replaced
/// and its Task re-evaluated.
fn file_edit(
    state: &mut ThreadState,
    event: ChatEvent,
    patient: Identifier,
    ids: Vec<Identifier>,
    target: String,
    policy: &Policy,
) -> Decision {
    // Messages filed before edits were kept whole have no meta: the edit's time stands in.
    let meta = state.meta.get(&target).cloned().unwrap_or(FiledMeta {
        sent: event.sent_at,
        part_of: state.first_filed.clone().filter(|r| *r != target),
        in_response_to: None,
        room: None,
        sender: None,
    });
    let text = event.text.clone().unwrap_or_default();
    let mut d = Decision::new(event, Outcome::Filed, None, ids);
    d.patient = Some(patient.clone());
    let now_request = policy.tasks.request(&text);
    d.task = match (state.tasks.get_mut(&target), now_request) {
        (Some(t), Some(p)) if t.status.is_open() && t.priority != p => {
            t.priority = p;
            t.last_modified = d.event.sent_at;
            Some((t.clone(), false))
        }
        (Some(t), None) if t.status.is_open() => {
            t.status = Status::Cancelled;
            t.last_modified = d.event.sent_at;
            Some((t.clone(), false))
        }
        (None, Some(p)) => {
            let t = TaskState {
                patient,
                priority: p,
                status: Status::Requested,
                requester: d.event.sender.clone(),
                requester_name: d.event.sender_name.clone(),
                owner: d.event.mentions.first().cloned(),
                authored_on: meta.sent,
                last_modified: d.event.sent_at,
            };
            state.tasks.insert(target.clone(), t.clone());
            // The Communication already exists: the Task refers to it.
            Some((t, false))
        }
        _ => None,
    }
    .map(|(task, created)| TaskChange {
        request_id: target.clone(),
        task,
        created,
    });
    state
        .versions
        .entry(target.clone())
        .or_default()
        .push(Version::of(&d.event));
    state.edits.insert(d.event.id.clone(), target.clone());
    d.write = Some(Write::Edit {
        target,
        meta,
        content: None,
    });
    d
}

fn edit(
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

fn redaction(state: &mut ThreadState, event: ChatEvent, out: &mut Vec<Decision>) {
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
fn redact_edit(
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
fn reaction(
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

#[cfg(test)]
mod tests;
