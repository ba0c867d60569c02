//! Chat event v1 (ARCHITECTURE §3) and its parsing.
//!
//! Parsing never panics: every malformed input gives an [`EventError`] whose
//! message names the field and what was wrong, without echoing message text or
//! identifier values (the error is logged and written to the reject report).

use chrono::{DateTime, Datelike, FixedOffset, Timelike};
use serde::{Deserialize, Serialize};

/// The kind of chat event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Message,
    Edit,
    Redaction,
    Reaction,
}

/// An explicit patient tag set by the chat platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PatientTag {
    pub system: String,
    pub value: String,
}

/// An attachment reference (the bridge never fetches the content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Attachment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A validated chat event v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatEvent {
    pub id: String,
    pub platform: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub room: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub sender: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_role: Option<String>,
    pub sent_at: DateTime<FixedOffset>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<PatientTag>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

impl ChatEvent {
    /// The thread root id: `thread`, or the event itself when absent.
    pub fn thread_root(&self) -> &str {
        self.thread.as_deref().unwrap_or(&self.id)
    }

    /// The key that identifies this event's thread across rooms and platforms.
    pub fn thread_key(&self) -> String {
        thread_key(&self.platform, &self.room, self.thread_root())
    }

    /// The idempotency key of the event: platform + id.
    pub fn event_key(&self) -> String {
        event_key(&self.platform, &self.id)
    }
}

/// `platform` + `room` + thread root, joined with a separator that cannot
/// occur ambiguously (length-prefixed).
pub fn thread_key(platform: &str, room: &str, root: &str) -> String {
    format!(
        "{}:{}|{}:{}|{}",
        platform.len(),
        platform,
        room.len(),
        room,
        root
    )
}

/// `platform` + `id`, length-prefixed.
pub fn event_key(platform: &str, id: &str) -> String {
    format!("{}:{}|{}", platform.len(), platform, id)
}

/// Why an input line is not a valid chat event v1. The message never contains
/// message text or identifier values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("not a JSON object")]
    NotObject,
    #[error("missing required field `{0}`")]
    Missing(&'static str),
    #[error("field `{field}` {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
}

/// Largest accepted event, in bytes of JSON (bounded memory per event).
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// Parse one chat event v1 from JSON. `default_platform` fills a missing `platform`.
pub fn parse_event(input: &str, default_platform: &str) -> Result<ChatEvent, EventError> {
    from_value(parse_json(input)?, default_platform)
}

/// Parse an event body of any format as JSON, within [`MAX_EVENT_BYTES`].
pub fn parse_json(input: &str) -> Result<serde_json::Value, EventError> {
    if input.len() > MAX_EVENT_BYTES {
        return Err(EventError::Invalid {
            field: "(event)",
            problem: format!("is larger than {MAX_EVENT_BYTES} bytes"),
        });
    }
    serde_json::from_str(input).map_err(|e| EventError::Json(describe_json_error(&e)))
}

fn describe_json_error(e: &serde_json::Error) -> String {
    // serde_json's syntax errors name a category and position, never content.
    let kind = match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Eof => "unexpected end of input",
    };
    format!("{kind} at line {} column {}", e.line(), e.column())
}

/// Validate a parsed JSON value as chat event v1.
pub fn from_value(
    value: serde_json::Value,
    default_platform: &str,
) -> Result<ChatEvent, EventError> {
    let serde_json::Value::Object(mut obj) = value else {
        return Err(EventError::NotObject);
    };
    let mut take = |name: &'static str| obj.remove(name).filter(|v| !v.is_null());

    let id = req_string(take("id"), "id")?;
    let platform =
        opt_string(take("platform"), "platform")?.unwrap_or_else(|| default_platform.to_owned());
    if platform.is_empty() {
        return Err(invalid("platform", "is empty"));
    }
    let kind = match opt_string(take("type"), "type")?.as_deref() {
        None | Some("message") => EventKind::Message,
        Some("edit") => EventKind::Edit,
        Some("redaction") => EventKind::Redaction,
        Some("reaction") => EventKind::Reaction,
        Some(_) => {
            return Err(invalid(
                "type",
                "is not one of message, edit, redaction, reaction",
            ));
        }
    };
    let room = req_string(take("room"), "room")?;
    let thread = opt_string(take("thread"), "thread")?;
    let reply_to = opt_string(take("reply_to"), "reply_to")?;
    let target = opt_string(take("target"), "target")?;
    let sender = req_string(take("sender"), "sender")?;
    let sender_name = opt_string(take("sender_name"), "sender_name")?;
    let sender_role = opt_string(take("sender_role"), "sender_role")?;
    let sent_raw = req_string(take("sent_at"), "sent_at")?;
    let sent_at = DateTime::parse_from_rfc3339(&sent_raw).map_err(|e| {
        invalid(
            "sent_at",
            &format!("is not an RFC 3339 date-time with offset ({e})"),
        )
    })?;
    let sent_at = recordable_time(sent_at)?;
    let text = opt_string(take("text"), "text")?;
    let key = opt_string(take("key"), "key")?;
    let mentions = match take("mentions") {
        None => Vec::new(),
        Some(v) => serde_json::from_value::<Vec<String>>(v)
            .map_err(|_| invalid("mentions", "is not an array of strings"))?,
    };
    let patient = match take("patient") {
        None => None,
        Some(v) => {
            let tag: PatientTag = serde_json::from_value(v).map_err(|_| {
                invalid(
                    "patient",
                    "is not an object with string `system` and `value`",
                )
            })?;
            if tag.system.trim().is_empty() || tag.value.trim().is_empty() {
                return Err(invalid("patient", "has an empty `system` or `value`"));
            }
            if tag.system.contains('\0') || tag.value.contains('\0') {
                return Err(invalid("patient", "contains a NUL character"));
            }
            // A search `system|value` splits at the first `|`: one in the
            // system would move the split (see record::search_escape).
            if tag.system.contains('|') {
                return Err(invalid("patient", "has a `|` in its `system`"));
            }
            Some(tag)
        }
    };
    let attachments = match take("attachments") {
        None => Vec::new(),
        Some(v) => serde_json::from_value::<Vec<Attachment>>(v).map_err(|e| {
            invalid(
                "attachments",
                &format!("is not a list of attachments ({})", describe_json_error(&e)),
            )
        })?,
    };

    match kind {
        EventKind::Edit | EventKind::Redaction | EventKind::Reaction if target.is_none() => {
            return Err(EventError::Missing("target"));
        }
        EventKind::Reaction if key.is_none() => return Err(EventError::Missing("key")),
        _ => {}
    }
    Ok(ChatEvent {
        id,
        platform,
        kind,
        room,
        thread,
        reply_to,
        target,
        sender,
        sender_name,
        sender_role,
        sent_at,
        text,
        key,
        mentions,
        patient,
        attachments,
    })
}

/// A time FHIR can record: its UTC year within 0001–9999 (FHIR `instant`), and
/// a leap second (`23:59:60`) folded into the last instant of the second before.
fn recordable_time(t: DateTime<FixedOffset>) -> Result<DateTime<FixedOffset>, EventError> {
    let year = t.with_timezone(&chrono::Utc).year();
    if !(1..=9999).contains(&year) {
        return Err(invalid(
            "sent_at",
            "is outside the years 0001-9999 (in UTC)",
        ));
    }
    if t.nanosecond() >= 1_000_000_000 {
        return t
            .with_nanosecond(999_999_999)
            .ok_or_else(|| invalid("sent_at", "is a leap second that cannot be recorded"));
    }
    Ok(t)
}

fn invalid(field: &'static str, problem: &str) -> EventError {
    EventError::Invalid {
        field,
        problem: problem.to_owned(),
    }
}

fn req_string(v: Option<serde_json::Value>, field: &'static str) -> Result<String, EventError> {
    match opt_string(v, field)? {
        Some(s) if !s.is_empty() => Ok(s),
        Some(_) => Err(invalid(field, "is empty")),
        None => Err(EventError::Missing(field)),
    }
}

fn opt_string(
    v: Option<serde_json::Value>,
    field: &'static str,
) -> Result<Option<String>, EventError> {
    match v {
        None => Ok(None),
        // No ledger or record can keep a NUL (PostgreSQL's text cannot):
        // rejected here with its reason, never a failure at commit that
        // would stop every later run at this event.
        Some(serde_json::Value::String(s)) if s.contains('\0') => {
            Err(invalid(field, "contains a NUL character"))
        }
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(invalid(
            field,
            &format!("must be a string, found {}", json_type(&other)),
        )),
    }
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str =
        r#"{"id":"$1","room":"!r","sender":"@a","sent_at":"2026-11-20T08:00:00Z","text":"hi"}"#;

    #[test]
    fn a_nul_character_in_any_field_is_malformed_and_named() {
        let base =
            r#"{"id":"$1","room":"!r","sender":"@a","sent_at":"2026-11-20T08:00:00Z","text":"hi"}"#;
        for (field, value) in [
            ("id", r#""$1\u0000x""#),
            ("room", r#""!r\u0000""#),
            ("sender", r#""\u0000""#),
            ("thread", r#""t\u0000""#),
            ("text", r#""a\u0000b""#),
            ("platform", r#""m\u0000""#),
        ] {
            let mut v: serde_json::Value = serde_json::from_str(base).unwrap();
            v[field] = serde_json::from_str(value).unwrap();
            let e = parse_event(&v.to_string(), "matrix").unwrap_err();
            assert_eq!(
                e,
                EventError::Invalid {
                    field,
                    problem: "contains a NUL character".into()
                },
                "{field}"
            );
        }
        let tag = r#"{"id":"$1","room":"!r","sender":"@a","sent_at":"2026-11-20T08:00:00Z","patient":{"system":"s","value":"1\u0000"}}"#;
        assert!(parse_event(tag, "matrix").is_err());
        let bar = r#"{"id":"$1","room":"!r","sender":"@a","sent_at":"2026-11-20T08:00:00Z","patient":{"system":"urn:s|x","value":"1"}}"#;
        assert_eq!(
            parse_event(bar, "matrix").unwrap_err(),
            EventError::Invalid {
                field: "patient",
                problem: "has a `|` in its `system`".into()
            }
        );
        // Other control characters are content, kept as written.
        let tab = r#"{"id":"$1\t","room":"!r","sender":"@a","sent_at":"2026-11-20T08:00:00Z"}"#;
        assert_eq!(parse_event(tab, "matrix").unwrap().id, "$1\t");
    }

    #[test]
    fn parses_minimal_event_with_defaults() {
        let e = parse_event(OK, "chat").unwrap();
        assert_eq!(e.platform, "chat");
        assert_eq!(e.kind, EventKind::Message);
        assert_eq!(e.thread_root(), "$1");
        assert_eq!(e.text.as_deref(), Some("hi"));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let s = r#"{"id":"$1","room":"!r","sender":"@a","sent_at":"2026-11-20T08:00:00+01:00","x":{"y":1}}"#;
        assert!(parse_event(s, "chat").is_ok());
    }

    #[test]
    fn precise_errors() {
        let cases: &[(&str, &str)] = &[
            ("not json", "not valid JSON"),
            ("[1,2]", "not a JSON object"),
            (
                r#"{"room":"!r","sender":"@a","sent_at":"2026-11-20T08:00:00Z"}"#,
                "missing required field `id`",
            ),
            (
                r#"{"id":"$1","sender":"@a","sent_at":"2026-11-20T08:00:00Z"}"#,
                "missing required field `room`",
            ),
            (
                r#"{"id":"$1","room":"!r","sent_at":"2026-11-20T08:00:00Z"}"#,
                "missing required field `sender`",
            ),
            (
                r#"{"id":"$1","room":"!r","sender":"@a"}"#,
                "missing required field `sent_at`",
            ),
            (
                r#"{"id":"$1","room":"!r","sender":"@a","sent_at":"yesterday"}"#,
                "field `sent_at` is not an RFC 3339",
            ),
            (
                r#"{"id":"$1","room":"!r","sender":"@a","sent_at":"2026-11-20T08:00:00"}"#,
                "field `sent_at` is not an RFC 3339",
            ),
            (
                r#"{"id":7,"room":"!r","sender":"@a","sent_at":"2026-11-20T08:00:00Z"}"#,
                "field `id` must be a string, found a number",
            ),
            (
                r#"{"id":"$1","type":"poll","room":"!r","sender":"@a","sent_at":"2026-11-20T08:00:00Z"}"#,
                "field `type` is not one of",
            ),
            (
                r#"{"id":"$1","type":"edit","room":"!r","sender":"@a","sent_at":"2026-11-20T08:00:00Z"}"#,
                "missing required field `target`",
            ),
            (
                r#"{"id":"$1","room":"!r","sender":"@a","sent_at":"2026-11-20T08:00:00Z","patient":{"system":"s"}}"#,
                "field `patient`",
            ),
            (
                r#"{"id":"$1","room":"!r","sender":"@a","sent_at":"2026-11-20T08:00:00Z","mentions":"@b"}"#,
                "field `mentions`",
            ),
        ];
        for (input, want) in cases {
            let err = parse_event(input, "chat").unwrap_err().to_string();
            assert!(err.contains(want), "{input}: got {err:?}, want {want:?}");
        }
    }

    #[test]
    fn errors_never_echo_content() {
        let s = r#"{"id":"$1","room":"!r","sender":"@a","sent_at":"9434765919 secret"}"#;
        let err = parse_event(s, "chat").unwrap_err().to_string();
        assert!(
            !err.contains("9434765919") && !err.contains("secret"),
            "{err}"
        );
        let s = r#"{"id":"$1","room":"!r","sender":"@a","sent_at":"2026-11-20T08:00:00Z","text":"9434765919 oops"#;
        let err = parse_event(s, "chat").unwrap_err().to_string();
        assert!(!err.contains("9434765919"), "{err}");
    }

    #[test]
    fn times_fhir_cannot_record_are_rejected_or_folded() {
        let at = |t: &str| parse_event(&OK.replace("2026-11-20T08:00:00Z", t), "chat");
        let err = at("9999-12-31T23:59:59-14:00").unwrap_err().to_string();
        assert!(
            err.contains("field `sent_at`") && err.contains("0001-9999"),
            "{err}"
        );
        assert!(at("0000-01-01T00:00:00Z").is_err());
        let leap = at("2016-12-31T23:59:60.5+01:00").unwrap();
        assert_eq!(
            leap.sent_at.to_rfc3339(),
            "2016-12-31T23:59:59.999999999+01:00"
        );
    }

    #[test]
    fn oversized_event_rejected() {
        let big = format!(
            r#"{{"id":"$1","room":"!r","sender":"@a","sent_at":"2026-11-20T08:00:00Z","text":"{}"}}"#,
            "a".repeat(MAX_EVENT_BYTES)
        );
        assert!(
            parse_event(&big, "chat")
                .unwrap_err()
                .to_string()
                .contains("larger than")
        );
    }

    #[test]
    fn keys_are_unambiguous() {
        assert_ne!(thread_key("a", "b|c", "d"), thread_key("a", "b", "c|d"));
        assert_ne!(event_key("a:b", "c"), event_key("a", "b:c"));
    }
}
