//! One transaction Bundle per filed decision (ARCHITECTURE §5).

use fhir_sdk::r4b::codes::{BundleType, HTTPVerb};
use fhir_sdk::r4b::resources::{Bundle, BundleEntry, BundleEntryRequest, Resource};

use super::communication::{Links, communication, redacted};
use super::provenance::{CREATE, NULLIFY, provenance};
use super::{RecordCtx, communication_criterion, communication_ref, instant, urn_uuid};
use crate::decide::{Decision, Outcome, Write};

fn entry(
    full_url: Option<String>,
    resource: Resource,
    method: HTTPVerb,
    url: String,
    if_none_exist: Option<String>,
) -> BundleEntry {
    let mut req = BundleEntryRequest::builder()
        .method(method)
        .url(url)
        .build()
        .expect("method and url set");
    req.if_none_exist = if_none_exist;
    let mut e = BundleEntry::builder()
        .resource(resource)
        .request(req)
        .build()
        .expect("no required fields");
    e.full_url = full_url;
    e
}

/// The transaction Bundle for a decision, or `None` when nothing is written.
pub fn bundle(d: &Decision, ctx: &RecordCtx<'_>) -> Option<Bundle> {
    if d.outcome != Outcome::Filed {
        return None;
    }
    let patient = d.patient.as_ref()?;
    let write = d.write.as_ref()?;
    let e = &d.event;
    let mut entries = Vec::with_capacity(2);
    match write {
        Write::Communication {
            part_of,
            in_response_to,
            about,
        } => {
            let links = Links {
                part_of: part_of.as_deref(),
                in_response_to: in_response_to.as_deref(),
                about: about.as_deref(),
            };
            let c = communication(d, patient, &links, ctx);
            let full = urn_uuid(&e.event_key());
            let cond = communication_criterion(&e.platform, &e.id);
            entries.push(Some(entry(
                Some(full.clone()),
                c.into(),
                HTTPVerb::Post,
                "Communication".into(),
                Some(cond),
            )));
            let p = provenance(d, &full, CREATE, ctx);
            let url = format!("Provenance/{}", p.id.as_deref().unwrap_or_default());
            entries.push(Some(entry(None, p.into(), HTTPVerb::Put, url, None)));
        }
        Write::Redact { target } => {
            let c = redacted(d, target, patient, ctx);
            let url = communication_ref(&e.platform, target);
            entries.push(Some(entry(
                None,
                c.into(),
                HTTPVerb::Put,
                url.clone(),
                None,
            )));
            let p = provenance(d, &url, NULLIFY, ctx);
            let purl = format!("Provenance/{}", p.id.as_deref().unwrap_or_default());
            entries.push(Some(entry(None, p.into(), HTTPVerb::Put, purl, None)));
        }
    }
    let mut b = Bundle::builder()
        .r#type(BundleType::Transaction)
        .entry(entries)
        .build()
        .expect("type set");
    b.timestamp = Some(instant(ctx.now));
    Some(b)
}
