//! Task detection (ARCHITECTURE §2: "task detection (lexicons from mappings/)").
//! Pure: text in, classification out. The word lists and the order of
//! evaluation are documented in `mappings/tasks.toml`.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

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

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestLists {
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
struct Phrases {
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
struct PriorityLists {
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
    words: Vec<String>,
    #[serde(default)]
    below: Option<f64>,
    #[serde(default)]
    above: Option<f64>,
    #[serde(default)]
    not_after: Vec<String>,
    /// When set, only these words may stand between the name and its value
    /// ("INR was 8.4"; not "recheck INR at 18:00").
    #[serde(default)]
    links: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Lifecycle {
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
struct File {
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

/// Lower-case words: letters, digits, `'`, `-` and `.` inside a word ("a.s.a.p").
pub fn words(text: &str) -> Vec<String> {
    let t = text.to_lowercase().replace(['’', '‘'], "'");
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in t.chars() {
        if c.is_alphanumeric() || c == '\'' || c == '-' || (c == '.' && !cur.is_empty()) {
            cur.push(c);
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur).trim_end_matches('.').to_owned());
        }
    }
    if !cur.is_empty() {
        out.push(cur.trim_end_matches('.').to_owned());
    }
    out.retain(|w| !w.is_empty());
    out
}

fn phrases(list: &[String]) -> Vec<Phrase> {
    list.iter()
        .map(|p| words(p))
        .filter(|w| !w.is_empty())
        .collect()
}

fn contains(hay: &[String], p: &Phrase) -> bool {
    hay.windows(p.len()).any(|w| w == p.as_slice())
}

fn any(hay: &[String], ps: &[Phrase]) -> bool {
    ps.iter().any(|p| contains(hay, p))
}

/// Clauses: split at sentence punctuation, commas and a spaced dash; each
/// with whether it ends a question (`?`).
fn clauses(text: &str) -> Vec<(&str, bool)> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        // A dot or colon between digits is part of a number or time ("2.5",
        // "10:45"), not the end of a clause.
        let b = rest.as_bytes();
        let inside_number = |i: usize| {
            matches!(b[i], b'.' | b':')
                && i > 0
                && b[i - 1].is_ascii_digit()
                && b.get(i + 1).is_some_and(u8::is_ascii_digit)
        };
        let end = rest
            .match_indices(['.', '!', '?', ';', ',', '\n', ':'])
            .map(|(i, _)| i)
            .find(|&i| !inside_number(i))
            .unwrap_or(rest.len());
        let question = rest[end..].starts_with('?');
        for c in rest[..end].split(" - ") {
            if !c.trim().is_empty() {
                out.push((c, question));
            }
        }
        rest = rest.get(end + 1..).unwrap_or("");
    }
    out
}

/// A number as a result is written: "5.2", "131", "<0.5".
fn is_number(t: &str) -> bool {
    let t = t.trim_start_matches(['<', '>', '~']);
    !t.is_empty() && t.chars().any(|c| c.is_ascii_digit()) && t.parse::<f64>().is_ok()
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
