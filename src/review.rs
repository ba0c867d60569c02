//! Quarantine review by a person: show an item (its content, for the
//! reviewer only), resolve it to a patient (file it), or discard it. Every
//! action is recorded in the ledger's audit table; a resolved event's
//! Provenance names the reviewer (`verifier`); resolve and discard also write
//! a FHIR `AuditEvent` (in the bundle directory: in the same Bundle as the
//! filed Communication; on a FHIR server: right after it, where the server
//! accepts client AuditEvents).

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::config::Config;
use crate::decide::{self, Policy};
use crate::event::ChatEvent;
use crate::identify::{Identifier, NHS_SYSTEM, nhs_number};
use crate::ledger::{AuditRow, Ledger, QuarantineItem};
use crate::record::{self, RecordCtx, URI_SYSTEM, chat_urn};
use crate::sink::Sink;
use crate::sink::fhir::Resolution;

/// An item as a reviewer sees it.
#[derive(Debug, serde::Serialize)]
pub struct Shown {
    pub item: QuarantineItem,
    /// The quarantined event (deleted once resolved or discarded).
    pub event: Option<ChatEvent>,
    pub audit: Vec<AuditRow>,
}

/// `SYSTEM|VALUE` → identifier; an NHS number must pass its check digit.
pub fn parse_patient(s: &str) -> anyhow::Result<Identifier> {
    let (system, value) = s
        .split_once('|')
        .filter(|(s, v)| !s.trim().is_empty() && !v.trim().is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!("--patient: expected SYSTEM|VALUE, e.g. {NHS_SYSTEM}|9434765919")
        })?;
    let value: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    let system = crate::identify::canonical_system(system);
    if system.contains(char::is_whitespace) || system.contains(char::is_control) {
        anyhow::bail!("--patient: the system must be one URI without spaces");
    }
    if system == NHS_SYSTEM && !nhs_number::is_valid(&value) {
        anyhow::bail!("--patient: not a valid NHS number (Modulus 11 check failed)");
    }
    Ok(Identifier { system, value })
}

fn need_by(by: &str) -> anyhow::Result<()> {
    if by.trim().is_empty() {
        anyhow::bail!("--by: the reviewer's name is required");
    }
    Ok(())
}

async fn open_item(ledger: &Ledger, qid: i64) -> anyhow::Result<(QuarantineItem, ChatEvent)> {
    let (item, event) = ledger
        .quarantine_item(qid)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no quarantine item {qid}"))?;
    if item.status != "open" {
        anyhow::bail!("quarantine item {qid} is already {}", item.status);
    }
    let event = event.ok_or_else(|| anyhow::anyhow!("quarantine item {qid} has no content"))?;
    Ok((item, event))
}

/// Show one item with its audit trail; the viewing is itself recorded.
pub async fn show(ledger: &Ledger, qid: i64, by: &str) -> anyhow::Result<Shown> {
    need_by(by)?;
    let (item, event) = ledger
        .quarantine_item(qid)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no quarantine item {qid}"))?;
    ledger.audit_view(qid, by, Utc::now()).await?;
    let audit = ledger.audit_trail(qid).await?;
    Ok(Shown { item, event, audit })
}

/// The FHIR AuditEvent of a review action. `entity` is a reference to the
/// filed Communication (resolve) or `None` (discard: the chat event by identifier).
fn audit_event(
    action: &str,
    item: &QuarantineItem,
    by: &str,
    detail: &str,
    entity: Option<&str>,
    device: &str,
    now: DateTime<Utc>,
) -> serde_json::Value {
    let (code, display, act) = match action {
        "resolve" => (
            "quarantine-resolve",
            "Quarantined chat message filed by a reviewer",
            "C",
        ),
        _ => (
            "quarantine-discard",
            "Quarantined chat message discarded by a reviewer",
            "E",
        ),
    };
    let what = match entity {
        Some(r) => json!({"reference": r}),
        None => {
            json!({"identifier": {"system": URI_SYSTEM, "value": chat_urn(&item.platform, &item.event_id)}})
        }
    };
    json!({
        "resourceType": "AuditEvent",
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": "urn:recordbridge:audit", "code": code, "display": display}],
        "action": act,
        "recorded": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "outcome": "0",
        "outcomeDesc": detail,
        "agent": [
            {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type", "code": "humanuser", "display": "human user"}]},
             "who": {"display": by}, "requestor": true},
            {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type", "code": "dataprocessor", "display": "data processor"}]},
             "who": {"identifier": {"system": "urn:recordbridge:device", "value": device}, "display": device}, "requestor": false}
        ],
        "source": {"observer": {"display": device}},
        "entity": [{"what": what, "description": format!("quarantine item {} ({})", item.qid, item.reason)}]
    })
}

fn with_entry(bundle: Option<serde_json::Value>, resource: serde_json::Value) -> serde_json::Value {
    let mut b = bundle
        .unwrap_or_else(|| json!({"resourceType": "Bundle", "type": "transaction", "entry": []}));
    if let Some(es) = b["entry"].as_array_mut() {
        es.push(json!({"resource": resource, "request": {"method": "POST", "url": "AuditEvent"}}));
    }
    b
}

/// The review's writes to the configured sink.
struct Out(Sink);

impl Out {
    fn open(cfg: &Config) -> anyhow::Result<Self> {
        Sink::open(cfg).map(Out)
    }

    /// Write a transaction Bundle; returns the resources written (FHIR) or nothing (dir).
    async fn write(&self, b: &serde_json::Value) -> anyhow::Result<Vec<String>> {
        let bytes = serde_json::to_vec(b)?;
        match self {
            Out(Sink::Dir(d)) => d
                .write(&bytes)
                .map(|_| Vec::new())
                .map_err(|e| anyhow::anyhow!("bundle directory sink failed: {e}")),
            Out(Sink::Fhir(f)) => f
                .write(&bytes)
                .await
                .map_err(|e| anyhow::anyhow!("FHIR server refused the review bundle: {e}")),
        }
    }

    /// Write the AuditEvent: in the bundle directory with the rest (`bundle`),
    /// on a FHIR server on its own. Some servers keep AuditEvents to
    /// themselves and refuse client writes (Helios answers 405): then the
    /// ledger's trail and the Provenance naming the reviewer stand, and the
    /// returned note says so.
    async fn audit(
        &self,
        bundle: Option<serde_json::Value>,
        audit: serde_json::Value,
    ) -> anyhow::Result<Option<String>> {
        match self {
            Out(Sink::Dir(_)) => {
                self.write(&with_entry(bundle, audit)).await?;
                Ok(None)
            }
            Out(Sink::Fhir(_)) => {
                if let Some(b) = bundle {
                    self.write(&b).await?;
                }
                match self.write(&with_entry(None, audit)).await {
                    Ok(_) => Ok(None),
                    Err(e) => {
                        tracing::warn!(error = %e, "the FHIR server did not take the AuditEvent; the review is recorded in the ledger");
                        Ok(Some("FHIR server refused the AuditEvent".into()))
                    }
                }
            }
        }
    }
}

/// Name the reviewer in the Provenance of a resolved event (participant `verifier`).
fn add_reviewer(bundle: &mut serde_json::Value, by: &str) {
    for e in bundle["entry"].as_array_mut().into_iter().flatten() {
        if e["resource"]["resourceType"] == "Provenance"
            && let Some(agents) = e["resource"]["agent"].as_array_mut()
        {
            agents.push(json!({
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "verifier", "display": "Verifier"}]},
                "who": {"display": by}
            }));
        }
    }
}

/// File a quarantined event to `patient` on a reviewer's decision.
pub async fn resolve(
    cfg: &Config,
    policy: &Policy,
    ledger: &Ledger,
    qid: i64,
    patient: &Identifier,
    by: &str,
) -> anyhow::Result<()> {
    need_by(by)?;
    let (item, event) = open_item(ledger, qid).await?;
    let out = Out::open(cfg)?;
    let mut patient_ref = None;
    if let Out(Sink::Fhir(f)) = &out
        && cfg.fhir.resolve_patients
    {
        match f.resolve(patient).await {
            Ok(Resolution::Found(r)) => patient_ref = Some(r),
            Ok(Resolution::Unknown) => anyhow::bail!(
                "--patient: no Patient on the FHIR server has that identifier; nothing was changed"
            ),
            Ok(Resolution::Ambiguous) => anyhow::bail!(
                "--patient: several Patients have that identifier; nothing was changed"
            ),
            Err(e) => anyhow::bail!("cannot check the patient on the FHIR server: {e}"),
        }
    }
    let now = Utc::now();
    let state = ledger.load_thread(&item.thread_key).await?;
    let step = decide::resolve(state, event, patient.clone(), policy);
    let d = &step.decisions[0];
    let ctx = RecordCtx {
        now,
        patient_ref: patient_ref.as_deref(),
        device: &cfg.device,
    };
    let mut bundle = record::bundle(d, &ctx).context("a resolved event always has a Bundle")?;
    add_reviewer(&mut bundle, by);
    let mut detail = format!("filed to {}|{}", patient.system, patient.value);
    let note = match &out {
        Out(Sink::Dir(_)) => {
            // The AuditEvent travels in the same Bundle, pointing at the Communication.
            let comm = bundle["entry"][0]["fullUrl"].as_str().map(str::to_owned);
            let audit = audit_event(
                "resolve",
                &item,
                by,
                &detail,
                comm.as_deref(),
                &cfg.device,
                now,
            );
            out.audit(Some(bundle), audit).await?
        }
        Out(Sink::Fhir(_)) => {
            let written = out.write(&bundle).await?;
            let comm = written.iter().find(|r| r.starts_with("Communication/"));
            let audit = audit_event(
                "resolve",
                &item,
                by,
                &detail,
                comm.map(String::as_str),
                &cfg.device,
                now,
            );
            out.audit(None, audit).await?
        }
    };
    if let Some(n) = note {
        detail = format!("{detail} ({n})");
    }
    ledger
        .close_quarantine(
            qid,
            "resolved",
            &item.thread_key,
            &step.state,
            &step.decisions,
            by,
            &detail,
            now,
        )
        .await
}

/// Discard a quarantined event on a reviewer's decision (its content is deleted).
pub async fn discard(
    cfg: &Config,
    ledger: &Ledger,
    qid: i64,
    by: &str,
    why: &str,
) -> anyhow::Result<()> {
    need_by(by)?;
    if why.trim().is_empty() {
        anyhow::bail!("--reason: required");
    }
    let (item, event) = open_item(ledger, qid).await?;
    let out = Out::open(cfg)?;
    let now = Utc::now();
    let state = ledger.load_thread(&item.thread_key).await?;
    let step = decide::discard(state, event);
    let audit = audit_event("discard", &item, by, why, None, &cfg.device, now);
    let detail = match out.audit(None, audit).await? {
        Some(n) => format!("{why} ({n})"),
        None => why.to_owned(),
    };
    ledger
        .close_quarantine(
            qid,
            "discarded",
            &item.thread_key,
            &step.state,
            &step.decisions,
            by,
            &detail,
            now,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::parse_patient;
    use crate::identify::{Identifier, NHS_SYSTEM};

    #[test]
    fn a_reviewers_patient_is_normalised_then_validated_or_refused() {
        // The NHS system however it is written: always the Modulus 11 check.
        for system in [
            NHS_SYSTEM,
            " https://fhir.nhs.uk/Id/nhs-number",
            "https://fhir.nhs.uk/Id/nhs-number ",
            "HTTPS://FHIR.NHS.UK/ID/NHS-NUMBER",
            "\thttps://fhir.nhs.uk/id/nhs-number",
        ] {
            let bad = format!("{system}|1234567890");
            assert!(parse_patient(&bad).is_err(), "{bad:?}");
            let good = format!("{system}|999 765 4323");
            assert_eq!(
                parse_patient(&good).unwrap(),
                Identifier::nhs("9997654323"),
                "{good:?}"
            );
        }
        // A local system keeps its value, without the system's spaces.
        let local = parse_patient(" https://trust.example/mrn |H1234567").unwrap();
        assert_eq!(local.system, "https://trust.example/mrn");
        assert_eq!(local.value, "H1234567");
        // Spaces inside a system, or an empty part: refused.
        for s in [
            "https://trust example/mrn|1",
            "|9997654323",
            "x|",
            "9997654323",
        ] {
            assert!(parse_patient(s).is_err(), "{s:?}");
        }
    }
}
