//! The decision line (ARCHITECTURE §6): one JSON object per decision.

use serde::Serialize;

use crate::decide::{Decision, Outcome};
use crate::identify::Identifier;

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
    /// The line of a decision on a chat event.
    pub fn of(d: &'a Decision) -> Self {
        let task = d.task.as_ref().map(|t| TaskLine {
            priority: t.task.priority.as_str().to_owned(),
            status: t.task.status.as_str().to_owned(),
        });
        let id = Some(d.event.id.as_str());
        Self::new(id, d.outcome, d.patient.as_ref(), &d.identifiers, task)
            .with_reason(d.reason.as_deref())
    }

    /// The line of an input that never became a chat event: `ignored` (not
    /// chat) or `rejected` (malformed), with no patient, identifier or Task.
    pub fn without_event(event_id: Option<&'a str>, outcome: Outcome, reason: &'a str) -> Self {
        Self::new(event_id, outcome, None, &[], None).with_reason(Some(reason))
    }

    /// The one place a decision line is assembled.
    fn new(
        event_id: Option<&'a str>,
        outcome: Outcome,
        patient: Option<&'a Identifier>,
        identifiers: &'a [Identifier],
        task: Option<TaskLine>,
    ) -> Self {
        DecisionLine {
            event_id,
            outcome,
            patient,
            identifiers,
            task,
            reason: None,
        }
    }

    fn with_reason(self, reason: Option<&'a str>) -> Self {
        Self { reason, ..self }
    }
}
