//! The shape of `mappings/identifiers.toml` as written, and its compilation
//! into an [`Identify`] (word lists into word-bounded regular expressions).

use regex::Regex;
use serde::Deserialize;

use super::{DEFAULT_RULES, Identify, Keyword, LocalPattern, NotPatient, Pairing};

/// The `mappings/identifiers.toml` file. A section left out takes the
/// built-in default (the file as shipped).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PatternFile {
    #[serde(default)]
    local: Vec<PatternEntry>,
    locations: Option<Words>,
    negation: Option<Words>,
    suspicion: Option<SuspicionEntry>,
    not_patient: Option<Vec<NotPatientEntry>>,
    /// Labels of a local identifier written as an NHS number's second
    /// identifier (absent: no pairing).
    pairing: Option<Words>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PatternEntry {
    name: String,
    system: String,
    /// Regular expression; capture group 1 (or the whole match) is the value.
    pattern: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Words {
    words: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SuspicionEntry {
    min_digits: usize,
    min_group: usize,
    max_gap: usize,
    #[serde(default)]
    min_code_digits: Option<usize>,
    #[serde(default)]
    keyword: Vec<KeywordEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KeywordEntry {
    words: Vec<String>,
    min_digits: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NotPatientEntry {
    name: String,
    pattern: String,
    /// `before` (set aside before the identifier grammar) or `after` (default).
    #[serde(default)]
    stage: Option<String>,
    /// The number may run on into following digit groups (references).
    #[serde(default)]
    extends: bool,
    /// Set aside only right beside a whole NHS number (`stage = "before"`).
    #[serde(default)]
    beside_number: bool,
    /// Longest digit group a match may hold and still clear (default 5).
    #[serde(default)]
    max_group: Option<usize>,
    /// Most digits a match may hold in all and still clear (default 8).
    #[serde(default)]
    max_digits: Option<usize>,
}

/// `words` as one alternation, longest first, a space matching any spaces.
pub(super) fn alternation(words: &[String]) -> String {
    let mut w: Vec<&str> = words
        .iter()
        .map(|w| w.trim())
        .filter(|w| !w.is_empty())
        .collect();
    w.sort_by_key(|w| std::cmp::Reverse(w.len()));
    w.iter()
        .map(|w| regex::escape(w).replace(' ', r"\s+"))
        .collect::<Vec<_>>()
        .join("|")
}

/// A regex that never matches (an empty word list).
pub(super) const NEVER: &str = r"[^\s\S]";

/// A regex built around the alternation of a word list (one that never
/// matches when the list is empty or absent).
pub(super) fn word_regex(
    what: &str,
    words: Option<Words>,
    pattern: impl Fn(&str) -> String,
) -> Result<Regex, String> {
    let alt = alternation(&words.map(|w| w.words).unwrap_or_default());
    compile(
        what,
        &if alt.is_empty() {
            NEVER.to_owned()
        } else {
            pattern(&alt)
        },
    )
}

pub(super) fn compile(what: &str, pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|err| format!("{what}: not a valid regex: {err}"))
}

impl Identify {
    /// Parse a pattern file's text. Errors name the entry and problem.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let file: PatternFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut builtin = if file.locations.is_some()
            && file.negation.is_some()
            && file.suspicion.is_some()
            && file.not_patient.is_some()
        {
            PatternFile::default()
        } else {
            toml::from_str(DEFAULT_RULES).map_err(|e| format!("built-in rules: {e}"))?
        };
        let locations = file.locations.or(builtin.locations.take());
        let negation = file.negation.or(builtin.negation.take());
        let suspicion = file
            .suspicion
            .or(builtin.suspicion.take())
            .ok_or("`suspicion` is missing")?;
        let not_patient_entries = file.not_patient.or(builtin.not_patient.take());
        let pairing = match file.pairing.or(builtin.pairing.take()) {
            Some(w) if !w.words.is_empty() => {
                let labels = alternation(&w.words);
                let nhs = r"nhs(?:\s*(?:no|number|num))?\.?";
                let re = |what: &str, p: String| compile(&format!("pairing ({what})"), &p);
                Some(Pairing {
                    bracket: re(
                        "bracket",
                        format!(r"(?i)^[ \t]*[(\[][ \t]*(?:(?:{labels})[ \t]*[:#.]?[ \t]*)?$"),
                    )?,
                    bracket_nhs: re(
                        "bracket",
                        format!(r"(?i)^[ \t]*[(\[][ \t]*(?:{nhs}[ \t]*[:#]?[ \t]*)?$"),
                    )?,
                    field: re("field", format!(r"(?i)^[ \t|]*(?:{labels})[ \t|:#.]*$"))?,
                    nhs_label: re("label", format!(r"(?i)\b{nhs}[ \t]*[:#]?[ \t]*$"))?,
                    close: re("close", r"^[ \t]*[)\]]".to_owned())?,
                })
            }
            _ => None,
        };

        let mut local = Vec::new();
        for (i, e) in file.local.into_iter().enumerate() {
            if e.system.trim().is_empty() {
                return Err(format!("local[{i}] ({}): `system` is empty", e.name));
            }
            let regex = Regex::new(&e.pattern).map_err(|err| {
                format!(
                    "local[{i}] ({}): `pattern` is not a valid regex: {err}",
                    e.name
                )
            })?;
            if regex.captures_len() > 2 {
                return Err(format!(
                    "local[{i}] ({}): `pattern` may have at most one capture group",
                    e.name
                ));
            }
            local.push(LocalPattern {
                name: e.name,
                system: e.system,
                regex,
            });
        }

        let locations = word_regex("locations", locations, |loc| {
            format!(
                r"(?i)\b(?P<w>{loc})\s*(?:no\.?\s*|number\s*|#\s*|:\s*)?(?P<n>\d{{1,3}})[a-z]?\b"
            )
        })?;
        let negation = word_regex("negation", negation, |neg| {
            format!(
                r"(?i)(?:^|[^\w])(?:{neg})[\s:,]*(?:(?:the|this|that|nhs|no\.?|number|num|pt|patient|#|:|=)[\s:,]*)*$"
            )
        })?;
        let mut not_patient = Vec::new();
        for (i, e) in not_patient_entries
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let what = format!("not_patient[{i}] ({})", e.name);
            let regex = compile(&what, &e.pattern)?;
            let before = match e.stage.as_deref() {
                None | Some("after") => false,
                Some("before") => true,
                Some(other) => {
                    return Err(format!(
                        "{what}: `stage` must be \"before\" or \"after\", not {other:?}"
                    ));
                }
            };
            if e.beside_number && !before {
                return Err(format!(
                    "{what}: `beside_number` applies to `stage = \"before\"` only"
                ));
            }
            not_patient.push(NotPatient {
                name: e.name,
                regex,
                before,
                extends: e.extends,
                beside_number: e.beside_number,
                max_group: e.max_group.unwrap_or(5),
                max_digits: e.max_digits.unwrap_or(8),
            });
        }
        let mut keywords = Vec::new();
        for (i, k) in suspicion.keyword.into_iter().enumerate() {
            let alt = alternation(&k.words);
            if alt.is_empty() {
                return Err(format!("suspicion.keyword[{i}]: `words` is empty"));
            }
            keywords.push(Keyword {
                regex: compile(
                    &format!("suspicion.keyword[{i}]"),
                    &format!(r"(?i)(?:^|[^\w])(?:{alt})"),
                )?,
                min_digits: k.min_digits.max(1),
            });
        }
        if suspicion.min_digits == 0 || suspicion.min_group == 0 {
            return Err("suspicion: `min_digits` and `min_group` must be at least 1".into());
        }
        Ok(Self {
            local,
            locations,
            negation,
            not_patient,
            keywords,
            min_digits: suspicion.min_digits,
            min_group: suspicion.min_group,
            max_gap: suspicion.max_gap,
            min_code_digits: suspicion.min_code_digits.unwrap_or(suspicion.min_digits),
            pairing,
        })
    }
}
