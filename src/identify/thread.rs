//! Thread context: what a thread has said about patients so far.
//!
//! Serialised to the ledger as JSON (held content is stored separately there,
//! so that it can be deleted when filed or expired).

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use super::Identifier;
use crate::decide::task::TaskState;
use crate::event::ChatEvent;

/// The state of one thread.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadState {
    /// Distinct patients named in the thread, in order of first mention.
    #[serde(default)]
    pub patients: Vec<Identifier>,
    /// Event id of the thread's first filed message (`Communication.partOf`).
    #[serde(default)]
    pub first_filed: Option<String>,
    /// Filed messages of the thread: event id → patient (for replies, edits, redactions).
    #[serde(default)]
    pub filed: BTreeMap<String, Identifier>,
    /// Tasks of the thread, by the event id of their request message.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tasks: BTreeMap<String, TaskState>,
    /// Filed messages since redacted (their Communication is entered-in-error).
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub redacted: std::collections::BTreeSet<String>,
    /// What an edit needs of the message it replaces: event id → time and links.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, FiledMeta>,
    /// The thread held an identifier-like span (or a mistyped number) that
    /// named no patient it knows: it may be about another patient, so it
    /// counts one patient more than it names (fail safe).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspect: bool,
    /// Events waiting for the thread to name its patient (not serialised with the state).
    #[serde(skip)]
    pub held: Vec<Held>,
}

/// Time and thread links of a filed message (no content), so that an edit can
/// replace its Communication whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiledMeta {
    pub sent: DateTime<FixedOffset>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_of: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_response_to: Option<String>,
}

/// A held event and when its content must be deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Held {
    pub event: ChatEvent,
    pub expires_at: DateTime<Utc>,
}

impl ThreadState {
    /// Forget that an event was filed (its write was refused or its patient is
    /// unknown to the EPR), so nothing later links to a resource that does not exist.
    pub fn unfile(&mut self, event_id: &str) {
        self.filed.remove(event_id);
        self.meta.remove(event_id);
        self.tasks.remove(event_id);
        if self.first_filed.as_deref() == Some(event_id) {
            self.first_filed = None;
        }
    }

    pub fn add_patient(&mut self, id: &Identifier) {
        if !self.patients.contains(id) {
            self.patients.push(id.clone());
        }
    }
}
