//! Loading a mapping file: TOML → checked rules, every error with file, line and field.

use std::collections::BTreeMap;
use std::path::Path as FsPath;

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use super::spec::{conditions_value, specs};
use super::{Cond, FIELDS, Field, Mapping, MappingError, REQUIRED, Rule, Source, Spec};
use crate::adapt::path::Path;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileDoc {
    format: HeaderDoc,
    #[serde(default)]
    fields: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    rule: Vec<Spanned<RuleDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HeaderDoc {
    platform: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    /// Where the platform's event id is (named in decision lines of ignored events).
    #[serde(default)]
    id: Option<Spanned<String>>,
    /// Where the platform's event type is (named in logs of ignored events).
    #[serde(default, rename = "type")]
    event_type: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleDoc {
    name: String,
    #[serde(default)]
    when: Option<Spanned<toml::Value>>,
    #[serde(default)]
    ignore: Option<String>,
    #[serde(default)]
    fields: BTreeMap<String, Spanned<toml::Value>>,
}

pub(super) struct Ctx<'a> {
    file: &'a FsPath,
    src: &'a str,
}

impl Ctx<'_> {
    pub(super) fn line(&self, at: usize) -> usize {
        self.src
            .get(..at)
            .map_or(1, |s| s.bytes().filter(|b| *b == b'\n').count() + 1)
    }

    pub(super) fn err(
        &self,
        at: usize,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> MappingError {
        MappingError {
            file: self.file.to_owned(),
            line: self.line(at),
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }
}

pub(super) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

pub(super) fn check_required(cx: &Ctx<'_>, at: usize, rule: &Rule) -> Result<(), MappingError> {
    let has = |n: &str| rule.fields.iter().any(|f| f.name == n);
    for req in REQUIRED {
        if !has(req) {
            return Err(cx.err(
                at,
                Some(req),
                format!(
                    "rule `{}` does not map required field `{req}` (add it to the rule's fields or to [fields])",
                    rule.name
                ),
            ));
        }
    }
    // With a constant type, the fields that type needs can be checked now.
    let kind =
        rule.fields
            .iter()
            .find(|f| f.name == "type")
            .and_then(|f| match f.specs.as_slice() {
                [
                    Spec {
                        source: Source::Const(Value::String(t)),
                        ..
                    },
                ] => Some(t.clone()),
                _ => None,
            });
    if let Some(t) = kind {
        if !["message", "edit", "redaction", "reaction"].contains(&t.as_str()) {
            return Err(cx.err(
                at,
                Some("type"),
                format!(
                    "rule `{}`: `{t}` is not one of message, edit, redaction, reaction",
                    rule.name
                ),
            ));
        }
        let needs: &[&str] = match t.as_str() {
            "edit" | "redaction" => &["target"],
            "reaction" => &["target", "key"],
            _ => &[],
        };
        for n in needs {
            if !has(n) {
                return Err(cx.err(
                    at,
                    Some(n),
                    format!("rule `{}` of type {t} does not map `{n}`", rule.name),
                ));
            }
        }
    }
    Ok(())
}

pub(super) fn fields(
    cx: &Ctx<'_>,
    doc: &BTreeMap<String, Spanned<toml::Value>>,
) -> Result<Vec<Field>, MappingError> {
    let mut out = Vec::with_capacity(doc.len());
    for (name, v) in doc {
        let at = v.span().start;
        let Some((name, kind)) = FIELDS.iter().find(|(n, _)| n == name).copied() else {
            let known: Vec<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
            return Err(cx.err(
                at,
                Some(name),
                format!("is not a chat event v1 field (one of {})", known.join(", ")),
            ));
        };
        let specs = specs(v.get_ref(), kind).map_err(|m| cx.err(at, Some(name), m))?;
        out.push(Field {
            name,
            kind,
            line: cx.line(at),
            specs,
        });
    }
    Ok(out)
}

pub(super) fn conditions(
    cx: &Ctx<'_>,
    v: &Spanned<toml::Value>,
    field: &str,
) -> Result<Vec<Cond>, MappingError> {
    conditions_value(v.get_ref()).map_err(|m| cx.err(v.span().start, Some(field), m))
}

impl Mapping {
    /// Check a mapping file's text (`file` names it in errors and gives the format name).
    pub fn parse(file: &FsPath, src: &str) -> Result<Self, MappingError> {
        let cx = Ctx { file, src };
        let doc: FileDoc = toml::from_str(src).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            // toml's message names the unknown or missing key; the span gives the line.
            cx.err(at, None, e.message().trim().to_owned())
        })?;
        let name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        if doc.format.platform.get_ref().trim().is_empty() {
            return Err(cx.err(
                doc.format.platform.span().start,
                Some("platform"),
                "is empty",
            ));
        }
        let header_path = |p: &Option<Spanned<String>>, field: &str| {
            p.as_ref()
                .map(|p| {
                    Path::parse(p.get_ref()).map_err(|m| cx.err(p.span().start, Some(field), m))
                })
                .transpose()
        };
        let id = header_path(&doc.format.id, "format.id")?;
        let event_type = header_path(&doc.format.event_type, "format.type")?;

        let common = fields(&cx, &doc.fields)?;
        if doc.rule.is_empty() {
            return Err(cx.err(
                src.len(),
                None,
                "no [[rule]]: a mapping needs at least one rule",
            ));
        }
        let mut rules = Vec::with_capacity(doc.rule.len());
        for r in &doc.rule {
            let at = r.span().start;
            let r = r.get_ref();
            let when = match &r.when {
                None => Vec::new(),
                Some(w) => conditions(&cx, w, "when")?,
            };
            let own = fields(&cx, &r.fields)?;
            if let Some(reason) = &r.ignore {
                if !is_token(reason) {
                    return Err(cx.err(
                        at,
                        Some("ignore"),
                        "must be a reason token of lowercase letters, digits and `-` (e.g. \"state-event\")",
                    ));
                }
                if !own.is_empty() {
                    return Err(cx.err(at, Some("fields"), "an `ignore` rule maps no fields"));
                }
            }
            // The rule's own fields replace common fields of the same name.
            let mut merged: Vec<Field> = common
                .iter()
                .filter(|c| !own.iter().any(|o| o.name == c.name))
                .cloned()
                .collect();
            merged.extend(own);
            let rule = Rule {
                name: r.name.clone(),
                line: cx.line(at),
                when,
                ignore: r.ignore.clone(),
                fields: merged,
            };
            if rule.ignore.is_none() {
                check_required(&cx, at, &rule)?;
            }
            rules.push(rule);
        }
        Ok(Self {
            name,
            file: file.to_owned(),
            description: doc.format.description,
            platform: doc.format.platform.into_inner(),
            id,
            event_type,
            rules,
        })
    }
}
