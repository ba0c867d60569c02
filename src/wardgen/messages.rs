//! A message's parts (who it names, in which form, among which fillers),
//! and an edit's new parts.

use super::forms::CLINICAL;
use super::state::{Gen, Part};

pub(super) const NO_DIGIT: &[&str] = &[
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

impl Gen {
    pub(super) fn digit_filler(&mut self) -> String {
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

    pub(super) fn filler(&mut self, digits: bool) -> Part {
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
    pub(super) fn message_parts(&mut self, who: &[usize], all: usize) -> Vec<Part> {
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
    pub(super) fn edited(&mut self, parts: &[Part], all: usize) -> Vec<Part> {
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
