//! One transaction Bundle per filed decision (ARCHITECTURE §5).

use fhir_sdk::r4b::codes::{BundleType, HTTPVerb};
use fhir_sdk::r4b::resources::{Bundle, BundleEntry, BundleEntryRequest, Resource};

use super::communication::{Links, communication, redacted};
use super::provenance::{CREATE, NULLIFY, UPDATE, provenance};
use super::task::task;
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

/// The `fullUrl` of an entry that is not created by POST: R4 lets only a
/// POST omit it (Bundle.entry.fullUrl). A conditional update has no id of its
/// own yet, so every entry gets a urn:uuid, the same for the same event and
/// request URL (a retried bundle is the same bundle).
fn entry_uuid(d: &Decision, url: &str) -> String {
    urn_uuid(&format!("{}|{url}", d.event.event_key()))
}

/// The transaction Bundle for a decision, or `None` when nothing is written.
///
/// * message: `POST Communication` (conditional on its identifier), the Task it
///   creates or moves on (`PUT Task/<id>`), a Provenance (CREATE);
/// * edit: `PUT Communication?identifier=…` with the edited content (a new
///   version of the same Communication), its Task if re-evaluated, Provenance (UPDATE);
/// * redaction: `PUT Communication?identifier=…` entered-in-error without
///   payload, its open Task cancelled, Provenance (NULLIFY);
/// * reaction moving a Task: `PUT Task/<id>`, Provenance (UPDATE).
///
/// Returned as JSON: fhir-sdk's R4B `TaskIntent` knows only `unknown`, while
/// R4's Task.intent is `order` for a request; the JSON is the R4 wire form.
pub fn bundle(d: &Decision, ctx: &RecordCtx<'_>) -> Option<serde_json::Value> {
    let mut v = serde_json::to_value(typed_bundle(d, ctx)?).ok()?;
    for e in v["entry"].as_array_mut().into_iter().flatten() {
        if e["resource"]["resourceType"] == "Task" {
            e["resource"]["intent"] = "order".into();
        }
    }
    Some(v)
}

fn typed_bundle(d: &Decision, ctx: &RecordCtx<'_>) -> Option<Bundle> {
    if d.outcome != Outcome::Filed {
        return None;
    }
    let patient = d.patient.as_ref()?;
    let write = d.write.as_ref()?;
    let e = &d.event;
    let mut entries = Vec::with_capacity(3);
    let mut targets = Vec::with_capacity(2);
    let mut focus = None;
    let activity = match write {
        Write::Communication {
            part_of,
            in_response_to,
        } => {
            let links = Links {
                id: &e.id,
                sent: e.sent_at,
                part_of: part_of.as_deref(),
                in_response_to: in_response_to.as_deref(),
            };
            let c = communication(d, patient, &links, None, ctx);
            let full = urn_uuid(&e.event_key());
            let cond = communication_criterion(&e.platform, &e.id);
            entries.push(Some(entry(
                Some(full.clone()),
                c.into(),
                HTTPVerb::Post,
                "Communication".into(),
                Some(cond),
            )));
            if d.task.as_ref().is_some_and(|t| t.created) {
                focus = Some(full.clone());
            }
            targets.push(full);
            CREATE
        }
        // Both replace the target's Communication by a conditional update.
        Write::Edit { target, .. } | Write::Redact { target, .. } => {
            let (c, activity) = match write {
                Write::Edit { meta, content, .. } => {
                    let links = Links {
                        id: target,
                        sent: meta.sent,
                        part_of: meta.part_of.as_deref(),
                        in_response_to: meta.in_response_to.as_deref(),
                    };
                    (
                        communication(d, patient, &links, content.as_deref(), ctx),
                        UPDATE,
                    )
                }
                Write::Redact { meta, .. } => {
                    (redacted(d, target, meta.as_ref(), patient, ctx), NULLIFY)
                }
                _ => unreachable!("matched above"),
            };
            let url = communication_ref(&e.platform, target);
            entries.push(Some(entry(
                Some(entry_uuid(d, &url)),
                c.into(),
                HTTPVerb::Put,
                url.clone(),
                None,
            )));
            targets.push(url);
            activity
        }
        Write::TaskOnly => UPDATE,
    };
    if let Some(change) = &d.task {
        let t = task(&e.platform, change, focus.as_deref(), ctx);
        let url = format!("Task/{}", t.id.as_deref().unwrap_or_default());
        entries.push(Some(entry(
            Some(entry_uuid(d, &url)),
            t.into(),
            HTTPVerb::Put,
            url.clone(),
            None,
        )));
        targets.push(url);
    }
    if targets.is_empty() {
        return None;
    }
    let p = provenance(d, &targets, activity, ctx);
    let purl = format!("Provenance/{}", p.id.as_deref().unwrap_or_default());
    entries.push(Some(entry(
        Some(entry_uuid(d, &purl)),
        p.into(),
        HTTPVerb::Put,
        purl,
        None,
    )));
    let mut b = Bundle::builder()
        .r#type(BundleType::Transaction)
        .entry(entries)
        .build()
        .expect("type set");
    b.timestamp = Some(instant(ctx.now));
    Some(b)
}
