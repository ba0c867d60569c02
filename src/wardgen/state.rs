//! The generator's state (its random source and the thread's patients), its
//! random choices, and the parts a message is composed of.

use super::{Patient, is_valid_nhs, nhs_check};
use rand::Rng;
use rand::rngs::StdRng;
use std::collections::BTreeSet;

pub(super) const FIRST: &[&str] = &[
    "Tobrin", "Alvea", "Marek", "Senna", "Oduya", "Feliks", "Imrie", "Zanna", "Corwell", "Ysolde",
    "Bramwen", "Keturah", "Dallan", "Oriel", "Petrik", "Wenna", "Hollis", "Ansel", "Mirelle",
    "Quillon",
];

pub(super) const SYL: &[&str] = &[
    "ab", "dor", "win", "ka", "lem", "tho", "rus", "vel", "an", "mi", "gar", "su", "ton", "bel",
    "qua", "ren", "ox", "fa", "dri", "mo",
];

pub(super) const TITLES: &[&str] = &["Mr", "Mrs", "Ms", "Miss", "Dr", "Mx", ""];

/// One piece of a message: text or an attachment name, and who it names.
#[derive(Debug, Clone)]
pub(super) struct Part {
    pub(super) text: String,
    pub(super) who: BTreeSet<usize>,
    pub(super) attach: bool,
    /// Names a patient (in any form, typos included).
    pub(super) mention: bool,
    /// Holds digits.
    pub(super) digits: bool,
}

impl Part {
    pub(super) fn plain(text: impl Into<String>) -> Self {
        Part {
            text: text.into(),
            who: BTreeSet::new(),
            attach: false,
            mention: false,
            digits: false,
        }
    }
    pub(super) fn numbers(text: impl Into<String>) -> Self {
        Part {
            digits: true,
            ..Part::plain(text)
        }
    }
    pub(super) fn naming(text: impl Into<String>, who: impl IntoIterator<Item = usize>) -> Self {
        Part {
            text: text.into(),
            who: who.into_iter().collect(),
            attach: false,
            mention: true,
            digits: true,
        }
    }
}

pub(super) struct Msg {
    pub(super) id: String,
    pub(super) sender: usize,
    pub(super) parts: Vec<Part>,
}

pub(super) struct Gen {
    pub(super) rng: StdRng,
    pub(super) patients: Vec<Patient>,
}

impl Gen {
    pub(super) fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n)
    }

    pub(super) fn pick(&mut self, xs: &[&'static str]) -> &'static str {
        xs[self.below(xs.len())]
    }

    pub(super) fn num(&mut self, lo: u32, hi: u32) -> u32 {
        self.rng.random_range(lo..=hi)
    }

    pub(super) fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }

    pub(super) fn new_nhs(&mut self) -> String {
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

    pub(super) fn new_name(&mut self) -> String {
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

    pub(super) fn new_patients(&mut self, n: usize) -> Vec<Patient> {
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

    pub(super) fn age_sex(&mut self) -> String {
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

    pub(super) fn location(&mut self) -> String {
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

    pub(super) fn name_of(&mut self, p: usize) -> String {
        let title = self.pick(TITLES);
        let name = self.patients[p].name.clone();
        let surname = name.split(' ').nth(1).unwrap_or("").to_owned();
        match self.below(3) {
            0 => format!("{title} {surname}").trim().to_owned(),
            1 => name,
            _ => surname.to_uppercase(),
        }
    }

    pub(super) fn invented_name(&mut self) -> String {
        let title = self.pick(TITLES);
        let n = self.new_name();
        let sur = n.split(' ').nth(1).unwrap_or("").to_owned();
        format!("{title} {sur}").trim().to_owned()
    }
}

pub(super) fn compose(rng: &mut StdRng, parts: &[Part]) -> (String, Vec<String>, BTreeSet<usize>) {
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
