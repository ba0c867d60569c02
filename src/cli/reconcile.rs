//! `reconcile`: every filed message and Task of the ledger against the FHIR server.

use recordbridge::config::Config;

use super::open_ledger;

pub async fn reconcile(cfg: &Config, json: bool) -> anyhow::Result<()> {
    let url = match cfg
        .sink_spec()
        .map_err(recordbridge::config::SettingError)?
    {
        recordbridge::config::SinkSpec::Fhir(u) => u,
        recordbridge::config::SinkSpec::Dir(_) => {
            return Err(super::usage("--sink: reconcile needs fhir:URL"));
        }
    };
    let ledger = open_ledger(cfg).await?;
    let fhir = recordbridge::sink::fhir::FhirSink::new(&url, &cfg.fhir)?;
    let r = recordbridge::report::reconcile::reconcile(&ledger, &fhir).await;
    ledger.close().await;
    let r = r?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        for f in &r.findings {
            println!(
                "{:<14} {:<13} {} {}: {}",
                f.resource, f.problem, f.platform, f.event_id, f.detail
            );
        }
        println!(
            "checked {} Communications and {} Tasks: {} missing, {} mismatched",
            r.communications_checked, r.tasks_checked, r.missing, r.mismatched
        );
    }
    if r.missing + r.mismatched > 0 {
        anyhow::bail!("{} missing, {} mismatched", r.missing, r.mismatched);
    }
    Ok(())
}
