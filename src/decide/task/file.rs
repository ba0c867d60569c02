//! The shape of `mappings/tasks.toml` as written, and its compilation into
//! [`TaskRules`] (phrases split into words, lists into sets).

use std::collections::HashSet;

use serde::Deserialize;

use super::words::{phrases, words};
use super::{DEFAULT_RULES, Status, TaskRules};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RequestLists {
    #[serde(default)]
    phrases: Vec<String>,
    #[serde(default)]
    imperatives: Vec<String>,
    #[serde(default)]
    skip: Vec<String>,
    #[serde(default)]
    modals: Vec<String>,
    #[serde(default)]
    modal_window: usize,
    /// A question (clause ending in `?`) that starts with one of these asks
    /// for something ("could we sit him out?", "is the TVN around?").
    #[serde(default)]
    questions: Vec<String>,
    /// Words that, right after an imperative verb, show a plan or an
    /// instruction rather than a result ("repeat in 30 min", not "repeat K 5.2").
    #[serde(default)]
    function_words: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Phrases {
    #[serde(default)]
    phrases: Vec<String>,
    /// Past participles that report an action done ("repeat K+ sent").
    #[serde(default)]
    status: Vec<String>,
    /// A message that opens with one of these documents a review or answers
    /// one ("Seen. …", "Plan: …", "yes, …"): its bare imperatives are the plan,
    /// not requests ("Seen. Start IV fluids").
    #[serde(default)]
    plan: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PriorityLists {
    #[serde(default)]
    stat: Vec<String>,
    #[serde(default)]
    asap: Vec<String>,
    #[serde(default)]
    urgent: Vec<String>,
    /// A call for now: asap, or stat with a sign of deterioration.
    #[serde(default)]
    immediate: Vec<String>,
    /// "before"/"by" followed by a time or an event makes a request urgent.
    #[serde(default)]
    deadline: Vec<String>,
    /// Words of `immediate` that count only at the end of their clause or
    /// before a `followers` word ("come now", "now please"; not "is now
    /// wandering", "Now on a soft diet").
    #[serde(default)]
    clause_end: Vec<String>,
    #[serde(default)]
    followers: Vec<String>,
    /// Marks of emphasis ("!!") that, with a call for now, make it stat, as
    /// an `immediate` word written in capitals does ("need a reg NOW").
    #[serde(default)]
    emphasis: Vec<String>,
    /// Early-warning scores ("NEWS2 6", "NEWS went from 3 to 7"): the highest
    /// number within `score_window` words after one of these words.
    #[serde(default)]
    scores: Vec<String>,
    #[serde(default)]
    score_window: usize,
    /// From this score a request is urgent (NEWS2: urgent response from 5).
    #[serde(default)]
    score_urgent: Option<u32>,
    /// From this score a request is asap (NEWS2: emergency response from 7).
    #[serde(default)]
    score_asap: Option<u32>,
    /// Observations far outside their normal range (NEWS2's single
    /// parameters that score 3: an urgent response): a sign of deterioration.
    #[serde(default)]
    vitals: Vec<Vital>,
}

/// One observation: its names, and the values that are a red flag (under
/// `below` or over `above`), read from the first number within two words
/// after a name in the same clause ("sats 88% on 4L", "BP 78/40", "RR 32").
/// Not after one of `not_after` ("target sats 88-92%").
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vital {
    pub(super) words: Vec<String>,
    #[serde(default)]
    pub(super) below: Option<f64>,
    #[serde(default)]
    pub(super) above: Option<f64>,
    #[serde(default)]
    pub(super) not_after: Vec<String>,
    /// When set, only these words may stand between the name and its value
    /// ("INR was 8.4"; not "recheck INR at 18:00").
    #[serde(default)]
    pub(super) links: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Lifecycle {
    #[serde(default)]
    cancel: Vec<String>,
    #[serde(default)]
    complete: Vec<String>,
    #[serde(default)]
    start: Vec<String>,
    #[serde(default)]
    accept: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    #[serde(default)]
    request: RequestLists,
    #[serde(default)]
    not_request: Phrases,
    #[serde(default)]
    priority: PriorityLists,
    #[serde(default)]
    lifecycle: Lifecycle,
    #[serde(default)]
    reactions: Lifecycle,
}

impl TaskRules {
    /// Compile the rules from TOML; errors name the problem.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let set = |l: &[String]| l.iter().flat_map(|w| words(w)).collect::<HashSet<_>>();
        let l = &f.lifecycle;
        let r = &f.reactions;
        let keys = |l: &[String]| l.iter().map(|k| k.trim().to_owned()).collect::<Vec<_>>();
        Ok(Self {
            request: phrases(&f.request.phrases),
            imperatives: set(&f.request.imperatives),
            skip: set(&f.request.skip),
            modals: set(&f.request.modals),
            modal_window: f.request.modal_window,
            questions: phrases(&f.request.questions),
            function_words: set(&f.request.function_words),
            not_request: phrases(&f.not_request.phrases),
            status: set(&f.not_request.status),
            plan: phrases(&f.not_request.plan),
            deadline: set(&f.priority.deadline),
            clause_end: set(&f.priority.clause_end),
            followers: set(&f.priority.followers),
            stat: phrases(&f.priority.stat),
            asap: phrases(&f.priority.asap),
            urgent: phrases(&f.priority.urgent),
            immediate: phrases(&f.priority.immediate),
            emphasis: f
                .priority
                .emphasis
                .iter()
                .map(|m| m.trim().to_owned())
                .filter(|m| !m.is_empty())
                .collect(),
            scores: set(&f.priority.scores),
            score_window: f.priority.score_window,
            score_urgent: f.priority.score_urgent,
            score_asap: f.priority.score_asap,
            vitals: f
                .priority
                .vitals
                .iter()
                .map(|v| (phrases(&v.words), v.clone()))
                .collect(),
            lifecycle: vec![
                (Status::Cancelled, phrases(&l.cancel)),
                (Status::Completed, phrases(&l.complete)),
                (Status::InProgress, phrases(&l.start)),
                (Status::Accepted, phrases(&l.accept)),
            ],
            reactions: vec![
                (Status::Cancelled, keys(&r.cancel)),
                (Status::Completed, keys(&r.complete)),
                (Status::InProgress, keys(&r.start)),
                (Status::Accepted, keys(&r.accept)),
            ],
        })
    }

    /// The built-in rules.
    pub fn builtin() -> Self {
        Self::from_toml(DEFAULT_RULES).expect("mappings/tasks.toml is valid")
    }
}
