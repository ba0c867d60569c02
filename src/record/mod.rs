//! FHIR R4 resources for decided events (pure): Communication, Task and
//! Provenance in one transaction Bundle per filed decision. Built with fhir-sdk's R4B models,
//! which serialise to JSON an R4 server accepts for these resources.

pub mod bundle;
pub mod communication;
pub mod provenance;
pub mod task;

use chrono::{DateTime, SecondsFormat, Utc};
use fhir_sdk::r4b::types::{Identifier as FhirIdentifier, Reference};
use fhir_sdk::{DateTime as FhirDateTime, Instant};
use sha2::{Digest, Sha256};

use crate::identify::Identifier;

pub use bundle::bundle;

/// Identifier system of chat event identifiers on resources.
pub const URI_SYSTEM: &str = "urn:ietf:rfc:3986";

/// Facts from the shell that the pure record step needs.
#[derive(Debug, Clone)]
pub struct RecordCtx<'a> {
    /// When the decision was made (`Provenance.recorded`).
    pub now: DateTime<Utc>,
    /// Resolved `Patient/<id>` for the decision's patient, if a server resolved it;
    /// otherwise a conditional reference on the identifier is used.
    pub patient_ref: Option<&'a str>,
    /// The bridge's device name for Provenance agents.
    pub device: &'a str,
}

/// `urn:chat:<platform>:<id>`: the Communication identifier value of an event.
pub fn chat_urn(platform: &str, id: &str) -> String {
    format!("urn:chat:{platform}:{id}")
}

/// `identifier=system|value` search criterion. Each part is first escaped by
/// FHIR's search rules ([`search_escape`]: a `,` would mean OR, so that an
/// event id or a tag could match another record), then percent-encoded for a
/// query string (chat ids may contain `+`, `&`, `=`, `#`, spaces).
pub fn identifier_criterion(system: &str, value: &str) -> String {
    format!(
        "identifier={}|{}",
        query_escape(&search_escape(system)),
        query_escape(&search_escape(value))
    )
}

/// FHIR search escaping of a token's part (R4 §3.1.1.4.11 "Escaping Search
/// Parameters"): `\` and `,` get a backslash. A `|` is left as written: the
/// server splits system from value at the first `|` (ours), so a `|` in a
/// value is part of the value, and a system may hold none (the event and the
/// reviewer's `--patient` refuse one). Helios FHIR Server 0.2.7 reads `\,`
/// and `\\` but not `\|` (checked by `tests/fhir.rs`). `$` is escaped only in
/// composite parameters, which `identifier` is not (Matrix ids begin with it).
pub fn search_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Search criterion matching the Communication of a chat event.
pub fn communication_criterion(platform: &str, id: &str) -> String {
    identifier_criterion(URI_SYSTEM, &chat_urn(platform, id))
}

/// Conditional reference to the Communication of a chat event.
pub fn communication_ref(platform: &str, id: &str) -> String {
    format!("Communication?{}", communication_criterion(platform, id))
}

/// Conditional reference to a patient by identifier.
pub fn patient_ref(p: &Identifier) -> String {
    format!("Patient?{}", identifier_criterion(&p.system, &p.value))
}

/// Percent-encode everything but unreserved characters and the few URI
/// delimiters that are safe inside a query value (`:` `/` `$` `@` `!` `*` `'` `(` `)` `;`);
/// a `,` is encoded too, so that no server reads it as a list separator.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b':'
            | b'/'
            | b'$'
            | b'@'
            | b'!'
            | b'*'
            | b'\''
            | b'('
            | b')'
            | b';' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A deterministic FHIR id (≤ 64 chars) for a resource derived from an event key.
pub fn derived_id(prefix: &str, key: &str) -> String {
    let h = Sha256::digest(key.as_bytes());
    let hex: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{prefix}-{hex}")
}

/// Deterministic `urn:uuid:` for bundle-internal references.
pub fn urn_uuid(key: &str) -> String {
    format!(
        "urn:uuid:{}",
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, key.as_bytes())
    )
}

pub(crate) fn reference(r: impl Into<String>) -> Reference {
    Reference::builder()
        .reference(r.into())
        .build()
        .expect("reference has no required fields")
}

pub(crate) fn identifier(system: &str, value: &str) -> FhirIdentifier {
    FhirIdentifier::builder()
        .system(system.to_owned())
        .value(value.to_owned())
        .build()
        .expect("identifier has no required fields")
}

/// A logical reference to a person/device by identifier, with type and display.
pub(crate) fn logical_ref(
    kind: &str,
    system: &str,
    value: &str,
    display: Option<&str>,
) -> Reference {
    let mut r = Reference::builder()
        .r#type(kind.to_owned())
        .identifier(identifier(system, value))
        .build()
        .expect("reference has no required fields");
    if let Some(d) = display {
        r.display = Some(d.to_owned());
    }
    r
}

pub(crate) fn instant(t: DateTime<Utc>) -> Instant {
    let s = t.to_rfc3339_opts(SecondsFormat::Millis, true);
    serde_json::from_value(serde_json::Value::String(s)).expect(
        "event parsing admits only times FHIR can record (years 0001-9999 UTC, no leap second)",
    )
}

pub(crate) fn date_time(t: DateTime<chrono::FixedOffset>) -> FhirDateTime {
    FhirDateTime::DateTime(instant(t.with_timezone(&Utc)))
}

/// Identifier system for chat user ids of a platform.
pub(crate) fn user_system(platform: &str) -> String {
    format!("urn:chat:{platform}:user")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any `sent_at` that event parsing admits builds a Bundle without panicking.
        #[test]
        fn any_admitted_time_records(y in 0u32..=9999, mo in 1u32..=12, d in 1u32..=28, h in 0u32..=23, mi in 0u32..=59,
                                     sec in 0u32..=60, frac in 0u32..1000, oh in 0u32..=23, om in 0u32..=59, neg: bool) {
            let t = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}.{frac:03}{}{oh:02}:{om:02}", if neg { '-' } else { '+' });
            let line = serde_json::json!({"id": "$1", "room": "!r", "sender": "@a", "sent_at": t, "text": "pt 943 476 5919"});
            if let Ok(ev) = crate::event::parse_event(&line.to_string(), "chat") {
                let found = crate::identify::Identify::default().find(&ev);
                let now: chrono::DateTime<Utc> = "2026-11-22T00:00:00Z".parse().unwrap();
                let step = crate::decide::decide(Default::default(), ev, found, now, &Default::default());
                let ctx = RecordCtx { now, patient_ref: None, device: "rb" };
                prop_assert!(bundle(&step.decisions[0], &ctx).is_some());
            }
        }
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(
            communication_ref("matrix", "$a+b/c=d&e f#g"),
            "Communication?identifier=urn:ietf:rfc:3986|urn:chat:matrix:$a%2Bb/c%3Dd%26e%20f%23g"
        );
        assert_eq!(
            patient_ref(&Identifier::nhs("9434765919")),
            "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919"
        );
        assert_eq!(query_escape("é|%"), "%C3%A9%7C%25");
    }

    #[test]
    fn a_comma_or_bar_in_an_id_or_tag_is_escaped_never_a_search_operator() {
        // An event id built to match a victim's Communication too.
        assert_eq!(
            communication_ref("chat", "a,urn:ietf:rfc:3986|urn:chat:chat:victim"),
            "Communication?identifier=urn:ietf:rfc:3986|urn:chat:chat:a%5C%2Curn:ietf:rfc:3986%7Curn:chat:chat:victim"
        );
        // A tag's value built to name a second patient.
        let tag = Identifier {
            system: "https://trust.example/mrn".into(),
            value: "H1234567,https://fhir.nhs.uk/Id/nhs-number|9997654323".into(),
        };
        assert_eq!(
            patient_ref(&tag),
            "Patient?identifier=https://trust.example/mrn|H1234567%5C%2Chttps://fhir.nhs.uk/Id/nhs-number%7C9997654323"
        );
        assert_eq!(search_escape(r"a\b,c|d$e"), r"a\\b\,c|d$e");
    }
}
