//! The safety property ([`check_thread`]) and the tally of outcomes and
//! violations over many threads.

use super::{GenEvent, GenThread};
use crate::decide::Decision;
use crate::decide::Outcome;
use crate::event::EventKind;
use crate::identify::Identifier;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::HashMap;
use std::fmt::Write as _;

/// A filing that breaks the safety property.
#[derive(Debug, Clone)]
pub struct Violation {
    pub seed: u64,
    pub thread_index: u64,
    /// Index of the event filed.
    pub event_index: usize,
    /// Index of the input event whose decision step filed it.
    pub at_step: usize,
    pub event_id: String,
    pub kind: EventKind,
    pub rule: &'static str,
    pub text: String,
    pub attachments: Vec<String>,
    pub patient: Identifier,
    pub event_truth: String,
    pub thread_truth: String,
    pub filed_to: String,
    /// The whole thread with truth and decisions.
    pub transcript: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "VIOLATION [{}] seed={:#x} thread={} event #{} {} ({:?}), decided at step #{}",
            self.rule,
            self.seed,
            self.thread_index,
            self.event_index,
            self.event_id,
            self.kind,
            self.at_step
        )?;
        writeln!(f, "  text: {:?}", self.text)?;
        for a in &self.attachments {
            writeln!(f, "  attachment: {a:?}")?;
        }
        writeln!(f, "  filed to: {}", self.filed_to)?;
        writeln!(
            f,
            "  event truth: {}   thread truth so far: {}",
            self.event_truth, self.thread_truth
        )?;
        write!(f, "  thread:\n{}", self.transcript)
    }
}

/// Violations of the safety property (module docs) in the decisions `steps`
/// made for `thread` (as returned by [`run_thread`]).
pub fn check_thread(thread: &GenThread, steps: &[Vec<Decision>]) -> Vec<Violation> {
    let index: HashMap<&str, usize> = thread
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| (e.event.id.as_str(), i))
        .collect();
    let mut out = Vec::new();
    for (step, ds) in steps.iter().enumerate() {
        let mut so_far: Option<BTreeSet<usize>> = None;
        for d in ds {
            if d.outcome != Outcome::Filed {
                continue;
            }
            let Some(&ei) = index.get(d.event.id.as_str()) else {
                continue;
            };
            let so_far = so_far.get_or_insert_with(|| thread.thread_truth(step));
            let own = &thread.events[ei].truth;
            let p = d.patient.as_ref().and_then(|id| thread.patient_of(id));
            let single = |set: &BTreeSet<usize>, p: usize| set.len() == 1 && set.contains(&p);
            let rule = match p {
                None => Some("filed-to-unknown-identifier"),
                // An edit replaces the content of a message already filed to
                // P (itself checked by this property): it is safe when its own
                // text names no one but P, whatever the thread named since.
                Some(p) if d.event.kind == EventKind::Edit => {
                    if !own.iter().all(|&q| q == p) {
                        Some("edit-names-another-patient")
                    } else {
                        None
                    }
                }
                Some(p) => {
                    if single(own, p) || (own.is_empty() && single(so_far, p)) {
                        None
                    } else if !own.is_empty() {
                        Some("message-names-other-patients")
                    } else {
                        Some("inherited-in-thread-not-only-about-patient")
                    }
                }
            };
            if let Some(rule) = rule {
                let ge = &thread.events[ei];
                out.push(Violation {
                    seed: thread.seed,
                    thread_index: thread.index,
                    event_index: ei,
                    at_step: step,
                    event_id: d.event.id.clone(),
                    kind: d.event.kind,
                    rule,
                    text: ge.event.text.clone().unwrap_or_default(),
                    attachments: ge
                        .event
                        .attachments
                        .iter()
                        .filter_map(|a| a.name.clone())
                        .collect(),
                    patient: d.patient.clone().unwrap_or_else(|| Identifier::nhs("")),
                    event_truth: thread.labels(own),
                    thread_truth: thread.labels(so_far),
                    filed_to: thread.describe(d),
                    transcript: thread.transcript(steps),
                });
            }
        }
    }
    out
}

/// Counts over many threads.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub threads: u64,
    pub events: u64,
    pub edits: u64,
    pub events_without_digits: u64,
    pub events_naming_patients: u64,
    pub threads_naming_no_patient: u64,
    pub decisions: u64,
    /// (outcome, reason or "-") → decisions.
    pub outcomes: BTreeMap<(String, String), u64>,
    /// Filed events whose own truth is empty (inherited the thread's patient).
    pub filed_inherited: u64,
    /// ... of which holding digits (numbers that are not patients).
    pub filed_inherited_with_digits: u64,
    pub violations: u64,
    pub violations_by_rule: BTreeMap<String, u64>,
}

impl Tally {
    pub fn add(&mut self, thread: &GenThread, steps: &[Vec<Decision>], violations: &[Violation]) {
        self.threads += 1;
        self.events += thread.events.len() as u64;
        let by_id: HashMap<&str, &GenEvent> = thread
            .events
            .iter()
            .map(|e| (e.event.id.as_str(), e))
            .collect();
        let mut named = false;
        for e in &thread.events {
            self.edits += u64::from(e.event.kind == EventKind::Edit);
            self.events_without_digits += u64::from(!e.has_digits);
            self.events_naming_patients += u64::from(!e.truth.is_empty());
            named |= !e.truth.is_empty();
        }
        self.threads_naming_no_patient += u64::from(!named);
        for d in steps.iter().flatten() {
            self.decisions += 1;
            let key = (
                d.outcome.as_str().to_owned(),
                d.reason.clone().unwrap_or_else(|| "-".to_owned()),
            );
            *self.outcomes.entry(key).or_default() += 1;
            if d.outcome == Outcome::Filed
                && let Some(ge) = by_id.get(d.event.id.as_str())
                && ge.truth.is_empty()
            {
                self.filed_inherited += 1;
                self.filed_inherited_with_digits += u64::from(ge.has_digits);
            }
        }
        self.violations += violations.len() as u64;
        for v in violations {
            *self
                .violations_by_rule
                .entry(v.rule.to_owned())
                .or_default() += 1;
        }
    }

    pub fn merge(&mut self, o: &Tally) {
        self.threads += o.threads;
        self.events += o.events;
        self.edits += o.edits;
        self.events_without_digits += o.events_without_digits;
        self.events_naming_patients += o.events_naming_patients;
        self.threads_naming_no_patient += o.threads_naming_no_patient;
        self.decisions += o.decisions;
        for (k, v) in &o.outcomes {
            *self.outcomes.entry(k.clone()).or_default() += v;
        }
        self.filed_inherited += o.filed_inherited;
        self.filed_inherited_with_digits += o.filed_inherited_with_digits;
        self.violations += o.violations;
        for (k, v) in &o.violations_by_rule {
            *self.violations_by_rule.entry(k.clone()).or_default() += v;
        }
    }

    /// Human-readable summary.
    pub fn report(&self) -> String {
        let mut s = String::new();
        let pct = |a: u64, b: u64| {
            if b == 0 {
                0.0
            } else {
                100.0 * a as f64 / b as f64
            }
        };
        let _ = writeln!(
            s,
            "threads {}  events {} (edits {})  decisions {}",
            self.threads, self.events, self.edits, self.decisions
        );
        let _ = writeln!(
            s,
            "events without digits {} ({:.1}%), naming patients {} ({:.1}%); threads naming no patient {}",
            self.events_without_digits,
            pct(self.events_without_digits, self.events),
            self.events_naming_patients,
            pct(self.events_naming_patients, self.events),
            self.threads_naming_no_patient
        );
        let _ = writeln!(
            s,
            "filed by inheritance {} (with non-patient digits {})",
            self.filed_inherited, self.filed_inherited_with_digits
        );
        let _ = writeln!(s, "outcomes (decisions):");
        for ((o, r), n) in &self.outcomes {
            let _ = writeln!(
                s,
                "  {o:<12} {r:<26} {n:>10} ({:.2}%)",
                pct(*n, self.decisions)
            );
        }
        let _ = writeln!(s, "violations {}", self.violations);
        for (r, n) in &self.violations_by_rule {
            let _ = writeln!(s, "  {r:<58} {n}");
        }
        s
    }
}
