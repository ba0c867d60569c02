//! Patient identification (pure): NHS numbers in text, local identifiers from
//! `mappings/identifiers.toml`, the event's explicit `patient` tag — and,
//! fail safe, every identifier-like span that is none of these.
//!
//! The order in which the rules apply is documented in
//! `mappings/identifiers.toml`; the scan itself is in [`scan`].

pub mod nhs_number;
pub mod normalize;
mod rules;
mod scan;

use crate::event::{ChatEvent, EventKind};
use regex::Regex;
use serde::{Deserialize, Serialize};

pub use normalize::normalize;

/// FHIR identifier system of NHS numbers.
pub const NHS_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";

/// An identifier system as written by a platform or a person, made
/// comparable: surrounding spaces removed, and the NHS number system
/// recognised whatever its letter case, so that its numbers always get the
/// Modulus 11 check (a system that merely looks different never skips it).
pub fn canonical_system(system: &str) -> String {
    let s = system.trim();
    if s.eq_ignore_ascii_case(NHS_SYSTEM) {
        NHS_SYSTEM.to_owned()
    } else {
        s.to_owned()
    }
}

/// A patient identifier (FHIR Identifier system + value).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identifier {
    pub system: String,
    pub value: String,
}

impl Identifier {
    pub fn nhs(value: impl Into<String>) -> Self {
        Self {
            system: NHS_SYSTEM.to_owned(),
            value: value.into(),
        }
    }

    /// Masked form for logs (`943***5919`); never log the value itself.
    pub fn masked(&self) -> String {
        if self.system == NHS_SYSTEM {
            nhs_number::mask(&self.value)
        } else {
            let n = self.value.chars().count();
            let tail: String = self.value.chars().skip(n.saturating_sub(2)).collect();
            format!("***{tail}")
        }
    }
}

/// One local identifier pattern (e.g. hospital numbers).
#[derive(Debug, Clone)]
pub struct LocalPattern {
    pub name: String,
    pub system: String,
    pub regex: Regex,
}

/// When a local identifier is the same person's second identifier, written
/// right beside an NHS number: in brackets after it ("999 417 0090 (H number
/// H0658626)"), the NHS number in brackets after the local one, or as the next
/// labelled field of one record line ("NHS No: 999 805 8023  MRN: H0931906").
#[derive(Debug, Clone)]
pub struct Pairing {
    /// Between an NHS number and a local identifier in brackets after it.
    pub bracket: Regex,
    /// Between a local identifier and an NHS number in brackets after it.
    pub bracket_nhs: Regex,
    /// Between a labelled NHS number and the local identifier's label.
    pub field: Regex,
    /// An NHS label that ends right before the number.
    pub nhs_label: Regex,
    /// A closing bracket right after the bracketed identifier.
    pub close: Regex,
}

/// A pattern of numbers known not to be patients (phones, dates, doses...).
#[derive(Debug, Clone)]
pub struct NotPatient {
    pub name: String,
    pub regex: Regex,
    /// Applied before the identifier grammar (labelled references, list
    /// numbers), so that a reference number is never read as a patient.
    pub before: bool,
    /// The number may run on into the digit groups that follow the match
    /// ("ref 12 9994321536"): then nothing is set aside.
    pub extends: bool,
    /// Set aside only right beside a whole NHS number, before or after it
    /// ("999 049 4916 3 days", "39+2 3291716515"); elsewhere left to the
    /// later stages.
    pub beside_number: bool,
    /// The longest digit group a match may hold and still clear its digits.
    pub max_group: usize,
    /// The most digits a match may hold in all and still clear them (more is
    /// an identifier's worth: "obs 992/367/903").
    pub max_digits: usize,
}

/// Identifier keywords: digits after them are identifier-like whatever they are.
#[derive(Debug, Clone)]
pub struct Keyword {
    pub regex: Regex,
    pub min_digits: usize,
}

/// Identifiers found in one event.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// Distinct valid identifiers, in order of appearance (tag first).
    pub valid: Vec<Identifier>,
    /// Count of NHS-number-shaped numbers that fail the check digit.
    pub invalid: usize,
    /// Identifier-like spans that are not recognised identifiers: the digits
    /// of each (fail safe; see `mappings/identifiers.toml`). Never logged.
    pub unrecognised: Vec<String>,
    /// Valid identifiers written after a negation ("not 999 246 8130"): named
    /// by the event (decision line `identifiers`) but never its patient.
    pub negated: Vec<Identifier>,
    /// Bed-level locations named ("bed:12", "sr:3"; see [`location_key`]).
    pub locations: Vec<String>,
    /// Local identifiers written as a named NHS number's second identifier
    /// ([`Pairing`]): the same patient, reported but never a second one.
    pub paired: Vec<Identifier>,
}

impl std::fmt::Debug for Found {
    /// Identifier values and spans stay out of debug output (logs).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Found")
            .field(
                "valid",
                &self
                    .valid
                    .iter()
                    .map(Identifier::masked)
                    .collect::<Vec<_>>(),
            )
            .field("invalid", &self.invalid)
            .field("unrecognised", &self.unrecognised.len())
            .field("negated", &self.negated.len())
            .field("paired", &self.paired.len())
            .finish()
    }
}

/// The identifier recogniser, built once from configuration.
#[derive(Debug, Clone)]
pub struct Identify {
    pub local: Vec<LocalPattern>,
    /// Location word + its number (`bed 12`): capture group `n` is the number.
    pub locations: Regex,
    /// Negation right before an identifier (matched against the text before it).
    pub negation: Regex,
    pub not_patient: Vec<NotPatient>,
    pub keywords: Vec<Keyword>,
    pub min_digits: usize,
    pub min_group: usize,
    pub max_gap: usize,
    /// A digit run right after a letter is identifier-like from this many digits.
    pub min_code_digits: usize,
    /// Local identifiers that are an NHS number's second identifier.
    pub pairing: Option<Pairing>,
}

/// The identifier rules as shipped (`mappings/identifiers.toml`).
const DEFAULT_RULES: &str = include_str!("../../mappings/identifiers.toml");

impl Default for Identify {
    /// The shipped rules: NHS numbers, the example hospital-number pattern and
    /// the known-not-patient patterns.
    fn default() -> Self {
        Self::from_toml(DEFAULT_RULES).expect("mappings/identifiers.toml is valid")
    }
}

impl Identify {
    /// Find the identifiers of an event: its tag, its text (messages and
    /// edits) and the names of its attachments.
    pub fn find(&self, ev: &ChatEvent) -> Found {
        let mut found = Found::default();
        if let Some(tag) = &ev.patient {
            let value = tag.value.trim();
            let system = canonical_system(&tag.system);
            if system == NHS_SYSTEM {
                let digits: String = normalize(value)
                    .chars()
                    .filter(|c| !c.is_whitespace() && *c != '-')
                    .collect();
                if nhs_number::is_valid(&digits) {
                    push(&mut found.valid, Identifier::nhs(digits));
                } else {
                    found.invalid += 1;
                }
            } else {
                push(
                    &mut found.valid,
                    Identifier {
                        system,
                        value: value.to_owned(),
                    },
                );
            }
        }
        if matches!(ev.kind, EventKind::Message | EventKind::Edit) {
            self.find_in_text(ev.text.as_deref().unwrap_or(""), &mut found);
            for a in &ev.attachments {
                if let Some(name) = &a.name {
                    self.find_in_text(&file_name_words(name), &mut found);
                }
            }
        }
        found
    }

    /// Add what `text` names to `found`.
    pub fn find_in_text(&self, text: &str, found: &mut Found) {
        if text.is_empty() {
            return;
        }
        scan::scan(self, text, found);
    }
}

/// A file name as words: `_` separates fields and the extension goes
/// ("ECG_9434765919_1412.pdf" → "ECG; 9434765919; 1412").
fn file_name_words(name: &str) -> String {
    let stem = match name.rsplit_once('.') {
        Some((stem, ext))
            if (1..=5).contains(&ext.len())
                && ext.chars().all(char::is_alphanumeric)
                && ext.chars().any(char::is_alphabetic) =>
        {
            stem
        }
        _ => name,
    };
    stem.replace('_', "; ")
}

/// The key of a bed-level location ("Side room 3" → "sr:3"), or `None` for
/// a word that names a ward or unit rather than one patient's place.
pub fn location_key(word: &str, number: &str) -> Option<String> {
    let w: String = word
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    let class = match w.as_str() {
        "ward" | "theatre" | "theatres" | "th" | "hdu" | "itu" | "icu" | "majors" | "minors"
        | "room" | "rm" => return None,
        "sr" | "sideroom" | "siderm" => "sr",
        "cubicle" | "cube" | "cubie" | "cub" | "cubi" => "cubicle",
        "bed" | "beds" | "bedspace" | "space" => "bed",
        "cot" | "cots" => "cot",
        other => other,
    };
    let n = number.trim_start_matches('0');
    Some(format!("{class}:{n}"))
}

fn push(v: &mut Vec<Identifier>, id: Identifier) {
    if !v.contains(&id) {
        v.push(id);
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse_event;

    fn idf() -> Identify {
        Identify::from_toml(
            r#"[[local]]
name = "hospital-number"
system = "https://fhir.trust.example/Id/hospital-number"
pattern = '\bH\d{7}\b'
"#,
        )
        .unwrap()
    }

    fn ev(text: &str, tag: Option<(&str, &str)>) -> ChatEvent {
        let mut v = serde_json::json!({"id":"$1","room":"!r","sender":"@a","sent_at":"2026-11-20T08:00:00Z","text":text});
        if let Some((s, val)) = tag {
            v["patient"] = serde_json::json!({"system": s, "value": val});
        }
        parse_event(&v.to_string(), "chat").unwrap()
    }

    #[test]
    fn finds_nhs_local_and_tag_distinct() {
        let f = idf().find(&ev(
            "pt 943 476 5919 aka 9434765919, hosp H1234567",
            Some((NHS_SYSTEM, "9434765919")),
        ));
        assert_eq!(
            f.valid,
            vec![
                Identifier::nhs("9434765919"),
                Identifier {
                    system: "https://fhir.trust.example/Id/hospital-number".into(),
                    value: "H1234567".into()
                }
            ]
        );
        assert_eq!(f.invalid, 0);
    }

    #[test]
    fn a_tags_nhs_system_however_written_gets_the_check_digit() {
        for system in [
            " https://fhir.nhs.uk/Id/nhs-number",
            "https://fhir.nhs.uk/Id/nhs-number ",
            "HTTPS://FHIR.NHS.UK/ID/NHS-NUMBER",
        ] {
            let f = idf().find(&ev("obs fine", Some((system, "1234567890"))));
            assert!(f.valid.is_empty(), "{system:?}: {:?}", f.valid);
            assert_eq!(f.invalid, 1, "{system:?}");
            let f = idf().find(&ev("obs fine", Some((system, "999 765 4323"))));
            assert_eq!(f.valid, vec![Identifier::nhs("9997654323")], "{system:?}");
        }
        // Another system is its own, without surrounding spaces.
        let f = idf().find(&ev("obs fine", Some((" urn:trust:mrn ", "H1"))));
        assert_eq!(f.valid[0].system, "urn:trust:mrn");
    }

    #[test]
    fn invalid_check_digit_counted_not_identified() {
        let f = idf().find(&ev("pt 943 476 5918", None));
        assert!(f.valid.is_empty());
        assert_eq!(f.invalid, 1);
        let f = idf().find(&ev("tagged", Some((NHS_SYSTEM, "9434765918"))));
        assert_eq!((f.valid.len(), f.invalid), (0, 1));
    }

    #[test]
    fn local_pattern_is_word_bounded() {
        let f = idf().find(&ev("order XH12345678 and H12345678", None));
        assert!(f.valid.is_empty(), "{f:?}");
    }

    #[test]
    fn bad_pattern_file_names_the_entry() {
        let err =
            Identify::from_toml("[[local]]\nname='x'\nsystem='s'\npattern='('\n").unwrap_err();
        assert!(
            err.contains("local[0] (x)") && err.contains("pattern"),
            "{err}"
        );
        let err = Identify::from_toml("[[local]]\nname='x'\nsystem=''\npattern='a'\n").unwrap_err();
        assert!(err.contains("system"), "{err}");
    }

    #[test]
    fn masks_never_show_whole_value() {
        assert_eq!(Identifier::nhs("9434765919").masked(), "943***5919");
        assert_eq!(
            Identifier {
                system: "s".into(),
                value: "H1234567".into()
            }
            .masked(),
            "***67"
        );
    }
}

/// One test per written form of issue 15 and per known-not-patient pattern:
/// A = 9997654323 is the thread's patient, B = 9992468130 another.
#[cfg(test)]
mod partial_files {
    use super::*;

    /// Debug output (what a log would show) masks identifiers and counts
    /// spans; it never holds the numbers.
    #[test]
    fn found_debug_shows_masked_identifiers_and_counts_only() {
        let mut f = Found::default();
        Identify::default().find_in_text("pt 999 246 8130 and 999 246 813", &mut f);
        let shown = format!("{f:?}");
        assert!(
            !shown.contains("9992468130") && !shown.contains("999246813"),
            "{shown}"
        );
        assert!(
            shown.contains(&Identifier::nhs("9992468130").masked()),
            "{shown}"
        );
        assert!(shown.contains("unrecognised: 1"), "{shown}");
    }

    /// A pattern file takes every section it leaves out from the built-in
    /// file: one section alone, or all but one, identifies as the built-in
    /// file does.
    #[test]
    fn a_file_without_a_section_takes_it_from_the_built_in_file() {
        let full: toml::Table = toml::from_str(DEFAULT_RULES).unwrap();
        let sections = ["locations", "negation", "suspicion", "not_patient"];
        let probes = [
            "bed 12 999 246 8130",                   // locations
            "not 999 246 8130, wrong pt",            // negation
            "pt 12345 for review",                   // suspicion
            "ring 0113 496 0417 about 999 246 8130", // not_patient
        ];
        let builtin = Identify::default();
        let mut files = Vec::new();
        for s in sections {
            let mut only = toml::Table::new();
            only.insert(s.into(), full[s].clone());
            files.push((format!("only {s}"), only));
            let mut all_but = full.clone();
            all_but.remove(s);
            files.push((format!("all but {s}"), all_but));
        }
        for (name, t) in files {
            let idf = Identify::from_toml(&toml::to_string(&t).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            for p in probes {
                let (mut a, mut b) = (Found::default(), Found::default());
                idf.find_in_text(p, &mut a);
                builtin.find_in_text(p, &mut b);
                assert_eq!(a, b, "{name}: {p:?}");
            }
        }
    }
}

#[cfg(test)]
mod class_tests {
    use super::*;
    use crate::event::parse_event;

    const B: &str = "9992468130";

    fn find(text: &str) -> Found {
        let v = serde_json::json!({"id":"$1","room":"!r","sender":"@a","sent_at":"2026-11-20T08:00:00Z","text":text});
        Identify::default().find(&parse_event(&v.to_string(), "chat").unwrap())
    }

    /// `text` names B, recognised.
    fn names_b(text: &str) {
        let f = find(text);
        assert_eq!(f.valid, vec![Identifier::nhs(B)], "{text:?}: {f:?}");
        assert!(f.unrecognised.is_empty(), "{text:?}: {f:?}");
    }

    /// `text` holds something identifier-like that is not recognised.
    fn suspicious(text: &str) {
        let f = find(text);
        assert!(f.valid.is_empty(), "{text:?}: {f:?}");
        assert!(!f.unrecognised.is_empty(), "{text:?}: no span");
    }

    /// Nothing identifier-like at all.
    fn clean(text: &str) {
        let f = find(text);
        assert_eq!(
            (f.valid.len(), f.invalid, f.unrecognised.len()),
            (0, 0, 0),
            "{text:?}: {f:?}"
        );
    }

    #[test]
    fn class1_after_hash() {
        names_b("NHS#999 246 8130");
        names_b("(NHS#9992468130)");
        names_b("nhs#9992468130");
    }

    #[test]
    fn a_count_or_a_gestation_beside_the_number_does_not_join_it() {
        names_b("999 246 8130 3 days post hemicolectomy");
        names_b("9992468130 - 1 unit transfused, post Hb 80");
        names_b("T1 9992468130 1.72kg, born 14:12");
        names_b("39+2 9992468130 IOL, ARM 06:00");
        names_b("bed 4 999 246 8130 29+2/40 now day 3");
        names_b("999.246.8130 — 1 pool ordered");
        // Only beside a whole number: a count that cuts a number, or a
        // number without a unit, leaves the digits identifier-like.
        suspicious("999 246 81 30 days");
        suspicious("9992468130 3 then");
        suspicious("99 9246 8130 3 days");
    }

    #[test]
    fn a_local_pattern_may_capture_the_value_in_one_group_only() {
        let file = |pattern: &str| {
            format!("[[local]]\nname = \"h\"\nsystem = \"urn:h\"\npattern = '{pattern}'\n")
        };
        let idf = Identify::from_toml(&file(r"\bMRN:? ?(H\d{7})\b")).unwrap();
        let mut f = Found::default();
        idf.find_in_text("MRN: H1234567", &mut f);
        assert_eq!(f.valid.first().map(|i| i.value.as_str()), Some("H1234567"));
        let e = Identify::from_toml(&file(r"\b(MRN) (H\d{7})\b")).unwrap_err();
        assert!(e.contains("at most one capture group"), "{e}");
    }

    #[test]
    fn suspicion_thresholds_must_each_be_at_least_one() {
        let full: toml::Table = toml::from_str(DEFAULT_RULES).unwrap();
        for (key, value) in [("min_digits", 0), ("min_group", 0), ("min_digits", 1)] {
            let mut t = full.clone();
            let s = t["suspicion"].as_table_mut().unwrap();
            s.insert(key.into(), toml::Value::Integer(value));
            let got = Identify::from_toml(&toml::to_string(&t).unwrap());
            if value == 0 {
                let e = got.unwrap_err();
                assert!(e.contains("at least 1"), "{key}: {e}");
            } else {
                assert!(got.is_ok(), "{key} = {value}");
            }
        }
    }

    #[test]
    fn beside_number_is_for_patterns_set_aside_before_the_grammar() {
        let e = Identify::from_toml(
            "[[not_patient]]\nname = \"x\"\nbeside_number = true\npattern = 'x'\n",
        )
        .unwrap_err();
        assert!(e.contains("beside_number"), "{e}");
    }

    #[test]
    fn class2_after_a_location_and_its_number() {
        names_b("bay 3 bed 22 9992468130");
        names_b("cubicle 11 999 246 8130");
        names_b("cot 4 999 246 8130 on CPAP");
        names_b("incubator 7 9992468130 - CRP 12 today");
        names_b("SR3 999.246.8130");
        names_b("Cub 14 999 2468130 for discharge");
        names_b("bed 999 246 8130"); // no bed number: the number is whole
    }

    #[test]
    fn a_row_pasted_with_tabs_names_the_number_in_its_own_cell() {
        // A spreadsheet or Teams table pasted as tab-separated cells: the
        // digits of the cells beside the number are other columns.
        names_b("1\tA. Kowalski\t999.246.8130\t72.5\npls check dry wts");
        names_b("Name\tDOB\tNHS\tBed\nErnest Vickers\t12/03/1938\t9992468130\t22");
        names_b("9992468130\t22");
        // A number that shares its cell with more digits is not whole.
        suspicious("1\tA. Kowalski\t999.246.8130 72\t5");
        suspicious("12\t9992468130 4");
    }

    #[test]
    fn class3_unicode_digits_spaces_and_dashes() {
        names_b("pt ９９９ ２４６ ８１３０");
        names_b("pt ٩٩٩٢٤٦٨١٣٠");
        names_b("pt 999\u{200b}246\u{200b}8130");
        names_b("pt 999\t246\t8130");
        names_b("999\t246\t8130");
        names_b("pt 999–246–8130");
        names_b("pt 999\u{202f}246\u{202f}8130");
        names_b("nhs=9992468130");
        names_b("https://epr.example/patient/9992468130");
        names_b("NHS 999 246\n8130");
        names_b("999 246 8130 80M, for theatre");
    }

    #[test]
    fn class3_other_forms_are_identifier_like() {
        suspicious("pt 999,246,8130");
        suspicious("(999) 246-8130");
        suspicious("999|246|8130");
        suspicious("| 999 | 246 | 8130 |");
        suspicious("999 246\n\n8130");
        suspicious("ORD9992468130");
        suspicious("NHS 12345"); // keyword followed by digits, any check digit
        suspicious("pt 999 246 813"); // a digit short
        suspicious("0412345 for theatre"); // a hospital number without its H
    }

    #[test]
    fn a_four_three_three_number_after_a_bleep_label_is_not_an_identifier() {
        suspicious("bleep # 8247 999 420 | 0135?");
        names_b("NHS No: 9992 468 130");
    }

    #[test]
    fn a_phone_pattern_never_takes_the_tail_of_a_time() {
        suspicious("at 05:08 366 645 742");
        clean("ring 07700 900123 at 05:08");
    }

    #[test]
    fn a_labelled_list_of_integers_with_an_identifiers_worth_of_digits_is_not_cleared() {
        suspicious("obs 992/367/903?");
        clean("U&E 131/5.9/12.3/145, obs 120/80");
        clean("seen 2026-11-24 14:30:00");
    }

    #[test]
    fn a_value_pattern_never_clears_an_identifier_sized_group() {
        suspicious("487561-3245\nHR 141");
    }

    #[test]
    fn file_name_fields_and_camera_stamps() {
        let f = |name: &str| {
            let v = serde_json::json!({"id":"$1","room":"!r","sender":"@a","sent_at":"2026-11-20T08:00:00Z",
                "text":"","attachments":[{"name": name}]});
            Identify::default().find(&parse_event(&v.to_string(), "chat").unwrap())
        };
        assert_eq!(f("ECG_9992468130_1412.jpg").valid, vec![Identifier::nhs(B)]);
        let stamp = f("IMG_20261124_091533.jpg");
        assert!(
            stamp.valid.is_empty() && stamp.unrecognised.is_empty(),
            "{stamp:?}"
        );
    }

    #[test]
    fn a_reference_code_is_in_capitals_a_word_is_not_a_code() {
        clean("ref PTS 8827761");
        names_b("get a urine sample for 999 246 8130 today");
    }

    #[test]
    fn an_attachment_name_without_an_extension_is_read_whole() {
        let v = serde_json::json!({"id":"$1","room":"!r","sender":"@a","sent_at":"2026-11-20T08:00:00Z",
            "text":"","attachments":[{"name":"999.246.8130"}]});
        let f = Identify::default().find(&parse_event(&v.to_string(), "chat").unwrap());
        assert_eq!(f.valid, vec![Identifier::nhs(B)]);
    }

    #[test]
    fn class3_slash_pair_and_swap_name_two_patients() {
        let f = find("9997654323/9992468130");
        assert_eq!(f.valid.len(), 2, "{f:?}");
        let f = find("bed 12 9997654323 swap with 9992468130");
        assert_eq!(f.valid.len(), 2, "{f:?}");
    }

    #[test]
    fn class3_negated_identifier_is_never_the_patient() {
        let f = find("not 999 246 8130, the other lady");
        assert!(f.valid.is_empty(), "{f:?}");
        assert_eq!(f.negated, vec![Identifier::nhs(B)]);
        assert_eq!(f.unrecognised, vec![B.to_owned()]);
    }

    #[test]
    fn class3_attachment_name_is_read() {
        let v = serde_json::json!({"id":"$1","room":"!r","sender":"@a","sent_at":"2026-11-20T08:00:00Z",
            "text":"ECG attached","attachments":[{"name":"ECG_9992468130.pdf"}]});
        let f = Identify::default().find(&parse_event(&v.to_string(), "chat").unwrap());
        assert_eq!(f.valid, vec![Identifier::nhs(B)]);
    }

    #[test]
    fn local_identifiers_ignore_case_and_a_space() {
        for t in ["h0412345", "H 0412345", "pt is H0412345"] {
            let f = find(t);
            assert_eq!(f.valid.len(), 1, "{t:?}");
            assert_eq!(f.valid[0].value, "H0412345");
        }
    }

    #[test]
    fn not_patient_phone_numbers() {
        clean("call 07700 900123 or 020 7946 0958");
        clean("ring +44 7700 900123, +44 (0)113 496 0417, 0113 496 0340");
        clean("(01632) 960 123, 07700 900 552, 01632960123");
        // Eleven digits starting 0 but not grouped as a phone number.
        suspicious("sorry 076 327 858 56 m");
    }

    #[test]
    fn not_patient_geo_uris() {
        clean("house with blue door (geo:53.4794,-2.2453)");
        clean("geo:51.50081234,-0.12472123,12.5;u=35 car park");
        // A number after the place is still read.
        names_b("geo:53.4794,-2.2453 999 246 8130");
    }

    #[test]
    fn not_patient_bleeps_and_extensions() {
        clean("bleep 2284, ext 45678, x4455");
    }

    #[test]
    fn not_patient_dates_and_times() {
        clean("seen 23/11/2026 14:30, next 2026-11-24, due 3rd Dec 2026, 0800-2000");
    }

    #[test]
    fn not_patient_doses_and_values_with_units() {
        clean("enoxaparin 40mg, 1000 ml, 125 ml/h, sats 94%, 37.8°C, 10000 units");
    }

    #[test]
    fn not_patient_labelled_lab_values_and_obs() {
        clean("Na 131 K 5.9 Ur 12.3 Cr 145 CRP 210 Hb 84 INR 3.4 BP 120/80 RR 22");
        clean("U&E 131/5.9/12.3/145");
    }

    #[test]
    fn not_patient_labelled_references_and_list_numbers() {
        clean("incident ref 2026114472 logged");
        clean("ref DH-2026-44120");
        clean("specimen 26B0451277");
        names_b("1. 999 246 8130 for CT\n2. bed 4 for discharge");
    }

    #[test]
    fn a_labelled_reference_that_is_a_valid_nhs_number_is_identifier_like() {
        suspicious("order ref 9992468130 lost");
        suspicious("log ref 12 9992468130");
    }

    #[test]
    fn pieces_of_a_longer_number_are_not_cleared_one_by_one() {
        // A date, a blood pressure and a date, glued by slashes: one number.
        suspicious("9/9/979/74/18/2?");
        // A reference set aside does not swallow what follows it.
        suspicious("Datix ref 7740371666 - 999 .212 .637");
        suspicious("Datix ref 5266698264. 999|246|8130");
        // But a date and a time side by side are cleared.
        clean("23/11/26 14:30");
        clean("seen 30/11/2026 14:05");
        clean("2026-11-24 14:30");
    }

    /// The identifiers `text` names, as (system is NHS, value).
    fn named(idf: &Identify, text: &str) -> Vec<String> {
        let v = serde_json::json!({"id":"$1","room":"!r","sender":"@a","sent_at":"2026-11-20T08:00:00Z","text":text});
        idf.find(&parse_event(&v.to_string(), "chat").unwrap())
            .valid
            .into_iter()
            .map(|i| i.value)
            .collect()
    }

    #[test]
    fn a_hospital_number_beside_an_nhs_number_as_its_second_identifier_names_one_patient() {
        let idf = Identify::default();
        for text in [
            "999 246 8130 (H number H0658626) discharged with a PICC",
            "9992468130 (H H0658626)",
            "NHS number: 999 246 8130  (MRN: H0658626) 19M",
            "pt 999 246 8130 [hosp no H0658626]",
            "NHS No: 999 246 8130\tMRN: H0658626\nLocation: ED",
            "NHS No:  999 246 8130  Hosp No: H0658626  Ward: AMU1",
            "nhs 9992468130 | hospital number | H0658626",
            "H0658626 (NHS 999 246 8130) for CT",
            "H0658626 (9992468130)",
        ] {
            assert_eq!(named(&idf, text), vec![B.to_owned()], "{text:?}");
            assert_eq!(
                find(text).paired,
                vec![Identifier {
                    system: "https://fhir.trust.example/Id/hospital-number".into(),
                    value: "H0658626".into()
                }],
                "{text:?}"
            );
        }
        for text in [
            // A word, a comma, a slash or a line break between them.
            "999 246 8130, H0658626",
            "999 246 8130 / H0658626",
            "999 246 8130 and H0658626",
            // Also with labels: two patients' lists are written the same way.
            "nhs: 999 246 8130, MRN H0658626",
            "MRN H0658626; nhs 999 246 8130",
            "H0658626/9992468130",
            "NHS 999 246 8130\nMRN: H0658626",
            "999 246 8130 (bed 4) H0658626",
            // Fields need the NHS number's own label; brackets must close.
            "999 246 8130 MRN: H0658626",
            "NHS No:\n999 246 8130 MRN: H0658626",
            "999 246 8130 (H0658626 and bed 3",
            "H0658626 NHS 999 246 8130",
            "H0658626 (NHS 999 246 8130 and more",
        ] {
            assert_eq!(
                named(&idf, text),
                vec![B.to_owned(), "H0658626".to_owned()],
                "{text:?}"
            );
            assert!(find(text).paired.is_empty(), "{text:?}");
        }
        // A negated NHS number pairs with nothing.
        let f = find("not 999 246 8130 (H H0658626)");
        assert_eq!(f.valid.len(), 1, "{f:?}");
        assert_eq!(f.valid[0].value, "H0658626");
        // Without the labels (or the section) nothing is paired.
        let mut t: toml::Table = toml::from_str(DEFAULT_RULES).unwrap();
        t.insert(
            "pairing".into(),
            toml::Value::Table(toml::Table::from_iter([(
                "words".to_owned(),
                toml::Value::Array(Vec::new()),
            )])),
        );
        let off = Identify::from_toml(&toml::to_string(&t).unwrap()).unwrap();
        assert_eq!(named(&off, "9992468130 (H0658626)").len(), 2);
        t.remove("pairing");
        let off = Identify::from_toml(&toml::to_string(&t).unwrap()).unwrap();
        assert_eq!(named(&off, "9992468130 (H0658626)").len(), 2);
    }

    #[test]
    fn pieces_of_a_number_split_by_spaces_are_not_cleared_by_several_patterns() {
        // A time stamp and a dose; a labelled obs value and a date: each a
        // plausible piece, together ten (or nine, one dropped) digits.
        suspicious("can you prescribe regular analgesia; 155901\n9743 - 7 units");
        suspicious("tab=obs 9974 10-4-59");
        // One pattern whose match passes the NHS check as one number.
        suspicious("9994-3654.52 HR 149");
        // The same shapes without an identifier's worth of digits.
        clean("obs 99 10-4-59");
        clean("155901\n9 - 7 units");
        clean("9994-3654.5 HR 149");
    }

    #[test]
    fn codes_after_a_letter_are_identifier_like_from_six_digits() {
        suspicious("H391 9058 for theatre");
        suspicious("H112-60-4-1");
        clean("NEWS2 7, HbA1c 48");
    }

    #[test]
    fn digits_after_an_identifier_keyword_are_never_cleared() {
        suspicious("MRN 20230115");
        suspicious("hosp no 14:30");
        clean("DOB 12/03/1948");
    }

    #[test]
    fn placeholders_are_not_identifier_like() {
        clean("sticker shows NHS 0000000000");
        clean("printed NHS 999 999 9999");
    }

    #[test]
    fn a_reference_that_runs_on_into_a_valid_number_is_identifier_like() {
        // Neither filed on nor cleared: "ref 999 246 8130" may be a patient.
        suspicious("ref 999 246 8130");
    }

    #[test]
    fn location_keys_are_bed_level() {
        let f = find("moved from SR3 to bed 12, ward 7");
        assert_eq!(f.locations, vec!["sr:3".to_owned(), "bed:12".to_owned()]);
        let f = find("from cots 04 to cot 5");
        assert_eq!(f.locations, vec!["cot:4".to_owned(), "cot:5".to_owned()]);
    }
}
