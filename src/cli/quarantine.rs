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
        #[arg(long, value_parser = ["open", "resolved", "discarded"])]
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
                i.qid,
                plain(&i.platform),
                i.reason,
                i.status,
                i.created_at,
                plain(&i.event_id)
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
                    i.qid,
                    i.reason,
                    i.status,
                    plain(&i.event_id),
                    plain(&i.platform),
                    i.created_at
                );
                match &s.event {
                    Some(e) => {
                        println!(
                            "room {}  sender {}  sent {}",
                            plain(&e.room),
                            plain(&e.sender),
                            e.sent_at.to_rfc3339()
                        );
                        println!("text: {}", text(e.text.as_deref().unwrap_or("")));
                    }
                    None => println!("(content deleted: the item is closed)"),
                }
                for a in &s.audit {
                    println!(
                        "  {}  {:<10} by {}  {}",
                        a.at,
                        a.action,
                        plain(&a.actor),
                        plain(a.detail.as_deref().unwrap_or(""))
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

/// A value from an event or a reviewer (an id, a room, a name) as one line
/// of a table: control characters (terminal escape sequences, a newline that
/// would forge a row) are shown escaped, never sent to the terminal.
pub fn plain(s: &str) -> String {
    escape_controls(s, false)
}

/// A message's text for the reviewer: its lines kept, every other control
/// character shown escaped.
pub fn text(s: &str) -> String {
    escape_controls(s, true)
}

fn escape_controls(s: &str, keep_newlines: bool) -> String {
    s.chars()
        .map(|c| {
            if (c.is_control() && !(keep_newlines && c == '\n')) || is_bidi_control(c) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Characters that reorder what a terminal shows (Trojan Source).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

#[cfg(test)]
mod tests {
    use super::{plain, text};

    #[test]
    fn values_from_events_never_reach_the_terminal_as_control_sequences() {
        assert_eq!(plain("evt-1"), "evt-1");
        assert_eq!(plain("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(plain("x\n    99  open"), "x\\n    99  open");
        assert_eq!(plain("r\u{202E}oom"), "r\\u{202e}oom");
        assert_eq!(plain("tab\there"), "tab\\there");
        assert_eq!(plain("Ward 7 — Bay 3 é"), "Ward 7 — Bay 3 é");
        // A message keeps its lines; other controls are escaped.
        assert_eq!(text("line 1\nline 2\u{7}"), "line 1\nline 2\\u{7}");
    }
}
