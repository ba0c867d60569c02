//! Thread context: what a thread has said about patients so far.
//!
//! Serialised to the ledger as JSON (held content is stored separately there,
//! so that it can be deleted when filed or expired).

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use super::task::TaskState;
use crate::event::ChatEvent;
use crate::identify::Identifier;

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
    /// Identifier-like spans and mistyped numbers of the thread that name no
    /// patient it knows (their digits): while there is one, the thread may be
    /// about another patient and counts one patient more than it names (fail
    /// safe). A span that a patient named later explains (the same number, or
    /// only the sender's edit putting a typo right clears a mistyped number) is
    /// dropped then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unexplained: Vec<String>,
    /// Bed-level locations ("bed:12") named together with the thread's
    /// single patient's own identifier: a message without an identifier that
    /// names another place of the same kind may be about someone else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<String>,
    /// What each filed message said, version by version (the message as sent,
    /// then each applied edit), so that redacting an edit can bring back the
    /// content before it (Matrix: a redacted replacement is no longer shown).
    /// Content: kept only for the hold window (`kept_until`), then dropped.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub versions: BTreeMap<String, Vec<Version>>,
    /// Applied edits: edit event id → the message it edited (ids only, kept).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub edits: BTreeMap<String, String>,
    /// Quarantined messages of the thread: event id → sender (ids only), so
    /// that the sender's own edit correcting one can be decided on its text.
    #[serde(default)]
    pub quarantined: BTreeMap<String, String>,
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
    /// Room and sender of the message: only its own room may edit or redact
    /// it, and only its sender may edit it (ARCHITECTURE §4). Absent for
    /// messages filed before they were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
}

/// One version of a filed message's content. Its Debug shows no content.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The edit that made this version; `None`: the message as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit: Option<String>,
    pub sender: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::event::Attachment>,
    /// When the content is dropped (set when the decision is made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_until: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Version")
            .field("edit", &self.edit)
            .field("kept_until", &self.kept_until)
            .finish_non_exhaustive()
    }
}

impl Version {
    /// The content `e` carries, made by `e` when it is an edit.
    pub fn of(e: &ChatEvent) -> Self {
        Self {
            edit: (e.kind == crate::event::EventKind::Edit).then(|| e.id.clone()),
            sender: e.sender.clone(),
            sender_name: e.sender_name.clone(),
            text: e.text.clone(),
            mentions: e.mentions.clone(),
            attachments: e.attachments.clone(),
            kept_until: None,
        }
    }
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
        self.versions.remove(event_id);
        if self.first_filed.as_deref() == Some(event_id) {
            self.first_filed = None;
        }
    }

    pub fn add_patient(&mut self, id: &Identifier) {
        if !self.patients.contains(id) {
            self.patients.push(id.clone());
        }
        self.unexplained.retain(|span| *span != id.value);
    }

    /// May the thread be about a patient it does not name?
    pub fn suspect(&self) -> bool {
        !self.unexplained.is_empty()
    }
}

/// Is `span` the identifier `value` or one typing slip from it: one digit
/// changed or two neighbours swapped? A digit left out or added is not
/// counted: a number a digit short is one slip from several valid numbers,
/// so it names no one in particular. Used only where the sender corrects
/// their own message by an edit; elsewhere a mistyped number explains
/// nothing (ARCHITECTURE §4 rule 2: the thread may be about another patient
/// from then on, even when a number one slip from it is named later).
pub fn near_miss(span: &str, value: &str) -> bool {
    let (a, b) = (span.as_bytes(), value.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let diff: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    match diff.as_slice() {
        [] | [_] => true,
        [i, j] => *j == i + 1 && a[*i] == b[*j] && a[*j] == b[*i],
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::near_miss;

    #[test]
    fn a_near_miss_is_the_same_number_one_digit_changed_or_two_neighbours_swapped() {
        let n = "9997654323";
        assert!(near_miss(n, n));
        assert!(near_miss("9997654324", n), "one digit changed");
        assert!(near_miss("9997654332", n), "the last two swapped");
        assert!(near_miss("9979654323", n), "two neighbours swapped");
        // Two digits changed, apart or side by side but not a swap; a digit
        // more or less; a swap of two digits that are not neighbours.
        assert!(!near_miss("9997654311", n));
        assert!(!near_miss("1997654321", n));
        assert!(!near_miss("9997654355", n));
        assert!(
            !near_miss("9997654342", n),
            "neighbours changed, not swapped"
        );
        assert!(!near_miss("9997654213", n), "32 -> 21 is not a swap");
        assert!(!near_miss("999765432", n));
        assert!(!near_miss("99976543231", n));
        assert!(!near_miss("9995674323", n), "swap of digits two apart");
    }
}
