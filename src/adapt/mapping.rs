//! One mapping file: a platform's event JSON → chat event v1, declared in
//! TOML (see `mappings/formats/README.md` for the language).
//!
//! Loading checks everything that can be checked without data: paths,
//! field names, value forms, conditions, and that every rule maps the
//! required fields. Every error names the file, the line and the field.

use std::fmt;
use std::path::{Path as FsPath, PathBuf};

use serde_json::{Map, Value};

use super::path::Path;

mod eval;
mod load;
mod spec;
mod transform;

use eval::to_string;
use transform::Transform;

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
