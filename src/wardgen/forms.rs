//! Every written form of an identifier: groupings and separators, other
//! scripts' digits, URLs, table cells, typos, negations, attachment names,
//! pairs; and numbers that are not patients (references, phones).

use super::is_valid_nhs;
use super::state::Gen;

pub(super) const SCRIPTS: [u32; 5] = [0xFF10, 0x0660, 0x06F0, 0x0966, 0x09E6];

pub(super) const NHS_PREFIX: &[&str] = &[
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

pub(super) const RARE_SEPS: &[&str] = &[
    "  ", "\u{200B}", "\u{202F}", "\t", "\u{2013}", ",", "\u{00A0}", " - ", "\n", "|", " | ", "_",
    "/", " .", "\u{2009}", "\u{2011}", "'",
];

pub(super) const CLINICAL: &[&str] = &[
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

/// Digits of any script the generator writes, as ASCII; other characters dropped.
pub(super) fn ascii_digits(s: &str) -> String {
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

pub(super) fn in_script(s: &str, base: u32) -> String {
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

impl Gen {
    pub(super) fn sep(&mut self) -> &'static str {
        match self.below(100) {
            0..50 => " ",
            50..63 => "-",
            63..71 => ".",
            _ => RARE_SEPS[self.below(RARE_SEPS.len())],
        }
    }

    /// Digits `d` cut into groups, with separators.
    pub(super) fn grouped(&mut self, d: &str) -> String {
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

    pub(super) fn random_groups(&mut self, n: usize) -> Vec<usize> {
        let mut v = Vec::new();
        let mut left = n;
        while left > 0 {
            let g = self.num(1, left.min(5) as u32) as usize;
            v.push(g);
            left -= g;
        }
        v
    }

    pub(super) fn maybe_script(&mut self, s: String) -> String {
        if self.chance(0.08) {
            let base = SCRIPTS[self.below(SCRIPTS.len())];
            in_script(&s, base)
        } else {
            s
        }
    }

    pub(super) fn decorate(&mut self, s: String, p: usize) -> String {
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

    pub(super) fn nhs_form(&mut self, d: &str, p: usize) -> String {
        let core = self.grouped(d);
        let core = self.maybe_script(core);
        let prefix = if self.chance(0.45) {
            self.pick(NHS_PREFIX)
        } else {
            ""
        };
        self.decorate(format!("{prefix}{core}"), p)
    }

    pub(super) fn url_form(&mut self, d: &str) -> String {
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

    pub(super) fn table_form(&mut self, d: &str, p: usize) -> String {
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

    pub(super) fn hosp_form(&mut self, h: &str, p: usize) -> String {
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
    pub(super) fn mention(&mut self, p: usize) -> String {
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
    pub(super) fn typo(&mut self, p: usize) -> String {
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

    pub(super) fn typo_form(&mut self, p: usize) -> String {
        let t = self.typo(p);
        let s = self.nhs_form(&t, p);
        match self.below(6) {
            0 => format!("{s} (typo?)"),
            1 => format!("sorry {s}"),
            _ => s,
        }
    }

    pub(super) fn negated(&mut self, p: usize) -> String {
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

    pub(super) fn attachment_mention(&mut self, p: usize) -> String {
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

    pub(super) fn pair(&mut self, a: usize, b: usize) -> String {
        let x = self.mention(a);
        let y = self.mention(b);
        let s = self.pick(&["/", " / ", "/ ", " /"]);
        format!("{x}{s}{y}")
    }

    /// The same patient's NHS and hospital numbers as an `A/B` pair.
    pub(super) fn own_pair(&mut self, p: usize) -> Option<String> {
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

    pub(super) fn ten_digit_ref(&mut self) -> String {
        loop {
            let d = format!("{}{}", self.num(1, 9), self.digits(9));
            if !is_valid_nhs(&d) {
                return d;
            }
        }
    }

    pub(super) fn phone(&mut self) -> String {
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
}
