//! Provenance for every write: the bridge (device) and the sender as agents,
//! the source chat event as entity.

use fhir_sdk::r4b::codes::ProvenanceEntityRole;
use fhir_sdk::r4b::resources::{Provenance, ProvenanceAgent, ProvenanceEntity};
use fhir_sdk::r4b::types::{CodeableConcept, Coding};

use super::{
    RecordCtx, URI_SYSTEM, chat_urn, derived_id, identifier, instant, logical_ref, reference,
    user_system,
};
use crate::decide::Decision;

/// Data operation codes (v3-DataOperation).
pub const CREATE: &str = "CREATE";
pub const NULLIFY: &str = "NULLIFY";
pub const UPDATE: &str = "UPDATE";

/// The Provenance of `d`'s writes to `targets` (bundle-internal, conditional or literal references).
pub fn provenance(
    d: &Decision,
    targets: &[String],
    activity: &str,
    ctx: &RecordCtx<'_>,
) -> Provenance {
    let e = &d.event;
    let device = ProvenanceAgent::builder()
        .r#type(concept(
            "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
            "assembler",
        ))
        .who(logical_ref(
            "Device",
            "urn:recordbridge:device",
            ctx.device,
            Some(ctx.device),
        ))
        .build()
        .expect("who set");
    let author = ProvenanceAgent::builder()
        .r#type(concept(
            "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
            "author",
        ))
        .who(logical_ref(
            "Practitioner",
            &user_system(&e.platform),
            &e.sender,
            e.sender_name.as_deref(),
        ))
        .build()
        .expect("who set");
    let mut what = reference(format!("urn:chat:{}", e.platform));
    what.reference = None;
    what.identifier = Some(identifier(URI_SYSTEM, &chat_urn(&e.platform, &e.id)));
    what.display = Some("source chat event".to_owned());
    let entity = ProvenanceEntity::builder()
        .role(ProvenanceEntityRole::Source)
        .what(what)
        .build()
        .expect("role and what set");
    let mut p = Provenance::builder()
        .target(
            targets
                .iter()
                .map(|t| Some(reference(t.as_str())))
                .collect(),
        )
        .recorded(instant(ctx.now))
        .agent(vec![Some(device), Some(author)])
        .entity(vec![Some(entity)])
        .activity(concept(
            "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
            activity,
        ))
        .build()
        .expect("target, recorded and agent set");
    p.id = Some(provenance_id(d));
    p
}

/// Provenance ids are derived from the event, so a replay updates the same
/// Provenance rather than adding another.
pub fn provenance_id(d: &Decision) -> String {
    derived_id("rb", &d.event.event_key())
}

fn concept(system: &str, code: &str) -> CodeableConcept {
    let coding = Coding::builder()
        .system(system.to_owned())
        .code(code.to_owned())
        .build()
        .expect("coding has no required fields");
    CodeableConcept::builder()
        .coding(vec![Some(coding)])
        .build()
        .expect("no required fields")
}
