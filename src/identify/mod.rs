//! Patient identification (pure): NHS numbers in text, local identifiers from
//! `mappings/identifiers.toml`, and the event's explicit `patient` tag.

pub mod nhs_number;
pub mod thread;

use crate::event::{ChatEvent, EventKind};
use regex::Regex;
use serde::{Deserialize, Serialize};

/// FHIR identifier system of NHS numbers.
pub const NHS_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";

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

/// The `mappings/identifiers.toml` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatternFile {
    #[serde(default)]
    local: Vec<PatternEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatternEntry {
    name: String,
    system: String,
    /// Regular expression; capture group 1 (or the whole match) is the value.
    pattern: String,
}

/// Identifiers found in one event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// Distinct valid identifiers, in order of appearance (tag first).
    pub valid: Vec<Identifier>,
    /// Count of NHS-number-shaped numbers that fail the check digit.
    pub invalid: usize,
}

/// The identifier recogniser, built once from configuration.
#[derive(Debug, Clone, Default)]
pub struct Identify {
    pub local: Vec<LocalPattern>,
}

impl Identify {
    /// Parse a pattern file's text. Errors name the entry and problem.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let file: PatternFile = toml::from_str(text).map_err(|e| e.to_string())?;
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
        Ok(Self { local })
    }

    /// Find the identifiers of an event (its tag and its text).
    pub fn find(&self, ev: &ChatEvent) -> Found {
        let mut found = Found::default();
        if let Some(tag) = &ev.patient {
            let value = tag.value.trim();
            if tag.system == NHS_SYSTEM {
                let digits: String = value
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
                        system: tag.system.clone(),
                        value: value.to_owned(),
                    },
                );
            }
        }
        let text = match ev.kind {
            EventKind::Message | EventKind::Edit => ev.text.as_deref().unwrap_or(""),
            EventKind::Redaction | EventKind::Reaction => "",
        };
        self.find_in_text(text, &mut found);
        found
    }

    pub fn find_in_text(&self, text: &str, found: &mut Found) {
        if text.is_empty() {
            return;
        }
        for c in nhs_number::find_candidates(text) {
            if c.valid {
                push(&mut found.valid, Identifier::nhs(c.digits));
            } else {
                found.invalid += 1;
            }
        }
        for p in &self.local {
            for caps in p.regex.captures_iter(text) {
                let m = caps.get(1).or_else(|| caps.get(0));
                if let Some(m) = m {
                    push(
                        &mut found.valid,
                        Identifier {
                            system: p.system.clone(),
                            value: m.as_str().to_owned(),
                        },
                    );
                }
            }
        }
    }
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
