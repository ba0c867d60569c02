//! Writing one filed decision to the sink (bundle directory, FHIR server or
//! none in a dry run), and the sink's verdict on it (`decide::Verdict`).

use std::sync::PoisonError;

use chrono::{DateTime, Utc};
use tracing::{debug, warn};

use crate::decide::{self, Decision, Verdict};
use crate::record::{self, RecordCtx};
use crate::sink::WriteError;
use crate::sink::fhir::Resolution;

use super::*;

/// Write one filed decision. Returns the Communication/Task resources
/// written (for the outcome event) and the sink's verdict, which the core
/// turns into the final decision (`Step::after_write`).
pub(super) async fn write(
    sh: &Shared,
    d: &Decision,
    now: DateTime<Utc>,
) -> anyhow::Result<(Vec<String>, Verdict)> {
    let device = &sh.cfg.device;
    match &sh.out {
        Output::DryRun(_) => Ok((Vec::new(), Verdict::Written)),
        Output::Write(Sink::Dir(sink)) => {
            let ctx = RecordCtx {
                now,
                patient_ref: None,
                device,
            };
            let Some(b) = record::bundle(d, &ctx) else {
                return Ok((Vec::new(), Verdict::Written));
            };
            let t = std::time::Instant::now();
            sink.write(&serde_json::to_vec(&b)?)
                .map_err(|e| anyhow::anyhow!("bundle directory sink failed: {e}"))?;
            crate::metrics::metrics()
                .sink_seconds
                .observe(t.elapsed().as_secs_f64());
            sh.summary
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .bundles += 1;
            // No server ids in a bundle file: name the resource by its identifier.
            let e = &d.event;
            let mut res = match &d.write {
                Some(decide::Write::Redact { target, .. } | decide::Write::Edit { target, .. }) => {
                    vec![record::communication_ref(&e.platform, target)]
                }
                Some(decide::Write::TaskOnly) => Vec::new(),
                _ => vec![record::communication_ref(&e.platform, &e.id)],
            };
            if let Some(t) = &d.task {
                res.push(format!(
                    "Task/{}",
                    record::task::task_id(&e.platform, &t.request_id)
                ));
            }
            Ok((res, Verdict::Written))
        }
        Output::Write(Sink::Fhir(sink)) => {
            let mut patient_ref = None;
            if sh.cfg.fhir.resolve_patients {
                let Some(p) = d.patient.clone() else {
                    return Ok((Vec::new(), Verdict::Written));
                };
                match sink.resolve(&p).await {
                    Ok(Resolution::Found(r)) => patient_ref = Some(r),
                    Ok(Resolution::Unknown) => {
                        return Ok((Vec::new(), Verdict::UnknownPatient));
                    }
                    Ok(Resolution::Ambiguous) => {
                        return Ok((Vec::new(), Verdict::AmbiguousPatient));
                    }
                    Err(e) => return fail(d, e).map(|v| (Vec::new(), v)),
                }
                // The patient's second identifier written beside the first
                // (pairing) must be the same Patient's, or not known at all.
                let others: Vec<_> = d.identifiers.iter().filter(|i| **i != p).cloned().collect();
                for other in others {
                    match sink.resolve(&other).await {
                        Ok(Resolution::Found(r)) if Some(&r) != patient_ref.as_ref() => {
                            return Ok((Vec::new(), Verdict::OtherPatient));
                        }
                        Ok(Resolution::Ambiguous) => {
                            return Ok((Vec::new(), Verdict::AmbiguousPatient));
                        }
                        Ok(_) => {}
                        Err(e) => return fail(d, e).map(|v| (Vec::new(), v)),
                    }
                }
            }
            let ctx = RecordCtx {
                now,
                patient_ref: patient_ref.as_deref(),
                device,
            };
            let Some(b) = record::bundle(d, &ctx) else {
                return Ok((Vec::new(), Verdict::Written));
            };
            let t = std::time::Instant::now();
            let written = sink.write(&serde_json::to_vec(&b)?).await;
            crate::metrics::metrics()
                .sink_seconds
                .observe(t.elapsed().as_secs_f64());
            match written {
                Ok(resources) => {
                    debug!(event_id = %d.event.id, resources = resources.len(), "written");
                    sh.summary
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .bundles += 1;
                    let written = resources
                        .into_iter()
                        .filter(|r| r.starts_with("Communication/") || r.starts_with("Task/"))
                        .collect();
                    Ok((written, Verdict::Written))
                }
                Err(e) => fail(d, e).map(|v| (Vec::new(), v)),
            }
        }
    }
}

/// A sink error: a refusal is the server's verdict on this event; a server
/// away or a fatal error stops the event uncommitted.
pub(super) fn fail(d: &Decision, e: WriteError) -> anyhow::Result<Verdict> {
    match e {
        WriteError::Rejected { reason, detail } => {
            // The server's text may quote the event: only its status is logged.
            warn!(event_id = %d.event.id, reason = %reason, "FHIR server refused the bundle; event rejected (its explanation is in the reject report)");
            Ok(Verdict::Refused { reason, detail })
        }
        WriteError::Retryable(why) => Err(SinkUnavailable(format!(
            "FHIR server unavailable, stopping with event {} uncommitted (it is redone on the next run): {why}",
            d.event.id
        ))
        .into()),
        WriteError::Fatal(why) => {
            anyhow::bail!(
                "cannot write to the FHIR server, stopping with event {} uncommitted (it is redone on the next run): {why}",
                d.event.id
            )
        }
    }
}
