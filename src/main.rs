//! `recordbridge` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use recordbridge::config::Config;
use recordbridge::ledger::Ledger;
use recordbridge::{ops, run};

/// Files clinical chat into the patient record as FHIR R4 Communication + Provenance.
#[derive(Parser)]
#[command(name = "recordbridge", version, about, long_about = None)]
struct Cli {
    /// TOML configuration file (settings are overridden by RECORDBRIDGE_* variables, then flags).
    #[arg(long, global = true, env = "RECORDBRIDGE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read chat events, decide, and write FHIR transaction Bundles.
    Run(RunArgs),
    /// Work with quarantined events.
    #[command(subcommand)]
    Quarantine(QuarantineCmd),
    /// Validate the configuration and print it (secrets are never printed: only their source).
    Check,
}

#[derive(Args)]
struct RunArgs {
    /// Event source: file:PATH, - (stdin), or amqp://USER:PASS@HOST:PORT/VHOST (a long-running consumer).
    #[arg(long)]
    source: Option<String>,
    /// Sink: dir:PATH (bundle files) or fhir:URL (a FHIR R4 server).
    #[arg(long)]
    sink: Option<String>,
    /// Ledger file (default: <bundle dir>/ledger.db).
    #[arg(long)]
    ledger: Option<PathBuf>,
    /// Print one decision line per decision (ARCHITECTURE §6) to stdout and write nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Subcommand)]
enum QuarantineCmd {
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
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = match &cli.command {
        Command::Run(a) => Config {
            source: a.source.clone(),
            sink: a.sink.clone(),
            ledger: a.ledger.clone(),
            ..Config::default()
        },
        Command::Quarantine(QuarantineCmd::List { ledger, .. }) => Config {
            ledger: ledger.clone(),
            ..Config::default()
        },
        Command::Check => Config::default(),
    };
    let cfg = match Config::load(cli.config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("recordbridge: {e}");
            return ExitCode::from(2);
        }
    };
    ops::init_tracing(&cfg.log.format, &cfg.log.level);
    let result = match cli.command {
        Command::Run(a) => match run::Run::new(cfg, a.dry_run).await {
            Ok(r) => r.run().await.map(|_| ()),
            Err(e) => Err(e),
        },
        Command::Quarantine(QuarantineCmd::List { status, json, .. }) => {
            quarantine_list(&cfg, status.as_deref(), json).await
        }
        Command::Check => {
            let mut shown = cfg.clone();
            shown.source = shown
                .source
                .as_deref()
                .map(recordbridge::config::redact_url);
            println!("{}", toml::to_string_pretty(&shown).unwrap_or_default());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("recordbridge: {e:#}");
            // A broker configuration problem (credentials, topology) is a
            // configuration error, like an invalid setting.
            if e.is::<recordbridge::source::amqp::Fatal>() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn quarantine_list(cfg: &Config, status: Option<&str>, json: bool) -> anyhow::Result<()> {
    let path = cfg.ledger_path();
    if !path.exists() {
        anyhow::bail!("no ledger at {} (use --ledger PATH)", path.display());
    }
    let ledger = Ledger::open(&path).await?;
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
