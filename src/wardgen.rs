//! Synthetic ward-chat threads with ground truth, for the filing safety
//! property (`tests/safety_property.rs`, `benches/safety.rs`).
//!
//! The generator is written independently of the identifier grammar
//! (`mappings/identifiers.toml`, `identify::scan`): it writes identifiers in
//! every form a person might type, mistypes them, negates them, hides them in
//! URLs, tables and attachment names, and surrounds them with numbers that are
//! not patients (phones, bleeps, dates, doses, lab values, references...). It
//! must never be tuned to what the detector recognises.
//!
//! # Ground truth
//!
//! Every generated event carries `truth`: the set of the thread's patients
//! whose identifiers appear in the event's own text or attachment names in
//! ANY written form — recognisable or not: full-width digits, a number split
//! by a newline, `not <number>`, and also a *mistyped* number (one digit
//! changed, one dropped, two swapped: the writer meant that patient). A patient
//! is one person: he always has an NHS number and sometimes a hospital number
//! (`H` + 7 digits); both name the same patient, so `truth` is a set of patient
//! indexes into [`GenThread::patients`], and a decision's [`Identifier`] is
//! mapped back to a patient with [`GenThread::patient_of`] (NHS number, or the
//! 7 digits of the hospital number, whatever the local system URL is). Hospital
//! numbers are never mistyped (they have no check digit: a mistyped one is
//! just another patient's, which no detector can see).
//!
//! Numbers that are not patients are never valid NHS numbers when they are 10
//! digits long (references are forced to fail the check digit); phone numbers
//! are written as people write them, unfiltered.
//!
//! # The safety property ([`check_thread`])
//!
//! No event is ever decided `filed` to patient P unless
//! (a) the event's own truth is exactly {P}, or
//! (b) the event's own truth is empty and the thread's truth so far (all
//!     events up to and including the one being decided when the decision is
//!     made — for a held event released later, up to the releasing event) is
//!     exactly {P}.
//! An edit filed to P: its own truth is empty or {P}, and the thread's truth so
//! far is exactly {P}.
//! A decision filed to an identifier that is none of the thread's patients is
//! always a violation.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::decide::state::ThreadState;
use crate::decide::{Decision, Policy, decide};
use crate::event::{ChatEvent, parse_event};
use crate::identify::{Found, Identifier, Identify, NHS_SYSTEM};

mod check;
mod forms;
mod messages;
mod state;

pub use check::{Tally, Violation, check_thread};
use forms::ascii_digits;
use state::{Gen, Msg, compose};

/// A synthetic patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patient {
    /// 10 ASCII digits, valid Modulus 11.
    pub nhs: String,
    /// `H` + 7 ASCII digits, for some patients.
    pub hospital: Option<String>,
    pub name: String,
}

/// One generated event and its truth.
#[derive(Debug, Clone)]
pub struct GenEvent {
    pub event: ChatEvent,
    /// The JSON the event was parsed from.
    pub json: String,
    /// Patients (indexes into [`GenThread::patients`]) named in the event's
    /// own text and attachment names, in any written form.
    pub truth: BTreeSet<usize>,
    /// Any digit (any script) in the text or attachment names.
    pub has_digits: bool,
}

/// A generated thread: events in order, all of one thread (non-root events
/// carry `thread` = the root's id).
#[derive(Debug, Clone)]
pub struct GenThread {
    pub seed: u64,
    pub index: u64,
    pub patients: Vec<Patient>,
    pub events: Vec<GenEvent>,
}

impl GenThread {
    /// Patients named by events `0..=upto`.
    pub fn thread_truth(&self, upto: usize) -> BTreeSet<usize> {
        self.events[..=upto.min(self.events.len() - 1)]
            .iter()
            .flat_map(|e| e.truth.iter().copied())
            .collect()
    }

    /// The patient an identifier of a decision designates, if any of the
    /// thread's patients: NHS numbers by their 10 digits, anything else by
    /// the 7 digits of a hospital number.
    pub fn patient_of(&self, id: &Identifier) -> Option<usize> {
        let digits = ascii_digits(&id.value);
        if id.system == NHS_SYSTEM {
            self.patients.iter().position(|p| p.nhs == digits)
        } else {
            self.patients
                .iter()
                .position(|p| p.hospital.as_deref().is_some_and(|h| h[1..] == digits))
        }
    }

    /// `P1(9991234567/H1234567)`.
    pub fn label(&self, p: usize) -> String {
        let pat = &self.patients[p];
        match &pat.hospital {
            Some(h) => format!("P{p}({}/{h})", pat.nhs),
            None => format!("P{p}({})", pat.nhs),
        }
    }

    fn labels(&self, set: &BTreeSet<usize>) -> String {
        let v: Vec<String> = set.iter().map(|&p| self.label(p)).collect();
        format!("{{{}}}", v.join(", "))
    }

    /// The thread with its truth and the decisions made at each step, for
    /// reports (synthetic data only).
    pub fn transcript(&self, steps: &[Vec<Decision>]) -> String {
        let mut s = String::new();
        for (i, ge) in self.events.iter().enumerate() {
            let e = &ge.event;
            let _ = write!(s, "  #{i} {} {:?}", e.id, e.kind);
            if let Some(t) = &e.target {
                let _ = write!(s, " target={t}");
            }
            if let Some(r) = &e.reply_to {
                let _ = write!(s, " reply_to={r}");
            }
            let _ = writeln!(s, " sender={}", e.sender);
            let _ = writeln!(s, "      text: {:?}", e.text.as_deref().unwrap_or(""));
            for a in &e.attachments {
                let _ = writeln!(s, "      attachment: {:?}", a.name.as_deref().unwrap_or(""));
            }
            let _ = writeln!(s, "      truth: {}", self.labels(&ge.truth));
            if let Some(ds) = steps.get(i) {
                for d in ds {
                    let _ = writeln!(s, "      -> {}", self.describe(d));
                }
            }
        }
        s
    }

    fn describe(&self, d: &Decision) -> String {
        let who = d.patient.as_ref().map(|p| match self.patient_of(p) {
            Some(i) => self.label(i),
            None => format!("UNKNOWN {}|{}", p.system, p.value),
        });
        format!(
            "{} {}{}{}",
            d.event.id,
            d.outcome.as_str(),
            d.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            who.map(|w| format!(" to {w}")).unwrap_or_default()
        )
    }
}

// ---------------------------------------------------------------------------
// NHS numbers

/// The Modulus 11 check digit of 9 digits; `None` when it would be 10.
pub fn nhs_check(d9: &[u8]) -> Option<u8> {
    let sum: u32 = d9
        .iter()
        .enumerate()
        .map(|(i, &d)| u32::from(d) * (10 - i as u32))
        .sum();
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        c => Some(c as u8),
    }
}

/// 10 ASCII digits, not all identical, with a correct check digit.
pub fn is_valid_nhs(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || !b.iter().all(u8::is_ascii_digit) || b.iter().all(|&c| c == b[0]) {
        return false;
    }
    let d: Vec<u8> = b.iter().map(|c| c - b'0').collect();
    nhs_check(&d[..9]) == Some(d[9])
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

// ---------------------------------------------------------------------------
// Vocabulary

/// The random generator of thread `index` of run `seed` (reproducible alone).
pub fn thread_rng(seed: u64, index: u64) -> StdRng {
    StdRng::seed_from_u64(splitmix64(seed ^ splitmix64(index)))
}

/// Generate thread `index` of run `seed`.
pub fn gen_thread(seed: u64, index: u64) -> GenThread {
    let mut rng = thread_rng(seed, index);
    let named = match rng.random_range(0..100) {
        0..22 => 0,
        22..70 => 1,
        70..90 => 2,
        _ => 3,
    };
    let n_msgs: usize = match rng.random_range(0..10) {
        0 => 1,
        1 | 2 => 2,
        3..6 => rng.random_range(3..=5),
        _ => rng.random_range(4..=8),
    };
    let mut g = Gen {
        rng,
        patients: Vec::new(),
    };
    // One spare patient, never planned: only mistyped, negated or edited in.
    g.patients = g.new_patients(named + 1);
    let all = named + 1;

    // When each planned patient is first named.
    let mut intro = vec![0usize; named];
    if named > 0 {
        intro[0] = if g.chance(0.55) { 0 } else { g.below(4) };
        intro[0] = intro[0].min(n_msgs - 1);
        for k in 1..named {
            intro[k] = if g.chance(0.35) {
                intro[0]
            } else {
                g.rng.random_range(intro[0]..n_msgs)
            };
        }
    }

    let room = format!("!ward{}:trust.example", index % 17);
    let senders: Vec<(String, String)> = (0..g.num(2, 4))
        .map(|k| {
            (
                format!("@staff{k}.{}:trust.example", index % 97),
                g.pick(&["Nurse A", "Dr B", "Sister C", "FY1 D", "Reg E", "HCA F"])
                    .to_owned(),
            )
        })
        .collect();
    let base: DateTime<Utc> = Utc
        .with_ymd_and_hms(2026, 3, 2, 7, 0, 0)
        .single()
        .unwrap_or_default()
        + Duration::minutes((index % 50_000) as i64);
    let root_id = format!("$g{seed:x}-{index}-0");

    let mut msgs: Vec<Msg> = Vec::new();
    let mut events = Vec::new();
    let mut t = base;
    let mut m = 0usize;
    let mut step = 0usize;
    while m < n_msgs {
        t += Duration::minutes(g.num(1, 40) as i64);
        let id = format!("$g{seed:x}-{index}-{step}");
        let mut v = serde_json::json!({
            "id": id,
            "room": room,
            "sent_at": t.to_rfc3339(),
        });
        if step > 0 {
            v["thread"] = root_id.clone().into();
        }
        let (parts, sender) = if !msgs.is_empty() && g.chance(0.14) {
            // An edit of an earlier message, by its sender.
            let k = g.below(msgs.len());
            let parts = g.edited(&msgs[k].parts, all);
            msgs[k].parts = parts.clone();
            v["type"] = "edit".into();
            v["target"] = msgs[k].id.clone().into();
            (parts, msgs[k].sender)
        } else {
            let mut who: Vec<usize> = (0..named).filter(|&k| intro[k] == m).collect();
            for (k, &first) in intro.iter().enumerate().take(named) {
                if first < m && g.chance(0.1) {
                    who.push(k);
                }
            }
            let parts = g.message_parts(&who, all);
            let sender = g.below(senders.len());
            if !msgs.is_empty() && g.chance(0.3) {
                let r = g.below(msgs.len());
                v["reply_to"] = msgs[r].id.clone().into();
            }
            msgs.push(Msg {
                id: id.clone(),
                sender,
                parts: parts.clone(),
            });
            m += 1;
            (parts, sender)
        };
        v["sender"] = senders[sender].0.clone().into();
        v["sender_name"] = senders[sender].1.clone().into();
        let (text, atts, truth) = compose(&mut g.rng, &parts);
        v["text"] = text.clone().into();
        if !atts.is_empty() {
            v["attachments"] = atts
                .iter()
                .map(|n| serde_json::json!({"name": n, "content_type": "application/octet-stream"}))
                .collect::<Vec<_>>()
                .into();
        }
        let has_digits = text.chars().any(char::is_numeric)
            || atts.iter().any(|a| a.chars().any(char::is_numeric));
        let json = v.to_string();
        let event = parse_event(&json, "gen").expect("generated events are valid chat events");
        events.push(GenEvent {
            event,
            json,
            truth,
            has_digits,
        });
        step += 1;
    }
    GenThread {
        seed,
        index,
        patients: g.patients,
        events,
    }
}

// ---------------------------------------------------------------------------
// Running and checking

/// Decide the thread's events in order through identify + decide, carrying
/// the thread state; `now` is each event's `sent_at`. Returns, per input
/// event, the decisions made when it was decided (earlier held events it
/// released included).
pub fn run_thread(idf: &Identify, policy: &Policy, thread: &GenThread) -> Vec<Vec<Decision>> {
    run_thread_with(idf, policy, thread, |_| {})
}

/// [`run_thread`] with `tweak` applied to each event's [`Found`] before
/// `decide` (to show that the property test can fail).
pub fn run_thread_with(
    idf: &Identify,
    policy: &Policy,
    thread: &GenThread,
    mut tweak: impl FnMut(&mut Found),
) -> Vec<Vec<Decision>> {
    let mut state = ThreadState::default();
    let mut out = Vec::with_capacity(thread.events.len());
    for ge in &thread.events {
        let ev = ge.event.clone();
        let mut found = idf.find(&ev);
        tweak(&mut found);
        let now = ev.sent_at.with_timezone(&Utc);
        let step = decide(state, ev, found, now, policy);
        state = step.state;
        out.push(step.decisions);
    }
    out
}

/// Generate, run and check thread `index` of run `seed`.
pub fn run_one(
    idf: &Identify,
    policy: &Policy,
    seed: u64,
    index: u64,
    tweak: impl FnMut(&mut Found),
) -> (GenThread, Vec<Vec<Decision>>, Vec<Violation>) {
    let t = gen_thread(seed, index);
    let steps = run_thread_with(idf, policy, &t, tweak);
    let v = check_thread(&t, &steps);
    (t, steps, v)
}

#[cfg(test)]
mod tests {
    use super::state::Part;
    use super::*;

    #[test]
    fn generated_numbers_are_valid() {
        for i in 0..200 {
            let t = gen_thread(7, i);
            for p in &t.patients {
                assert!(is_valid_nhs(&p.nhs), "{}", p.nhs);
            }
        }
        assert!(is_valid_nhs("9434765919"));
        assert!(!is_valid_nhs("9434765918"));
        assert!(!is_valid_nhs("1111111111"));
    }

    #[test]
    fn two_patients_mentions_are_never_joined_by_a_bare_space() {
        let part = |t: &str, who: &[usize]| Part {
            text: t.into(),
            who: who.iter().copied().collect(),
            attach: false,
            mention: !who.is_empty(),
            digits: true,
        };
        let mut spaces = 0;
        for seed in 0..200 {
            let mut rng = thread_rng(seed, 0);
            let (two, _, truth) = compose(&mut rng, &[part("A", &[0]), part("(B)", &[1])]);
            assert_ne!(two, "A (B)");
            assert_eq!(truth, BTreeSet::from([0, 1]));
            // One patient's parts (or a part naming no one) may be.
            let mut rng = thread_rng(seed, 0);
            let (one, _, _) = compose(&mut rng, &[part("A", &[0]), part("(A2)", &[0])]);
            spaces += usize::from(one == "A (A2)");
        }
        assert!(spaces > 0);
    }

    #[test]
    fn deterministic() {
        let a = gen_thread(1, 5);
        let b = gen_thread(1, 5);
        assert_eq!(a.events.len(), b.events.len());
        for (x, y) in a.events.iter().zip(&b.events) {
            assert_eq!(x.json, y.json);
        }
    }
}
