//! Task detection (ARCHITECTURE §2: "task detection (lexicons from mappings/)").
//! Pure: text in, classification out. The word lists and the order of
//! evaluation are documented in `mappings/tasks.toml`.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

mod file;
mod words;

pub use file::Vital;
pub use words::words;
use words::{any, clauses, is_number};

/// FHIR `Task.priority` (request-priority).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Routine,
    Urgent,
    Asap,
    Stat,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Routine => "routine",
            Priority::Urgent => "urgent",
            Priority::Asap => "asap",
            Priority::Stat => "stat",
        }
    }
}

/// The `Task.status` values the bridge sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Requested,
    Accepted,
    InProgress,
    Completed,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Requested => "requested",
            Status::Accepted => "accepted",
            Status::InProgress => "in-progress",
            Status::Completed => "completed",
            Status::Cancelled => "cancelled",
        }
    }

    /// Still open: can move on.
    pub fn is_open(self) -> bool {
        !matches!(self, Status::Completed | Status::Cancelled)
    }
}

/// A phrase as a sequence of words.
type Phrase = Vec<String>;

/// The compiled rules of `mappings/tasks.toml`.
#[derive(Debug, Clone, Default)]
pub struct TaskRules {
    request: Vec<Phrase>,
    imperatives: HashSet<String>,
    skip: HashSet<String>,
    modals: HashSet<String>,
    modal_window: usize,
    questions: Vec<Phrase>,
    function_words: HashSet<String>,
    not_request: Vec<Phrase>,
    status: HashSet<String>,
    plan: Vec<Phrase>,
    deadline: HashSet<String>,
    clause_end: HashSet<String>,
    followers: HashSet<String>,
    stat: Vec<Phrase>,
    asap: Vec<Phrase>,
    urgent: Vec<Phrase>,
    immediate: Vec<Phrase>,
    emphasis: Vec<String>,
    scores: HashSet<String>,
    score_window: usize,
    score_urgent: Option<u32>,
    score_asap: Option<u32>,
    vitals: Vec<(Vec<Phrase>, Vital)>,
    /// In evaluation order: cancel, complete, start, accept.
    lifecycle: Vec<(Status, Vec<Phrase>)>,
    reactions: Vec<(Status, Vec<String>)>,
}

/// The built-in rules (the project's `mappings/tasks.toml`).
pub const DEFAULT_RULES: &str = include_str!("../../mappings/tasks.toml");

impl TaskRules {
    /// Is one clause a request? In a plan (`plan`), only request phrases and
    /// questions make one.
    fn clause_is_request(&self, clause: &str, question: bool, plan: bool) -> bool {
        let w = words(clause);
        if w.is_empty() || any(&w, &self.not_request) {
            return false;
        }
        if any(&w, &self.request) {
            return true;
        }
        // The first word after mentions and skip words is an imperative verb,
        // or a modal with an imperative verb shortly after it.
        let rest: Vec<String> = clause
            .split_whitespace()
            .filter(|t| !t.starts_with('@'))
            .flat_map(words)
            .skip_while(|t| self.skip.contains(t))
            .collect();
        if question && self.questions.iter().any(|q| rest.starts_with(q)) {
            return true;
        }
        // An action reported done ("repeat K+ sent", "CXR requested").
        let done = plan || w.iter().any(|t| self.status.contains(t));
        match rest.first() {
            Some(f) if self.imperatives.contains(f) => !done && !self.is_result(&rest),
            Some(f) if self.modals.contains(f) => {
                !done
                    && rest
                        .iter()
                        .skip(1)
                        .take(self.modal_window)
                        .any(|w| self.imperatives.contains(w))
            }
            _ => false,
        }
    }

    /// "repeat K 5.2", "repeat gas pH 7.36": an imperative verb, one or two
    /// words naming a test, then a number — a result, not a request.
    fn is_result(&self, rest: &[String]) -> bool {
        let tail = &rest[1..];
        match tail.iter().position(|t| is_number(t)) {
            Some(k @ 1..=2) => tail[..k]
                .iter()
                .all(|t| !self.function_words.contains(t) && !self.imperatives.contains(t)),
            _ => false,
        }
    }

    /// `Some(priority)` when the message is a request.
    pub fn request(&self, text: &str) -> Option<Priority> {
        let opening: Vec<String> = text
            .split_whitespace()
            .filter(|t| !t.starts_with('@'))
            .flat_map(words)
            .skip_while(|t| self.skip.contains(t))
            .take(3)
            .collect();
        let plan = self.plan.iter().any(|p| opening.starts_with(p));
        if !clauses(text)
            .into_iter()
            .any(|(c, q)| self.clause_is_request(c, q, plan))
        {
            return None;
        }
        Some(self.priority(text))
    }

    /// Priority of a request: stat (an emergency call, or a call for now with
    /// a sign of deterioration), then asap (a call for now, an asap word, a
    /// score at `score_asap`), then urgent (a listed word, a score at
    /// `score_urgent`, or a deadline: "before 10", "by 1pm", "before the ward
    /// round"), else routine.
    pub fn priority(&self, text: &str) -> Priority {
        let w = words(text);
        let deadline = w.windows(2).any(|x| {
            self.deadline.contains(&x[0])
                && (x[1].starts_with(|c: char| c.is_ascii_digit())
                    || matches!(
                        x[1].as_str(),
                        "noon" | "midday" | "lunch" | "lunchtime" | "tonight" | "the" | "end"
                    ))
        });
        let score = self.score(&w);
        let reaches = |limit: Option<u32>| limit.is_some_and(|l| score.is_some_and(|s| s >= l));
        let deteriorating = any(&w, &self.urgent)
            || reaches(self.score_urgent)
            || clauses(text)
                .into_iter()
                .any(|(c, _)| self.red_flag(&words(c)));
        let now = self.calls_for(text, &self.immediate);
        if self.calls_for(text, &self.stat) || (now && (deteriorating || self.emphatic(text))) {
            Priority::Stat
        } else if now || self.calls_for(text, &self.asap) || reaches(self.score_asap) {
            Priority::Asap
        } else if deadline || deteriorating {
            Priority::Urgent
        } else {
            Priority::Routine
        }
    }

    /// Is a call for now emphasised: an `immediate` word written in capitals
    /// ("NOW", not "NOW-ish"), or a mark of `emphasis` ("self-extubated!!")?
    fn emphatic(&self, text: &str) -> bool {
        let shouted = text
            .split(|c: char| !(c.is_alphanumeric() || c == '-'))
            .filter(|t| t.chars().count() >= 3 && !t.chars().any(char::is_lowercase))
            .any(|t| {
                let t = t.to_lowercase();
                self.immediate.iter().any(|p| p.len() == 1 && p[0] == t)
            });
        shouted || self.emphasis.iter().any(|m| text.contains(m.as_str()))
    }

    /// Does a clause of `text` hold a phrase of `list`? A phrase that starts
    /// with a `clause_end` word counts only at the end of its clause or
    /// before a `followers` word.
    fn calls_for(&self, text: &str, list: &[Phrase]) -> bool {
        clauses(text).into_iter().any(|(c, _)| {
            let cw = words(c);
            list.iter().any(|p| {
                cw.windows(p.len()).enumerate().any(|(i, x)| {
                    let next = cw.get(i + p.len());
                    x == p.as_slice()
                        && (!self.clause_end.contains(&p[0])
                            || next.is_none_or(|n| self.followers.contains(n)))
                })
            })
        })
    }

    /// Does an observation of `vitals` hold a red-flag value?
    fn red_flag(&self, w: &[String]) -> bool {
        self.vitals.iter().any(|(names, v)| {
            names.iter().any(|p| {
                w.windows(p.len()).enumerate().any(|(i, x)| {
                    x == p.as_slice()
                        && !(i > 0 && v.not_after.contains(&w[i - 1]))
                        && w.iter()
                            .skip(i + p.len())
                            .take(2)
                            .take_while(|t| {
                                v.links
                                    .as_ref()
                                    .is_none_or(|l| l.contains(t) || t.parse::<f64>().is_ok())
                            })
                            .find_map(|t| t.parse::<f64>().ok())
                            .is_some_and(|n| {
                                v.below.is_some_and(|b| n < b) || v.above.is_some_and(|a| n > a)
                            })
                })
            })
        })
    }

    /// The highest early-warning score the words give: a whole number within
    /// `score_window` words after a `scores` word ("news2 6 -> 8": 8).
    fn score(&self, w: &[String]) -> Option<u32> {
        w.iter()
            .enumerate()
            .filter(|(_, t)| self.scores.contains(*t))
            .flat_map(|(i, _)| w.iter().skip(i + 1).take(self.score_window))
            .filter_map(|t| t.parse::<u32>().ok())
            .filter(|&n| n <= 20)
            .max()
    }

    /// The status a reply moves an open Task to, if it says so.
    pub fn lifecycle(&self, text: &str) -> Option<Status> {
        let w = words(text);
        self.lifecycle
            .iter()
            .find(|(_, ps)| any(&w, ps))
            .map(|(s, _)| *s)
    }

    /// The status a reaction moves an open Task to, if any.
    pub fn reaction(&self, key: &str) -> Option<Status> {
        let k = key.trim().trim_end_matches('\u{fe0f}');
        self.reactions
            .iter()
            .find(|(_, keys)| keys.iter().any(|x| x.trim_end_matches('\u{fe0f}') == k))
            .map(|(s, _)| *s)
    }
}

#[cfg(test)]
mod tests;

/// A Task the bridge keeps for a request message (in the thread state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskState {
    pub patient: crate::identify::Identifier,
    pub priority: Priority,
    pub status: Status,
    /// Chat user id of the requester (the request's sender).
    pub requester: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester_name: Option<String>,
    /// Chat user id of the owner: mentioned in the request, or who took it on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub authored_on: chrono::DateTime<chrono::FixedOffset>,
    pub last_modified: chrono::DateTime<chrono::FixedOffset>,
}

/// A Task written by a decision: created, or moved on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskChange {
    /// Event id of the request message the Task belongs to.
    pub request_id: String,
    pub task: TaskState,
    /// Created by this decision (its Communication is in the same Bundle).
    pub created: bool,
}

impl Status {
    /// Order of progress: a Task never moves back.
    fn rank(self) -> u8 {
        match self {
            Status::Requested => 0,
            Status::Accepted => 1,
            Status::InProgress => 2,
            Status::Completed | Status::Cancelled => 3,
        }
    }

    /// May an open Task at `self` move to `to`?
    pub fn can_move_to(self, to: Status) -> bool {
        self.is_open() && to.rank() > self.rank()
    }
}
