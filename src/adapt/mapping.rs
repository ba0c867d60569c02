//! One mapping file: a platform's event JSON → chat event v1, declared in
//! TOML (see `mappings/formats/README.md` for the language).
//!
//! Loading checks everything that can be checked without data: paths,
//! field names, value forms, conditions, and that every rule maps the
//! required fields. Every error names the file, the line and the field.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path as FsPath, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;

use super::html;
use super::path::Path;

/// A mapping file that does not fit: where, which field, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError {
    pub file: PathBuf,
    pub line: usize,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.line)?;
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for MappingError {}

/// What a mapping makes of one platform event.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// A chat event v1 object, to be validated by [`crate::event::from_value`].
    Event(Value),
    /// Not a chat event (a state change, a system message, an unknown type):
    /// decided `ignored` with this reason.
    Ignored {
        id: Option<String>,
        reason: String,
        /// The event's type when it is a safe token (for logs and outcome events).
        event_type: Option<String>,
    },
}

/// Reason for events no rule matches.
pub const UNSUPPORTED: &str = "unsupported-event-type";

/// The shape of a v1 field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    List,
    /// One object with these string members.
    Object(&'static [(&'static str, Sub)]),
    /// A list of objects with these members.
    Objects(&'static [(&'static str, Sub)]),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sub {
    Str,
    Num,
}

const PATIENT: &[(&str, Sub)] = &[("system", Sub::Str), ("value", Sub::Str)];
const ATTACHMENT: &[(&str, Sub)] = &[
    ("content_type", Sub::Str),
    ("url", Sub::Str),
    ("sha256", Sub::Str),
    ("size", Sub::Num),
    ("name", Sub::Str),
];

/// The chat event v1 fields a mapping can produce (ARCHITECTURE §3).
const FIELDS: &[(&str, Kind)] = &[
    ("id", Kind::Str),
    ("platform", Kind::Str),
    ("type", Kind::Str),
    ("room", Kind::Str),
    ("thread", Kind::Str),
    ("reply_to", Kind::Str),
    ("target", Kind::Str),
    ("sender", Kind::Str),
    ("sender_name", Kind::Str),
    ("sender_role", Kind::Str),
    ("sent_at", Kind::Str),
    ("text", Kind::Str),
    ("key", Kind::Str),
    ("mentions", Kind::List),
    ("patient", Kind::Object(PATIENT)),
    ("attachments", Kind::Objects(ATTACHMENT)),
];

const REQUIRED: &[&str] = &["id", "room", "sender", "sent_at"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transform {
    EpochMillis,
    EpochSeconds,
    HtmlToText,
    StripReplyFallback,
    AdaptiveCardText,
}

impl Transform {
    const NAMES: &'static str =
        "epoch-millis, epoch-seconds, html-to-text, strip-reply-fallback, adaptive-card-text";

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "epoch-millis" => Self::EpochMillis,
            "epoch-seconds" => Self::EpochSeconds,
            "html-to-text" => Self::HtmlToText,
            "strip-reply-fallback" => Self::StripReplyFallback,
            "adaptive-card-text" => Self::AdaptiveCardText,
            _ => return None,
        })
    }

    fn apply(self, v: &Value) -> Result<Value, String> {
        match self {
            Self::EpochMillis | Self::EpochSeconds => {
                let n = match v {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.trim().parse::<i64>().ok(),
                    _ => None,
                }
                .ok_or("is not a whole number of epoch milliseconds/seconds")?;
                let t = if self == Self::EpochMillis {
                    chrono::DateTime::from_timestamp_millis(n)
                } else {
                    chrono::DateTime::from_timestamp(n, 0)
                }
                .ok_or("is outside the range of dates")?;
                Ok(Value::String(
                    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                ))
            }
            Self::HtmlToText => match v {
                Value::String(s) => html::to_text(s).map(Value::String),
                _ => Err("is not a string of HTML".into()),
            },
            Self::StripReplyFallback => match v {
                Value::String(s) => Ok(Value::String(strip_reply_fallback(s).to_owned())),
                _ => Err("is not a string".into()),
            },
            Self::AdaptiveCardText => {
                let card = match v {
                    // Graph gives the card as a JSON string.
                    Value::String(s) => serde_json::from_str::<Value>(s)
                        .map_err(|_| "is not an Adaptive Card (not JSON)".to_owned())?,
                    Value::Object(_) => v.clone(),
                    _ => return Err("is not an Adaptive Card".into()),
                };
                let mut lines = Vec::new();
                card_text(&card, &mut lines, 0);
                Ok(Value::String(lines.join("\n")))
            }
        }
    }
}

/// The text an Adaptive Card shows, in document order: `text` of TextBlocks
/// and TextRuns, `title: value` of FactSet facts, `title` of actions and
/// `label`/`placeholder` of inputs are not content and are left out. Nesting
/// is bounded (the parser already bounds depth; this is a second guard).
fn card_text(v: &Value, out: &mut Vec<String>, depth: usize) {
    if depth > 64 {
        return;
    }
    match v {
        Value::Object(o) => {
            if let Some(Value::String(t)) = o.get("text")
                && !t.trim().is_empty()
            {
                out.push(t.trim().to_owned());
            }
            if let (Some(Value::String(t)), Some(Value::String(val))) =
                (o.get("title"), o.get("value"))
            {
                out.push(format!("{}: {}", t.trim(), val.trim()));
            }
            for (k, x) in o {
                if k != "actions" && (x.is_object() || x.is_array()) {
                    card_text(x, out, depth + 1);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| card_text(x, out, depth + 1)),
        _ => {}
    }
}

/// Matrix reply fallback: the leading `> <@sender> …` quote block and the
/// blank line after it are the replied-to message, not this one
/// (client-server API, "Fallbacks for rich replies"), so a number quoted from
/// another message does not identify a patient in the reply. Only that shape
/// is removed: a body that merely starts with `> ` (a clinician quoting obs)
/// is kept whole, and so is a body that would be left with nothing of its own
/// (fail safe: what it quotes is still read). The mapping applies this only
/// to replies (`m.in_reply_to`).
fn strip_reply_fallback(s: &str) -> &str {
    if !s.starts_with("> <") {
        return s;
    }
    let mut rest = s;
    while rest.starts_with('>') {
        match rest.find('\n') {
            Some(end) => rest = &rest[end + 1..],
            None => return s,
        }
    }
    match rest.strip_prefix('\n') {
        Some(own) if !own.trim().is_empty() => own,
        _ => s,
    }
}

#[derive(Debug, Clone)]
enum Test {
    Equals(Value),
    NotEquals(Value),
    In(Vec<Value>),
    Exists(bool),
    /// The value differs from the value at another path (absent counts as
    /// different): a Matrix caption is a `body` that is not the `filename`.
    DiffersFrom(Path),
}

#[derive(Debug, Clone)]
struct Cond {
    path: Path,
    test: Test,
}

impl Cond {
    fn holds(&self, v: &Value) -> bool {
        let vals = self.path.eval(v);
        match &self.test {
            Test::Equals(x) => vals.contains(&x),
            Test::NotEquals(x) => !vals.contains(&x),
            Test::In(xs) => vals.iter().any(|v| xs.contains(v)),
            Test::Exists(b) => vals.is_empty() != *b,
            Test::DiffersFrom(other) => {
                let o = other.eval(v);
                !vals.is_empty() && vals != o
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Source {
    Path(Path),
    Const(Value),
    Template(Vec<Piece>),
    /// Sub-fields of an object (patient, attachments), relative to the
    /// element (or the event when there is no `each`).
    Fields(Vec<(&'static str, Sub, Vec<Spec>)>),
    /// Every value of every spec, as text, joined by the separator (a
    /// message's text from its body and its cards).
    Join(Vec<Spec>, String),
}

#[derive(Debug, Clone)]
enum Piece {
    Lit(String),
    Path(Path),
}

/// One way to get a field's value; a field is a list of them, tried in order.
#[derive(Debug, Clone)]
struct Spec {
    each: Option<Path>,
    when: Vec<Cond>,
    source: Source,
    transform: Option<Transform>,
}

#[derive(Debug, Clone)]
struct Field {
    name: &'static str,
    kind: Kind,
    line: usize,
    specs: Vec<Spec>,
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    line: usize,
    when: Vec<Cond>,
    ignore: Option<String>,
    fields: Vec<Field>,
}

/// A loaded, checked mapping file.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub name: String,
    pub file: PathBuf,
    pub description: Option<String>,
    platform: String,
    id: Option<Path>,
    event_type: Option<Path>,
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    format: HeaderDoc,
    #[serde(default)]
    fields: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    rule: Vec<Spanned<RuleDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderDoc {
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
struct RuleDoc {
    name: String,
    #[serde(default)]
    when: Option<Spanned<toml::Value>>,
    #[serde(default)]
    ignore: Option<String>,
    #[serde(default)]
    fields: BTreeMap<String, Spanned<toml::Value>>,
}

struct Ctx<'a> {
    file: &'a FsPath,
    src: &'a str,
}

impl Ctx<'_> {
    fn line(&self, at: usize) -> usize {
        self.src
            .get(..at)
            .map_or(1, |s| s.bytes().filter(|b| *b == b'\n').count() + 1)
    }

    fn err(&self, at: usize, field: Option<&str>, message: impl Into<String>) -> MappingError {
        MappingError {
            file: self.file.to_owned(),
            line: self.line(at),
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }
}

impl Mapping {
    /// Load and check a mapping file; the format's name is the file stem.
    pub fn load(file: &FsPath) -> Result<Self, MappingError> {
        let src = std::fs::read_to_string(file).map_err(|e| MappingError {
            file: file.to_owned(),
            line: 0,
            field: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(file, &src)
    }

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

    /// The platform that events of this format get unless a rule maps `platform`.
    pub fn platform(&self) -> &str {
        &self.platform
    }

    /// How many rules the file declares.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Map one platform event. The error names the rule, its line and the
    /// field, never any content of the event.
    pub fn apply(&self, v: &Value) -> Result<Mapped, String> {
        let Some(rule) = self
            .rules
            .iter()
            .find(|r| r.when.iter().all(|c| c.holds(v)))
        else {
            return Ok(Mapped::Ignored {
                id: self.source_id(v),
                reason: UNSUPPORTED.to_owned(),
                event_type: self.event_type(v),
            });
        };
        if let Some(reason) = &rule.ignore {
            return Ok(Mapped::Ignored {
                id: self.source_id(v),
                reason: reason.clone(),
                event_type: self.event_type(v),
            });
        }
        let at = |f: &Field, m: &str| {
            format!(
                "format `{}`, rule `{}` ({file}:{}), field `{}` ({file}:{}): {m}",
                self.name,
                rule.name,
                rule.line,
                f.name,
                f.line,
                file = file_name(&self.file),
            )
        };
        let mut out = Map::new();
        out.insert("platform".into(), Value::String(self.platform.clone()));
        for f in &rule.fields {
            match f.eval(v).map_err(|m| at(f, &m))? {
                Some(x) => {
                    out.insert(f.name.to_owned(), x);
                }
                None if REQUIRED.contains(&f.name) => {
                    return Err(at(f, &format!("nothing at {}", f.tried())));
                }
                None => {}
            }
        }
        Ok(Mapped::Event(Value::Object(out)))
    }

    fn source_id(&self, v: &Value) -> Option<String> {
        self.id
            .as_ref()
            .and_then(|p| p.first(v))
            .and_then(to_string)
            .filter(|s| !s.is_empty() && s.len() <= 256)
    }

    fn event_type(&self, v: &Value) -> Option<String> {
        self.event_type
            .as_ref()
            .and_then(|p| p.first(v))
            .and_then(|t| t.as_str())
            .filter(|t| {
                t.len() <= 100
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-#:".contains(c))
            })
            .map(str::to_owned)
    }
}

fn file_name(p: &FsPath) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn check_required(cx: &Ctx<'_>, at: usize, rule: &Rule) -> Result<(), MappingError> {
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

fn fields(
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

fn specs(v: &toml::Value, kind: Kind) -> Result<Vec<Spec>, String> {
    match v {
        toml::Value::Array(alts) => {
            if alts.is_empty() {
                return Err("is an empty list of alternatives".into());
            }
            alts.iter().map(|a| spec(a, kind)).collect()
        }
        other => Ok(vec![spec(other, kind)?]),
    }
}

fn spec(v: &toml::Value, kind: Kind) -> Result<Spec, String> {
    let plain = |source| Spec {
        each: None,
        when: Vec::new(),
        source,
        transform: None,
    };
    let t = match v {
        toml::Value::String(p) => {
            if matches!(kind, Kind::Object(_)) {
                return Err("is an object: write { fields = { ... } }".into());
            }
            let path = Path::parse(p)?;
            check_fan_out(&path, kind)?;
            return Ok(plain(Source::Path(path)));
        }
        toml::Value::Table(t) => t,
        toml::Value::Array(_) => return Err("alternatives cannot be nested".into()),
        _ => {
            return Err(
                "must be a path string or a table ({ path | const | template | fields, ... })"
                    .into(),
            );
        }
    };
    const KEYS: &[&str] = &[
        "path",
        "const",
        "template",
        "fields",
        "each",
        "when",
        "transform",
        "join",
        "separator",
    ];
    if let Some(k) = t.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(format!("unknown key `{k}` (one of {})", KEYS.join(", ")));
    }
    let each = t
        .get("each")
        .map(|e| {
            e.as_str()
                .ok_or("`each` must be a path string")
                .and_then(|s| Path::parse(s).map_err(|_| "`each` must be a path starting with `/`"))
        })
        .transpose()
        .map_err(str::to_owned)?;
    let when = match t.get("when") {
        None => Vec::new(),
        Some(w) => conditions_value(w)?,
    };
    let transform = t
        .get("transform")
        .map(|x| {
            x.as_str()
                .and_then(Transform::parse)
                .ok_or_else(|| format!("`transform` must be one of {}", Transform::NAMES))
        })
        .transpose()?;
    let sources: Vec<&str> = ["path", "const", "template", "fields", "join"]
        .into_iter()
        .filter(|k| t.contains_key(*k))
        .collect();
    let [which] = sources.as_slice() else {
        return Err("needs exactly one of `path`, `const`, `template`, `fields`, `join`".into());
    };
    if t.contains_key("separator") && *which != "join" {
        return Err("`separator` is only for `join`".into());
    }
    let source = match (*which, kind) {
        ("join", Kind::Str) => {
            let Some(toml::Value::Array(parts)) = t.get("join") else {
                return Err("`join` must be a list of specs".into());
            };
            if parts.is_empty() {
                return Err("`join` is an empty list".into());
            }
            let parts = parts
                .iter()
                .map(|p| spec(p, Kind::List).map_err(|m| format!("`join`: {m}")))
                .collect::<Result<Vec<_>, _>>()?;
            let sep = match t.get("separator") {
                None => "\n".to_owned(),
                Some(toml::Value::String(s)) => s.clone(),
                Some(_) => return Err("`separator` must be a string".into()),
            };
            Source::Join(parts, sep)
        }
        ("join", _) => return Err("`join` is for a text field (one string)".into()),
        ("fields", Kind::Object(members) | Kind::Objects(members)) => {
            let Some(toml::Value::Table(sub)) = t.get("fields") else {
                return Err("`fields` must be a table".into());
            };
            let mut out = Vec::new();
            for (k, v) in sub {
                let Some((name, sub_kind)) = members.iter().find(|(n, _)| n == k).copied() else {
                    let known: Vec<&str> = members.iter().map(|(n, _)| *n).collect();
                    return Err(format!("`{k}` is not one of {}", known.join(", ")));
                };
                let s = specs(v, Kind::Str).map_err(|m| format!("`{name}`: {m}"))?;
                out.push((name, sub_kind, s));
            }
            Source::Fields(out)
        }
        ("fields", _) => return Err("`fields` is only for patient and attachments".into()),
        (_, Kind::Object(_) | Kind::Objects(_)) => {
            return Err("is an object: write { fields = { ... } }".into());
        }
        ("path", _) => {
            let p = t
                .get("path")
                .and_then(|p| p.as_str())
                .ok_or("`path` must be a string")?;
            let path = Path::parse(p)?;
            check_fan_out(&path, kind)?;
            Source::Path(path)
        }
        ("template", _) => {
            let s = t
                .get("template")
                .and_then(|p| p.as_str())
                .ok_or("`template` must be a string")?;
            Source::Template(template(s)?)
        }
        _ => {
            let c = t.get("const").ok_or("`const` is missing")?;
            Source::Const(serde_json::to_value(c).map_err(|e| format!("`const`: {e}"))?)
        }
    };
    if each.is_some() && matches!(kind, Kind::Object(_)) {
        return Err("`each` is for lists; patient is one object".into());
    }
    Ok(Spec {
        each,
        when,
        source,
        transform,
    })
}

fn check_fan_out(p: &Path, kind: Kind) -> Result<(), String> {
    if p.fans_out() && kind != Kind::List {
        return Err(format!(
            "path `{}` has `*` but the field takes one value (use `each` to pick one element)",
            p.as_str()
        ));
    }
    Ok(())
}

fn template(s: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            out.push(Piece::Lit(rest[..open].to_owned()));
        }
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("template `{s}` has a `{{` without `}}`"))?;
        let path = Path::parse(&rest[open + 1..open + close])?;
        if path.fans_out() {
            return Err(format!(
                "template `{s}`: a placeholder takes one value, not `*`"
            ));
        }
        out.push(Piece::Path(path));
        rest = &rest[open + close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("template `{s}` has a `}}` without `{{`"));
    }
    if !rest.is_empty() {
        out.push(Piece::Lit(rest.to_owned()));
    }
    Ok(out)
}

fn conditions(
    cx: &Ctx<'_>,
    v: &Spanned<toml::Value>,
    field: &str,
) -> Result<Vec<Cond>, MappingError> {
    conditions_value(v.get_ref()).map_err(|m| cx.err(v.span().start, Some(field), m))
}

fn conditions_value(v: &toml::Value) -> Result<Vec<Cond>, String> {
    match v {
        toml::Value::Array(items) => items.iter().map(condition).collect(),
        other => Ok(vec![condition(other)?]),
    }
}

fn condition(v: &toml::Value) -> Result<Cond, String> {
    let toml::Value::Table(t) = v else {
        return Err(
            "a condition is a table { path = \"/...\", equals | not_equals | in | exists = ... }"
                .into(),
        );
    };
    let path = t
        .get("path")
        .and_then(|p| p.as_str())
        .ok_or("a condition needs `path`")?;
    let path = Path::parse(path)?;
    let json = |x: &toml::Value| serde_json::to_value(x).map_err(|e| e.to_string());
    let tests: Vec<&String> = t.keys().filter(|k| *k != "path").collect();
    let [op] = tests.as_slice() else {
        return Err(
            "a condition needs exactly one of `equals`, `not_equals`, `in`, `exists`, `differs_from`".into(),
        );
    };
    let arg = &t[op.as_str()];
    let test = match op.as_str() {
        "equals" => Test::Equals(json(arg)?),
        "not_equals" => Test::NotEquals(json(arg)?),
        "in" => match arg {
            toml::Value::Array(xs) => Test::In(xs.iter().map(json).collect::<Result<_, _>>()?),
            _ => return Err("`in` must be a list".into()),
        },
        "exists" => Test::Exists(arg.as_bool().ok_or("`exists` must be true or false")?),
        "differs_from" => Test::DiffersFrom(Path::parse(
            arg.as_str().ok_or("`differs_from` must be a path string")?,
        )?),
        other => {
            return Err(format!(
                "unknown test `{other}` (one of equals, not_equals, in, exists, differs_from)"
            ));
        }
    };
    Ok(Cond { path, test })
}

impl Field {
    /// Paths tried, for "nothing at ..." errors.
    fn tried(&self) -> String {
        let all: Vec<String> = self
            .specs
            .iter()
            .map(|s| match &s.source {
                Source::Path(p) => p.as_str().to_owned(),
                Source::Template(_) => "(template)".to_owned(),
                Source::Const(_) => "(constant)".to_owned(),
                Source::Fields(_) => "(fields)".to_owned(),
                Source::Join(..) => "(join)".to_owned(),
            })
            .collect();
        all.join(" or ")
    }

    fn eval(&self, v: &Value) -> Result<Option<Value>, String> {
        match self.kind {
            Kind::Str => first_scalar(&self.specs, v, Sub::Str),
            Kind::List => {
                for s in &self.specs {
                    let mut out = Vec::new();
                    for x in s.values(v)? {
                        match to_string(&x) {
                            Some(x) => out.push(Value::String(x)),
                            None => return Err("has a value that is not a string".into()),
                        }
                    }
                    if !out.is_empty() {
                        return Ok(Some(Value::Array(out)));
                    }
                }
                Ok(None)
            }
            Kind::Object(_) => {
                for s in &self.specs {
                    if let Some(o) = s.objects(v)?.into_iter().next() {
                        return Ok(Some(o));
                    }
                }
                Ok(None)
            }
            Kind::Objects(_) => {
                for s in &self.specs {
                    let objs = s.objects(v)?;
                    if !objs.is_empty() {
                        return Ok(Some(Value::Array(objs)));
                    }
                }
                Ok(None)
            }
        }
    }
}

fn first_scalar(specs: &[Spec], v: &Value, sub: Sub) -> Result<Option<Value>, String> {
    for s in specs {
        if let Some(x) = s.values(v)?.into_iter().next() {
            return match sub {
                Sub::Str => to_string(&x)
                    .map(|s| Some(Value::String(s)))
                    .ok_or_else(|| format!("is {}, not a string", json_kind(&x))),
                Sub::Num => match &x {
                    Value::Number(_) => Ok(Some(x)),
                    Value::String(s) => s
                        .trim()
                        .parse::<u64>()
                        .map(|n| Some(Value::from(n)))
                        .map_err(|_| "is not a whole number".to_owned()),
                    _ => Err(format!("is {}, not a number", json_kind(&x))),
                },
            };
        }
    }
    Ok(None)
}

impl Spec {
    /// The scopes this spec applies to: the `each` elements whose `when`
    /// holds, or the event itself when its `when` holds.
    fn scopes<'a>(&self, v: &'a Value) -> Vec<&'a Value> {
        let candidates = match &self.each {
            Some(each) => each.eval(v),
            None => vec![v],
        };
        candidates
            .into_iter()
            .filter(|s| self.when.iter().all(|c| c.holds(s)))
            .collect()
    }

    /// Values (after the transform), in document order.
    fn values(&self, v: &Value) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        for scope in self.scopes(v) {
            let raw: Vec<Value> = match &self.source {
                Source::Path(p) => p.eval(scope).into_iter().cloned().collect(),
                Source::Const(c) => vec![c.clone()],
                Source::Template(pieces) => template_value(pieces, scope).into_iter().collect(),
                Source::Fields(_) => Vec::new(),
                Source::Join(parts, sep) => {
                    let mut texts = Vec::new();
                    for p in parts {
                        texts.extend(
                            p.values(scope)?
                                .iter()
                                .filter_map(to_string)
                                .filter(|t| !t.trim().is_empty()),
                        );
                    }
                    match texts.is_empty() {
                        true => Vec::new(),
                        false => vec![Value::String(texts.join(sep))],
                    }
                }
            };
            for x in raw {
                let x = match self.transform {
                    Some(t) => t.apply(&x).map_err(|m| format!("value {m}"))?,
                    None => x,
                };
                out.push(x);
            }
        }
        Ok(out)
    }

    fn objects(&self, v: &Value) -> Result<Vec<Value>, String> {
        let Source::Fields(members) = &self.source else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for scope in self.scopes(v) {
            let mut obj = Map::new();
            for (name, sub, specs) in members {
                if let Some(x) =
                    first_scalar(specs, scope, *sub).map_err(|m| format!("`{name}` {m}"))?
                {
                    obj.insert((*name).to_owned(), x);
                }
            }
            if !obj.is_empty() {
                out.push(Value::Object(obj));
            }
        }
        Ok(out)
    }
}

fn template_value(pieces: &[Piece], scope: &Value) -> Option<Value> {
    let mut s = String::new();
    for p in pieces {
        match p {
            Piece::Lit(l) => s.push_str(l),
            Piece::Path(p) => s.push_str(&to_string(p.first(scope)?)?),
        }
    }
    Some(Value::String(s))
}

/// Strings as they are; numbers as their decimal text (numeric ids).
fn to_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::strip_reply_fallback;

    #[test]
    fn reply_fallback_quote_is_removed() {
        let body = "> <@alice:example.org> NHS 943 476 5919 bed 4\n> second line\n\nSeen, obs fine";
        assert_eq!(strip_reply_fallback(body), "Seen, obs fine");
        assert_eq!(strip_reply_fallback("no quote > here"), "no quote > here");
        // Not a fallback's shape: kept whole.
        let obs = "> BP 80/40, sats 85%\n\nneeds urgent review";
        assert_eq!(strip_reply_fallback(obs), obs);
        // Nothing of its own after the quote, or no blank line: kept whole.
        assert_eq!(
            strip_reply_fallback("> <@a:x> only a quote"),
            "> <@a:x> only a quote"
        );
        assert_eq!(strip_reply_fallback("> <@a:x> q\n\n  "), "> <@a:x> q\n\n  ");
        assert_eq!(
            strip_reply_fallback("> <@a:x> q\nno blank"),
            "> <@a:x> q\nno blank"
        );
    }
}
