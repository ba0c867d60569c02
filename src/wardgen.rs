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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::decide::state::ThreadState;
use crate::decide::{Decision, Outcome, Policy, decide};
use crate::event::{ChatEvent, EventKind, parse_event};
use crate::identify::{Found, Identifier, Identify, NHS_SYSTEM};

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

/// Digits of any script the generator writes, as ASCII; other characters dropped.
fn ascii_digits(s: &str) -> String {
    s.chars()
        .filter_map(|c| {
            if c.is_ascii_digit() {
                return Some(c);
            }
            SCRIPTS.iter().find_map(|&base| {
                let u = c as u32;
                (base..base + 10)
                    .contains(&u)
                    .then(|| char::from(b'0' + (u - base) as u8))
            })
        })
        .collect()
}

const SCRIPTS: [u32; 5] = [0xFF10, 0x0660, 0x06F0, 0x0966, 0x09E6];

fn in_script(s: &str, base: u32) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                char::from_u32(base + (c as u32 - '0' as u32)).unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

// ---------------------------------------------------------------------------
// Vocabulary

const FIRST: &[&str] = &[
    "Tobrin", "Alvea", "Marek", "Senna", "Oduya", "Feliks", "Imrie", "Zanna", "Corwell", "Ysolde",
    "Bramwen", "Keturah", "Dallan", "Oriel", "Petrik", "Wenna", "Hollis", "Ansel", "Mirelle",
    "Quillon",
];
const SYL: &[&str] = &[
    "ab", "dor", "win", "ka", "lem", "tho", "rus", "vel", "an", "mi", "gar", "su", "ton", "bel",
    "qua", "ren", "ox", "fa", "dri", "mo",
];
const TITLES: &[&str] = &["Mr", "Mrs", "Ms", "Miss", "Dr", "Mx", ""];
const NO_DIGIT: &[&str] = &[
    "can someone review please",
    "obs stable overnight",
    "family updated",
    "needs bloods today",
    "please chase the CT report",
    "pain team aware",
    "for discharge today?",
    "reviewed by reg, plan as above",
    "thanks",
    "will do",
    "on my way",
    "bloods sent",
    "NBM from midnight",
    "seen, happy with plan",
    "please escalate to outreach",
    "can you prescribe regular analgesia",
    "cannula tissued, needs a new one",
    "fluids running",
    "ok",
    "done",
    "agreed",
    "micro called, growing something in the cultures",
    "patient refusing meds this morning",
    "son wants a call back",
    "physio to see before discharge",
    "TTOs not written yet",
    "wife on the way in",
    "can we get a DNACPR discussion",
    "sats dropping, please come",
    "ECG done, looks the same as before",
    "confused overnight, pulled out NG",
    "any update?",
    "yes",
    "no change",
    "will review after ward round",
    "sorry wrong thread",
    "same patient as above",
    "who is covering tonight?",
    "pharmacy query about the warfarin",
    "awaiting social care",
];
const CLINICAL: &[&str] = &[
    "stable",
    "for review",
    "awaiting CT",
    "NBM",
    "on IV abx",
    "for discharge",
    "DNACPR in place",
    "falls risk",
    "query sepsis",
    "pain controlled",
];
const NHS_PREFIX: &[&str] = &[
    "NHS ",
    "NHS#",
    "NHS# ",
    "NHS: ",
    "nhs:",
    "nhs=",
    "NHS no. ",
    "NHS No: ",
    "nhs number ",
    "NHS number: ",
    "pt ",
    "Pt: ",
    "no. ",
    "#",
    "ID ",
    "patient ",
    "NHSno",
    "nhs#",
    "NHS\n",
    "NHS:\n",
    "nhs no ",
    "N.H.S. ",
    "pt no ",
];
const RARE_SEPS: &[&str] = &[
    "  ", "\u{200B}", "\u{202F}", "\t", "\u{2013}", ",", "\u{00A0}", " - ", "\n", "|", " | ", "_",
    "/", " .", "\u{2009}", "\u{2011}", "'",
];

/// One piece of a message: text or an attachment name, and who it names.
#[derive(Debug, Clone)]
struct Part {
    text: String,
    who: BTreeSet<usize>,
    attach: bool,
    /// Names a patient (in any form, typos included).
    mention: bool,
    /// Holds digits.
    digits: bool,
}

impl Part {
    fn plain(text: impl Into<String>) -> Self {
        Part {
            text: text.into(),
            who: BTreeSet::new(),
            attach: false,
            mention: false,
            digits: false,
        }
    }
    fn numbers(text: impl Into<String>) -> Self {
        Part {
            digits: true,
            ..Part::plain(text)
        }
    }
    fn naming(text: impl Into<String>, who: impl IntoIterator<Item = usize>) -> Self {
        Part {
            text: text.into(),
            who: who.into_iter().collect(),
            attach: false,
            mention: true,
            digits: true,
        }
    }
}

struct Msg {
    id: String,
    sender: usize,
    parts: Vec<Part>,
}

struct Gen {
    rng: StdRng,
    patients: Vec<Patient>,
}

impl Gen {
    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }
    fn below(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n)
    }
    fn pick(&mut self, xs: &[&'static str]) -> &'static str {
        xs[self.below(xs.len())]
    }
    fn num(&mut self, lo: u32, hi: u32) -> u32 {
        self.rng.random_range(lo..=hi)
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }

    fn new_nhs(&mut self) -> String {
        loop {
            let mut d: Vec<u8> = if self.chance(0.8) {
                vec![9, 9, 9]
            } else {
                vec![
                    self.num(1, 9) as u8,
                    self.below(10) as u8,
                    self.below(10) as u8,
                ]
            };
            while d.len() < 9 {
                d.push(self.below(10) as u8);
            }
            if let Some(c) = nhs_check(&d) {
                d.push(c);
                let s: String = d.iter().map(|x| char::from(b'0' + x)).collect();
                if is_valid_nhs(&s) {
                    return s;
                }
            }
        }
    }

    fn new_name(&mut self) -> String {
        let first = self.pick(FIRST);
        let n = self.num(2, 3);
        let mut sur = String::new();
        for _ in 0..n {
            sur.push_str(self.pick(SYL));
        }
        let mut c = sur.chars();
        let sur = match c.next() {
            Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
            None => sur,
        };
        format!("{first} {sur}")
    }

    fn new_patients(&mut self, n: usize) -> Vec<Patient> {
        let mut v: Vec<Patient> = Vec::new();
        while v.len() < n {
            let nhs = self.new_nhs();
            let hospital = self
                .chance(0.3)
                .then(|| format!("H{}{}", self.num(1, 9), self.digits(6)));
            let clash = v
                .iter()
                .any(|p| p.nhs == nhs || (hospital.is_some() && p.hospital == hospital));
            if !clash {
                let name = self.new_name();
                v.push(Patient {
                    nhs,
                    hospital,
                    name,
                });
            }
        }
        v
    }

    // --- written forms of identifiers ------------------------------------

    fn sep(&mut self) -> &'static str {
        match self.below(100) {
            0..50 => " ",
            50..63 => "-",
            63..71 => ".",
            _ => RARE_SEPS[self.below(RARE_SEPS.len())],
        }
    }

    /// Digits `d` cut into groups, with separators.
    fn grouped(&mut self, d: &str) -> String {
        let n = d.len();
        let groups: Vec<usize> = if n == 10 {
            match self.below(100) {
                0..25 => vec![10],
                25..60 => vec![3, 3, 4],
                60..70 => vec![3, 7],
                70..80 => vec![4, 3, 3],
                80..84 => vec![3, 4, 3],
                84..88 => vec![2, 2, 2, 2, 2],
                88..92 => vec![5, 5],
                92..95 => vec![6, 4],
                _ => self.random_groups(n),
            }
        } else {
            match self.below(4) {
                0 => vec![n],
                1 if n > 6 => vec![3, 3, n - 6],
                2 if n > 3 => vec![3, n - 3],
                _ => self.random_groups(n),
            }
        };
        let mixed = self.chance(0.12);
        let first = self.sep();
        let mut out = String::new();
        let mut pos = 0;
        for (k, g) in groups.iter().enumerate() {
            if k > 0 {
                let s = if mixed { self.sep() } else { first };
                out.push_str(s);
            }
            out.push_str(&d[pos..pos + g]);
            pos += g;
        }
        out
    }

    fn random_groups(&mut self, n: usize) -> Vec<usize> {
        let mut v = Vec::new();
        let mut left = n;
        while left > 0 {
            let g = self.num(1, left.min(5) as u32) as usize;
            v.push(g);
            left -= g;
        }
        v
    }

    fn maybe_script(&mut self, s: String) -> String {
        if self.chance(0.08) {
            let base = SCRIPTS[self.below(SCRIPTS.len())];
            in_script(&s, base)
        } else {
            s
        }
    }

    fn age_sex(&mut self) -> String {
        let age = self.num(18, 99);
        let sex = self.pick(&["M", "F", "m", "f"]);
        match self.below(6) {
            0 => format!("{age}{sex}"),
            1 => format!("({age}{sex})"),
            2 => format!(", {age}{sex}"),
            3 => format!("{age} {sex}"),
            4 => format!("{age}yo {sex}"),
            _ => format!("{age}{sex},"),
        }
    }

    fn location(&mut self) -> String {
        let n = self.num(1, 32);
        match self.below(12) {
            0 => format!("bed {n}"),
            1 => format!("Bed {n}"),
            2 => format!("bay {} bed {n}", self.num(1, 6)),
            3 => format!("side room {n}"),
            4 => format!("SR{n}"),
            5 => format!("SR {n}"),
            6 => format!("cubicle {n}"),
            7 => format!("resus {}", self.num(1, 4)),
            8 => format!("B{}", self.num(1, 6)),
            9 => format!("bay {}", self.num(1, 6)),
            10 => format!("bed{n}"),
            _ => format!("{}/{n}", self.pick(&["bay 2", "bay 4", "ward 7", "AMU"])),
        }
    }

    fn name_of(&mut self, p: usize) -> String {
        let title = self.pick(TITLES);
        let name = self.patients[p].name.clone();
        let surname = name.split(' ').nth(1).unwrap_or("").to_owned();
        match self.below(3) {
            0 => format!("{title} {surname}").trim().to_owned(),
            1 => name,
            _ => surname.to_uppercase(),
        }
    }

    fn invented_name(&mut self) -> String {
        let title = self.pick(TITLES);
        let n = self.new_name();
        let sur = n.split(' ').nth(1).unwrap_or("").to_owned();
        format!("{title} {sur}").trim().to_owned()
    }

    fn decorate(&mut self, s: String, p: usize) -> String {
        match self.below(100) {
            0..7 => format!("({s})"),
            7..10 => format!("[{s}]"),
            10..24 => {
                let a = self.age_sex();
                let sp = if a.starts_with(',') { "" } else { " " };
                format!("{s}{sp}{a}")
            }
            24..34 => format!("{} {s}", self.location()),
            34..42 => format!("{} {s}", self.name_of(p)),
            42..48 => format!("{s} {}", self.name_of(p)),
            48..51 => format!("{s}?"),
            51..53 => format!("{s}."),
            // A count with its unit or a gestation beside the number, and
            // a row pasted with tabs (the cells beside it hold digits).
            53..57 => {
                let unit = self.pick(&["days", "units", "kg", "wks", "hrs", "pool", "doses"]);
                let sep = self.pick(&[" ", " - ", "  "]);
                format!("{s}{sep}{} {unit}", self.num(1, 30))
            }
            57..60 => format!("{}+{} {s}", self.num(23, 42), self.num(0, 6)),
            60..62 => format!("{s} {}+{}/40", self.num(23, 42), self.num(0, 6)),
            62..65 => format!(
                "{}\t{}\t{s}\t{}.{}",
                self.num(1, 30),
                self.name_of(p),
                self.num(40, 120),
                self.num(0, 9)
            ),
            _ => s,
        }
    }

    fn nhs_form(&mut self, d: &str, p: usize) -> String {
        let core = self.grouped(d);
        let core = self.maybe_script(core);
        let prefix = if self.chance(0.45) {
            self.pick(NHS_PREFIX)
        } else {
            ""
        };
        self.decorate(format!("{prefix}{core}"), p)
    }

    fn url_form(&mut self, d: &str) -> String {
        let d = if self.chance(0.3) {
            format!("{}-{}-{}", &d[..3], &d[3..6], &d[6..])
        } else {
            d.to_owned()
        };
        match self.below(5) {
            0 => format!("https://epr.example.nhs.uk/patient/{d}/summary"),
            1 => format!("https://viewer.example.org/?nhs={d}&tab=obs"),
            2 => format!("see epr.local/pt/{d}"),
            3 => format!("<https://results.example.org/r?id={d}>"),
            _ => format!("http://pacs.example/study?patient={d}&modality=CT"),
        }
    }

    fn table_form(&mut self, d: &str, p: usize) -> String {
        let core = format!("{}|{}|{}", &d[..3], &d[3..6], &d[6..]);
        match self.below(3) {
            0 => core,
            1 => format!("| {} | {core} | {} |", self.location(), self.name_of(p)),
            _ => format!(
                "{}|{}|{}",
                self.location(),
                d,
                CLINICAL[self.below(CLINICAL.len())]
            ),
        }
    }

    fn hosp_form(&mut self, h: &str, p: usize) -> String {
        let d = h[1..].to_owned();
        let dd = self.maybe_script(d.clone());
        let s = match self.below(14) {
            0 | 1 => format!("H{dd}"),
            2 => format!("h{dd}"),
            3 => format!("H {dd}"),
            4 => format!("H-{dd}"),
            5 => format!("H{} {}", &d[..3], &d[3..]),
            6 => format!("hosp no {dd}"),
            7 => format!("hosp no. H{dd}"),
            8 => format!("MRN {dd}"),
            9 => format!("MRN: H{dd}"),
            10 => format!("hospital number {dd}"),
            11 => format!("Hosp#{dd}"),
            12 => format!("H.{dd}"),
            _ => format!("H{}", self.grouped(&d)),
        };
        self.decorate(s, p)
    }

    /// Patient `p` named in some written form.
    fn mention(&mut self, p: usize) -> String {
        let pat = self.patients[p].clone();
        if let Some(h) = &pat.hospital
            && self.chance(0.45)
        {
            return self.hosp_form(h, p);
        }
        match self.below(100) {
            0..5 => self.url_form(&pat.nhs),
            5..9 => self.table_form(&pat.nhs, p),
            9..12 => {
                // Split by a newline somewhere inside the number.
                let k = self.num(2, 8) as usize;
                format!("{}\n{}", &pat.nhs[..k], &pat.nhs[k..])
            }
            _ => self.nhs_form(&pat.nhs, p),
        }
    }

    /// A mistyped NHS number of patient `p`: one digit changed, one dropped,
    /// or two adjacent different digits swapped; never a valid number.
    fn typo(&mut self, p: usize) -> String {
        let d: Vec<u8> = self.patients[p].nhs.bytes().collect();
        loop {
            let mut t = d.clone();
            match self.below(3) {
                0 => {
                    let i = self.below(10);
                    let old = t[i];
                    while t[i] == old {
                        t[i] = b'0' + self.below(10) as u8;
                    }
                }
                1 => {
                    t.remove(self.below(10));
                }
                _ => {
                    let i = self.below(9);
                    if t[i] == t[i + 1] {
                        continue;
                    }
                    t.swap(i, i + 1);
                }
            }
            let s = String::from_utf8(t).unwrap_or_default();
            if !is_valid_nhs(&s) {
                return s;
            }
        }
    }

    fn typo_form(&mut self, p: usize) -> String {
        let t = self.typo(p);
        let s = self.nhs_form(&t, p);
        match self.below(6) {
            0 => format!("{s} (typo?)"),
            1 => format!("sorry {s}"),
            _ => s,
        }
    }

    fn negated(&mut self, p: usize) -> String {
        let m = self.mention(p);
        match self.below(6) {
            0 => format!("not {m}"),
            1 => format!("NOT {m}"),
            2 => format!("(not {m})"),
            3 => format!("not pt {m} - wrong patient"),
            4 => format!("ignore {m}"),
            _ => format!("nb not {m}"),
        }
    }

    fn attachment_mention(&mut self, p: usize) -> String {
        let pat = self.patients[p].clone();
        let id = match &pat.hospital {
            Some(h) if self.chance(0.4) => h.clone(),
            _ => match self.below(4) {
                0 => format!("{}-{}-{}", &pat.nhs[..3], &pat.nhs[3..6], &pat.nhs[6..]),
                1 => format!("{}_{}_{}", &pat.nhs[..3], &pat.nhs[3..6], &pat.nhs[6..]),
                2 => format!("{} {} {}", &pat.nhs[..3], &pat.nhs[3..6], &pat.nhs[6..]),
                _ => pat.nhs.clone(),
            },
        };
        let pre = self.pick(&[
            "ECG_",
            "",
            "CXR ",
            "referral-",
            "discharge_letter_",
            "wound ",
        ]);
        let post = self.pick(&[".pdf", "_ecg.png", ".jpg", " letter.docx", "-1.jpeg"]);
        format!("{pre}{id}{post}")
    }

    fn pair(&mut self, a: usize, b: usize) -> String {
        let x = self.mention(a);
        let y = self.mention(b);
        let s = self.pick(&["/", " / ", "/ ", " /"]);
        format!("{x}{s}{y}")
    }

    /// The same patient's NHS and hospital numbers as an `A/B` pair.
    fn own_pair(&mut self, p: usize) -> Option<String> {
        let pat = self.patients[p].clone();
        let h = pat.hospital?;
        let n = self.grouped(&pat.nhs);
        Some(match self.below(6) {
            0 | 1 => format!("{n}/{h}"),
            2 => format!("{h} / {n}"),
            // One person's record: the pairing convention (one patient).
            3 => format!("{n} (H number {h})"),
            4 => format!("NHS No: {n}\tMRN: {h}"),
            _ => format!("{h} (NHS {n})"),
        })
    }

    // --- numbers that are not patients ------------------------------------

    fn ten_digit_ref(&mut self) -> String {
        loop {
            let d = format!("{}{}", self.num(1, 9), self.digits(9));
            if !is_valid_nhs(&d) {
                return d;
            }
        }
    }

    fn phone(&mut self) -> String {
        match self.below(10) {
            0 => format!("01632 960{:03}", self.num(0, 999)),
            1 => format!("01632960{:03}", self.num(0, 999)),
            2 => format!("0113 496 0{:03}", self.num(0, 999)),
            3 => format!("020 7946 0{:03}", self.num(0, 999)),
            4 => format!("07700 900{:03}", self.num(0, 999)),
            5 => format!("07700900{:03}", self.num(0, 999)),
            6 => format!("+44 7700 900{:03}", self.num(0, 999)),
            7 => format!("+44 (0)113 496 0{:03}", self.num(0, 999)),
            8 => format!("+447700900{:03}", self.num(0, 999)),
            _ => format!("0{}{} {}", self.num(1, 2), self.digits(3), self.digits(6)),
        }
    }

    fn digit_filler(&mut self) -> String {
        match self.below(20) {
            0 => self.location(),
            1 => format!("call {}", self.phone()),
            2 => format!("daughter's number {}", self.phone()),
            3 => format!("bleep {}", self.num(1000, 9999)),
            4 => format!(
                "{} {}",
                self.pick(&["bleep #", "blp", "bleep me on", "page"]),
                self.num(1000, 9999)
            ),
            5 => format!(
                "{} {}",
                self.pick(&["ext", "ext.", "x", "extension"]),
                self.num(2000, 79999)
            ),
            6 => match self.below(6) {
                0 => format!(
                    "{:02}/{:02}/20{}",
                    self.num(1, 28),
                    self.num(1, 12),
                    self.num(20, 26)
                ),
                1 => format!(
                    "20{}-{:02}-{:02}",
                    self.num(20, 26),
                    self.num(1, 12),
                    self.num(1, 28)
                ),
                2 => format!(
                    "{:02}.{:02}.{}",
                    self.num(1, 28),
                    self.num(1, 12),
                    self.num(20, 26)
                ),
                3 => format!(
                    "DOB {:02}/{:02}/19{}",
                    self.num(1, 28),
                    self.num(1, 12),
                    self.num(20, 99)
                ),
                4 => format!("{}th March", self.num(4, 20)),
                _ => format!("{}/{}", self.num(1, 28), self.num(1, 12)),
            },
            7 => match self.below(5) {
                0 => format!("at {:02}:{:02}", self.num(0, 23), self.num(0, 59)),
                1 => format!("{:02}{:02}", self.num(0, 23), self.num(0, 59)),
                2 => format!("{}pm", self.num(1, 11)),
                3 => format!("{:02}.{:02}", self.num(0, 23), self.num(0, 59)),
                _ => format!("{:02}00h", self.num(0, 23)),
            },
            8 => {
                let d = self.pick(&[
                    "paracetamol 1g",
                    "morphine 2.5mg",
                    "enoxaparin 40mg",
                    "insulin 10 units",
                    "gent 5mg/kg",
                    "furosemide 40mg IV",
                    "2 units blood",
                    "1L NaCl over 8h",
                    "amox 500mg tds",
                    "tazocin 4.5g",
                ]);
                d.to_owned()
            }
            9 => match self.below(8) {
                0 => format!("K+ {}.{}", self.num(2, 7), self.num(0, 9)),
                1 => format!("Hb {}", self.num(55, 160)),
                2 => format!("CRP {}", self.num(1, 400)),
                3 => format!("Na {}", self.num(118, 150)),
                4 => format!("lactate {}.{}", self.num(0, 9), self.num(0, 9)),
                5 => format!("eGFR {}", self.num(5, 90)),
                6 => format!("trop {} ng/L", self.num(3, 9000)),
                _ => format!("INR {}.{}", self.num(1, 6), self.num(0, 9)),
            },
            10 => match self.below(7) {
                0 => format!("BP {}/{}", self.num(70, 200), self.num(40, 120)),
                1 => format!("HR {}", self.num(40, 160)),
                2 => format!("RR {}", self.num(10, 40)),
                3 => format!("sats {}% on {}L", self.num(80, 100), self.num(1, 15)),
                4 => format!("temp {}.{}", self.num(35, 40), self.num(0, 9)),
                5 => format!("NEWS {}", self.num(0, 14)),
                _ => format!("GCS {}/15", self.num(3, 15)),
            },
            11 => match self.below(5) {
                0 => format!("ref W{}", self.digits(6)),
                1 => format!(
                    "order 20{}{:02}{:02}-{:04}",
                    self.num(20, 26),
                    self.num(1, 12),
                    self.num(1, 28),
                    self.num(0, 9999)
                ),
                2 => format!("incident 20{}/{:04}", self.num(20, 26), self.num(1, 9999)),
                3 => format!("lab no {}", self.digits(8)),
                _ => format!("Datix {}", self.digits(6)),
            },
            12 => {
                let r = self.ten_digit_ref();
                match self.below(5) {
                    0 => format!("ref {r}"),
                    1 => format!("order no {r}"),
                    2 => format!("lab no. {r}"),
                    3 => format!("sample {} {} {}", &r[..3], &r[3..6], &r[6..]),
                    _ => format!("Datix ref {r}"),
                }
            }
            13 => format!("{}yo", self.num(18, 99)),
            14 => format!("x{}", self.num(2, 4)),
            15 => format!("{} {}", self.invented_name(), self.location()),
            16 => format!("{} units", self.num(1, 30)),
            17 => format!("weight {}kg", self.num(40, 140)),
            18 => format!("room {}", self.num(1, 40)),
            _ => format!("IMG_{}.jpg", self.num(1000, 9999)),
        }
    }

    fn filler(&mut self, digits: bool) -> Part {
        if digits {
            Part::numbers(self.digit_filler())
        } else {
            let s = self.pick(NO_DIGIT);
            let s = if self.chance(0.15) {
                format!("{} {s}", self.invented_name())
            } else {
                s.to_owned()
            };
            Part::plain(s)
        }
    }

    /// Parts of a message naming `who` (may be empty).
    fn message_parts(&mut self, who: &[usize], all: usize) -> Vec<Part> {
        let mut parts = Vec::new();
        if who.len() >= 2 && self.chance(0.6) {
            // Handover.
            parts.push(Part::plain(self.pick(&[
                "Handover:",
                "handover",
                "For the list:",
                "Overnight:",
            ])));
            for &p in who {
                let loc = self.location();
                let name = self.name_of(p);
                let m = self.mention(p);
                let c = CLINICAL[self.below(CLINICAL.len())];
                let text = match self.below(3) {
                    0 => format!("{loc} {name} {m} {c}"),
                    1 => format!("{m} {c}"),
                    _ => format!("{name} ({m}) - {c}"),
                };
                parts.push(Part::naming(text, [p]));
            }
        } else if who.len() == 2 && self.chance(0.5) {
            let t = self.pair(who[0], who[1]);
            parts.push(Part::naming(t, who.iter().copied()));
        } else {
            for &p in who {
                if let Some(t) = self.chance(0.1).then(|| self.own_pair(p)).flatten() {
                    parts.push(Part::naming(t, [p]));
                } else if self.chance(0.07) {
                    let t = self.attachment_mention(p);
                    parts.push(Part {
                        attach: true,
                        ..Part::naming(t, [p])
                    });
                } else {
                    let t = self.mention(p);
                    parts.push(Part::naming(t, [p]));
                }
            }
        }
        // Context around it.
        let extra = if who.is_empty() {
            1 + usize::from(self.chance(0.25)) as u32
        } else {
            self.num(0, 2)
        };
        let digits_p = if who.is_empty() { 0.1 } else { 0.4 };
        for _ in 0..extra {
            let d = self.chance(digits_p);
            let f = self.filler(d);
            let at = self.below(parts.len() + 1);
            parts.insert(at, f);
        }
        // Rare: a mistyped number or a negated one, of any patient of the thread.
        if self.chance(0.04) {
            let p = self.below(all);
            let t = self.typo_form(p);
            parts.push(Part::naming(t, [p]));
        }
        if self.chance(0.025) {
            let p = self.below(all);
            let t = self.negated(p);
            parts.push(Part::naming(t, [p]));
        }
        if self.chance(0.04) {
            let name = if self.chance(0.5) {
                format!("IMG_{}.jpg", self.num(1000, 9999))
            } else {
                self.pick(&["wound.jpg", "obs chart.pdf", "photo.png"])
                    .to_owned()
            };
            let digits = name.chars().any(|c| c.is_ascii_digit());
            parts.push(Part {
                attach: true,
                digits,
                ..Part::plain(name)
            });
        }
        parts
    }

    /// A new version of `parts` for an edit: add, alter or remove numbers.
    fn edited(&mut self, parts: &[Part], all: usize) -> Vec<Part> {
        let mut v = parts.to_vec();
        let mentions: Vec<usize> = (0..v.len()).filter(|&i| v[i].mention).collect();
        match self.below(10) {
            // add
            0..4 => {
                let part = match self.below(10) {
                    0..5 => Part::numbers(self.digit_filler()),
                    5..8 => {
                        let p = self.below(all);
                        let t = self.mention(p);
                        Part::naming(t, [p])
                    }
                    _ => {
                        let p = self.below(all);
                        let t = self.typo_form(p);
                        Part::naming(t, [p])
                    }
                };
                let at = self.below(v.len() + 1);
                v.insert(at, part);
            }
            // alter
            4..7 if !mentions.is_empty() => {
                let i = mentions[self.below(mentions.len())];
                let p = if self.chance(0.5) {
                    *v[i].who.iter().next().unwrap_or(&0)
                } else {
                    self.below(all)
                };
                let t = if self.chance(0.2) {
                    self.typo_form(p)
                } else {
                    self.mention(p)
                };
                v[i] = Part {
                    attach: v[i].attach,
                    ..Part::naming(t, [p])
                };
            }
            4..7 => {
                // no mention: alter a number, or add a fresh one
                if let Some(i) = v.iter().position(|p| p.digits) {
                    v[i] = Part::numbers(self.digit_filler());
                } else {
                    v.push(Part::numbers(self.digit_filler()));
                }
            }
            // remove
            _ => {
                if !mentions.is_empty() {
                    v.retain(|p| !p.mention);
                } else {
                    v.retain(|p| !p.digits);
                }
                if v.is_empty() {
                    v.push(self.filler(false));
                }
            }
        }
        if self.chance(0.2) {
            v.push(Part::plain(self.pick(&[
                "(edited)",
                "*",
                "sorry, corrected",
                "updated",
            ])));
        }
        v
    }
}

fn compose(rng: &mut StdRng, parts: &[Part]) -> (String, Vec<String>, BTreeSet<usize>) {
    const JOIN: &[&str] = &[" ", " ", ", ", ". ", "\n", " - ", "; "];
    let mut text = String::new();
    let mut atts = Vec::new();
    // Two patients' mentions are never joined by a bare space: "999 677 7286
    // (MRN: H2030212)" is how one person's record is written (the pairing
    // convention of mappings/identifiers.toml), not a list of two people.
    const APART: &[&str] = &[", ", ". ", "\n", " - ", "; "];
    let mut truth = BTreeSet::new();
    let mut last: Option<&BTreeSet<usize>> = None;
    for p in parts {
        truth.extend(p.who.iter().copied());
        if p.attach {
            atts.push(p.text.clone());
        } else {
            if !text.is_empty() {
                let others =
                    last.is_some_and(|l| !l.is_empty() && !p.who.is_empty() && *l != p.who);
                let join = if others { APART } else { JOIN };
                text.push_str(join[rng.random_range(0..join.len())]);
            }
            text.push_str(&p.text);
            last = Some(&p.who);
        }
    }
    (text, atts, truth)
}

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
