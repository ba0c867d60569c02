//! Reconcile the ledger with the FHIR server: every message the ledger says
//! was filed has exactly one Communication with its identifier, about the
//! patient the ledger names, in the status the ledger expects (entered-in-error
//! once redacted); every Task the ledger keeps exists in the status it keeps.

use std::collections::HashMap;

use serde::Serialize;

use crate::ledger::Ledger;
use crate::record::{self, query_escape};
use crate::sink::fhir::FhirSink;

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `Communication` or `Task`.
    pub resource: &'static str,
    pub platform: String,
    pub event_id: String,
    /// `missing`, `duplicate`, `wrong-subject` or `wrong-status`.
    pub problem: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Reconciliation {
    pub communications_checked: u64,
    pub tasks_checked: u64,
    pub missing: u64,
    pub mismatched: u64,
    pub findings: Vec<Finding>,
}

/// Compare the ledger with the server. Reads only.
pub async fn reconcile(ledger: &Ledger, fhir: &FhirSink) -> anyhow::Result<Reconciliation> {
    let mut out = Reconciliation::default();
    // Patient/<id> → identifier values (each Patient read once).
    let mut patients: HashMap<String, Vec<String>> = HashMap::new();
    for (platform, id, patient, state) in ledger.filed_with_state().await? {
        let mut find = |resource, problem, detail: String| {
            if problem == "missing" {
                out.missing += 1;
            } else {
                out.mismatched += 1;
            }
            out.findings.push(Finding {
                resource,
                platform: platform.clone(),
                event_id: id.clone(),
                problem,
                detail,
            });
        };
        if state.filed.contains_key(&id) {
            let q = format!(
                "Communication?{}&_count=5",
                record::communication_criterion(&platform, &id)
            );
            let found = fhir.search(&q).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            match found.as_slice() {
                [] => find(
                    "Communication",
                    "missing",
                    "no Communication with this identifier".into(),
                ),
                [c] => {
                    let want = if state.redacted.contains(&id) {
                        "entered-in-error"
                    } else {
                        "completed"
                    };
                    if c["status"] != want {
                        find(
                            "Communication",
                            "wrong-status",
                            format!("status {} (expected {want})", c["status"]),
                        );
                    }
                    let subject = c["subject"]["reference"].as_str().unwrap_or("").to_owned();
                    if let Some(value) = &patient {
                        let ids = match patients.get(&subject) {
                            Some(v) => v.clone(),
                            None => {
                                let pid = subject.strip_prefix("Patient/").unwrap_or("");
                                let ps = fhir
                                    .search(&format!("Patient?_id={}", query_escape(pid)))
                                    .await
                                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                                let v: Vec<String> = ps
                                    .iter()
                                    .flat_map(|p| {
                                        p["identifier"].as_array().cloned().unwrap_or_default()
                                    })
                                    .filter_map(|i| i["value"].as_str().map(str::to_owned))
                                    .collect();
                                patients.insert(subject.clone(), v.clone());
                                v
                            }
                        };
                        if !ids.contains(value) {
                            find(
                                "Communication",
                                "wrong-subject",
                                format!("subject {subject} is not the patient the ledger names"),
                            );
                        }
                    }
                }
                many => find(
                    "Communication",
                    "duplicate",
                    format!("{} Communications with this identifier", many.len()),
                ),
            }
            out.communications_checked += 1;
        }
        if let Some(t) = state.tasks.get(&id) {
            let tid = record::task::task_id(&platform, &id);
            let found = fhir
                .search(&format!("Task?_id={}", query_escape(&tid)))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            match found.first() {
                None => find("Task", "missing", format!("no Task/{tid}")),
                Some(task) => {
                    let want = t.status.as_str();
                    if task["status"] != want {
                        find(
                            "Task",
                            "wrong-status",
                            format!("status {} (expected {want})", task["status"]),
                        );
                    }
                }
            }
            out.tasks_checked += 1;
        }
    }
    Ok(out)
}
