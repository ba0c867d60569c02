//! `quarantine list|show|resolve|discard`: the reviewer's commands.

use std::path::PathBuf;

use clap::Subcommand;
use recordbridge::config::Config;
use recordbridge::pipeline;

use super::open_ledger;

#[derive(Subcommand)]
pub enum QuarantineCmd {
    /// List quarantined events (ids, reasons, status; never message text).
    List {
        /// Ledger file.
        #[arg(long)]
        ledger: Option<PathBuf>,
        /// Only items with this status (open, resolved, discarded).
        #[arg(long)]
        status: Option<String>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one item with its content and audit trail, for the reviewer (the viewing is recorded).
    Show {
        qid: i64,
        /// Who is looking (recorded in the audit trail).
        #[arg(long)]
        by: String,
        #[arg(long)]
        ledger: Option<PathBuf>,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// File quarantined events to a patient chosen by a person (several ids: the chosen messages of a thread).
    Resolve {
        #[arg(required = true)]
        qids: Vec<i64>,
        /// SYSTEM|VALUE, e.g. https://fhir.nhs.uk/Id/nhs-number|9434765919.
        #[arg(long)]
        patient: String,
        /// Who decided (recorded in the ledger and in a FHIR AuditEvent).
        #[arg(long)]
        by: String,
        #[arg(long)]
        ledger: Option<PathBuf>,
        /// Where to file: dir:PATH or fhir:URL.
        #[arg(long)]
        sink: Option<String>,
    },
    /// Discard a quarantined event: it is not filed and its content is deleted.
    Discard {
        qid: i64,
        #[arg(long)]
        by: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        ledger: Option<PathBuf>,
        /// Where the AuditEvent goes: dir:PATH or fhir:URL.
        #[arg(long)]
        sink: Option<String>,
    },
}

pub async fn list(cfg: &Config, status: Option<&str>, json: bool) -> anyhow::Result<()> {
    let ledger = open_ledger(cfg).await?;
    let items = ledger.quarantine_list(status).await?;
    if json {
        for i in &items {
            println!("{}", serde_json::to_string(i)?);
        }
    } else {
        println!(
            "{:>6}  {:<10}  {:<22}  {:<8}  {:<30}  event",
            "qid", "platform", "reason", "status", "created"
        );
        for i in &items {
            println!(
                "{:>6}  {:<10}  {:<22}  {:<8}  {:<30}  {}",
                i.qid, i.platform, i.reason, i.status, i.created_at, i.event_id
            );
        }
        println!("{} item(s)", items.len());
    }
    ledger.close().await;
    Ok(())
}

pub async fn review(cfg: &Config, cmd: QuarantineCmd) -> anyhow::Result<()> {
    use recordbridge::review;
    let ledger = open_ledger(cfg).await?;
    let result = match cmd {
        QuarantineCmd::List { .. } => Ok(()),
        QuarantineCmd::Show { qid, by, json, .. } => {
            let s = review::show(&ledger, qid, &by).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                let i = &s.item;
                println!(
                    "item {}: {} ({}), event {} on {}, since {}",
                    i.qid, i.reason, i.status, i.event_id, i.platform, i.created_at
                );
                match &s.event {
                    Some(e) => {
                        println!(
                            "room {}  sender {}  sent {}",
                            e.room,
                            e.sender,
                            e.sent_at.to_rfc3339()
                        );
                        println!("text: {}", e.text.as_deref().unwrap_or(""));
                    }
                    None => println!("(content deleted: the item is closed)"),
                }
                for a in &s.audit {
                    println!(
                        "  {}  {:<10} by {}  {}",
                        a.at,
                        a.action,
                        a.actor,
                        a.detail.as_deref().unwrap_or("")
                    );
                }
            }
            Ok(())
        }
        QuarantineCmd::Resolve {
            qids, patient, by, ..
        } => {
            let patient = review::parse_patient(&patient)?;
            let policy = recordbridge::decide::Policy {
                tasks: std::sync::Arc::new(pipeline::load_tasks(cfg)?),
                ..Default::default()
            };
            let mut result = Ok(());
            for qid in qids {
                match review::resolve(cfg, &policy, &ledger, qid, &patient, &by).await {
                    Ok(()) => println!("item {qid}: filed"),
                    Err(e) => {
                        result = Err(e.context(format!("item {qid}")));
                        break;
                    }
                }
            }
            result
        }
        QuarantineCmd::Discard {
            qid, by, reason, ..
        } => {
            review::discard(cfg, &ledger, qid, &by, &reason).await?;
            println!("item {qid}: discarded");
            Ok(())
        }
    };
    ledger.close().await;
    result
}
