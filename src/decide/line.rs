//! The decision line (ARCHITECTURE §6): one JSON object per decision.

use serde::Serialize;

use crate::decide::Outcome;
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
