//! adapt: a chat platform's own event format → chat event v1 (ARCHITECTURE §1).
//!
//! Formats are declared by mapping files, one per format, in a directory
//! (`mappings/formats/` by default): `matrix.toml` is the format `matrix`.
//! A new platform is a new file, not a code change. `v1` is chat event v1
//! itself and needs no file.

pub mod html;
pub mod mapping;
pub mod path;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub use mapping::{Mapped, Mapping, MappingError};

use crate::event::{self, ChatEvent};

/// The built-in format: chat event v1 as it is.
pub const V1: &str = "v1";

/// The formats do not fit the configuration (a mapping file that does not
/// load, or a `format` setting no file declares): a configuration error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub String);

/// The formats a bridge accepts: `v1` and every mapping file of its directory.
#[derive(Debug, Clone, Default)]
pub struct Formats {
    mappings: BTreeMap<String, Arc<Mapping>>,
}

/// One format, ready to adapt bodies.
#[derive(Debug, Clone, Copy)]
pub enum Format<'a> {
    V1,
    Mapped(&'a Mapping),
}

/// What one body becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Adapted {
    Event(Box<ChatEvent>),
    /// Not a chat event: decided `ignored` with a reason, not rejected.
    Ignored {
        id: Option<String>,
        platform: String,
        reason: String,
        event_type: Option<String>,
    },
}

/// The formats built into the binary: the files of `mappings/formats` as
/// they were when it was built, so that it runs from any folder. A file of
/// the same name in the `formats` directory replaces one.
pub const BUILT_IN: &[(&str, &str)] = &[
    (
        "matrix.toml",
        include_str!("../../mappings/formats/matrix.toml"),
    ),
    (
        "teams.toml",
        include_str!("../../mappings/formats/teams.toml"),
    ),
];

impl Formats {
    /// The built-in formats, then every `*.toml` in `dir` (sorted by name).
    /// A missing directory adds nothing; any file that does not fit fails
    /// the whole load.
    pub fn load(dir: Option<&Path>) -> Result<Self, MappingError> {
        let (out, mut errors) = Self::load_all(dir);
        match errors.is_empty() {
            true => Ok(out),
            false => Err(errors.swap_remove(0)),
        }
    }

    /// The built-in formats and every `*.toml` in `dir`: the files that fit,
    /// and an error for each that does not (for `check`, which reports them
    /// all).
    pub fn load_all(dir: Option<&Path>) -> (Self, Vec<MappingError>) {
        let mut out = Self::default();
        let mut errors = Vec::new();
        for (name, src) in BUILT_IN {
            let file = Path::new("built-in:mappings/formats").join(name);
            match Mapping::parse(&file, src) {
                Ok(m) => {
                    out.mappings.insert(m.name.clone(), Arc::new(m));
                }
                Err(e) => errors.push(e),
            }
        }
        let Some(dir) = dir else {
            return (out, errors);
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (out, errors),
            Err(e) => {
                errors.push(MappingError {
                    file: dir.to_owned(),
                    line: 0,
                    field: None,
                    message: format!("cannot read the mappings directory: {e}"),
                });
                return (out, errors);
            }
        };
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for f in files {
            match Mapping::load(&f) {
                Ok(m) if m.name == V1 => errors.push(MappingError {
                    file: f,
                    line: 1,
                    field: None,
                    message: "`v1` is the built-in chat event v1 format; name the file otherwise"
                        .into(),
                }),
                Ok(m) => {
                    out.mappings.insert(m.name.clone(), Arc::new(m));
                }
                Err(e) => errors.push(e),
            }
        }
        (out, errors)
    }

    /// The formats of `dir`, where `default` must be one of them.
    pub fn for_config(dir: Option<&Path>, default: &str) -> Result<Self, FormatError> {
        let f = Self::load(dir).map_err(|e| FormatError(format!("setting `formats`: {e}")))?;
        if f.get(default).is_none() {
            return Err(FormatError(format!(
                "setting `format`: `{default}` is not a known format (known: {}; a format is built in or a mapping file FORMAT.toml in the `formats` directory{})",
                f.names().join(", "),
                dir.map(|d| format!(" {}", d.display())).unwrap_or_default()
            )));
        }
        Ok(f)
    }

    /// `v1` and the mapped formats, sorted.
    pub fn names(&self) -> Vec<&str> {
        std::iter::once(V1)
            .chain(self.mappings.keys().map(String::as_str))
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<Format<'_>> {
        if name == V1 {
            return Some(Format::V1);
        }
        self.mappings.get(name).map(|m| Format::Mapped(m))
    }

    /// The mapped formats (for `check`).
    pub fn mappings(&self) -> impl Iterator<Item = &Mapping> {
        self.mappings.values().map(|m| &**m)
    }
}

/// The directory of format mapping files that `dir` names: `dir/formats`
/// when it has one (`--mappings mappings`), else `dir` itself.
pub fn formats_dir(dir: &Path) -> std::path::PathBuf {
    let sub = dir.join("formats");
    if sub.is_dir() { sub } else { dir.to_owned() }
}

/// Adapt one body. The error is a reject reason: it names the format, rule,
/// line and field, never content.
pub fn adapt(format: Format<'_>, body: &str, default_platform: &str) -> Result<Adapted, String> {
    match format {
        Format::V1 => event::parse_event(body, default_platform)
            .map(|e| Adapted::Event(Box::new(e)))
            .map_err(|e| e.to_string()),
        Format::Mapped(m) => {
            let v = event::parse_json(body).map_err(|e| e.to_string())?;
            if !v.is_object() {
                return Err(event::EventError::NotObject.to_string());
            }
            match m.apply(&v)? {
                Mapped::Event(v1) => event::from_value(v1, m.platform())
                    .map(|e| Adapted::Event(Box::new(e)))
                    .map_err(|e| format!("format `{}`: mapped event: {e}", m.name)),
                Mapped::Ignored {
                    id,
                    reason,
                    event_type,
                } => Ok(Adapted::Ignored {
                    id,
                    platform: m.platform().to_owned(),
                    reason,
                    event_type,
                }),
            }
        }
    }
}
