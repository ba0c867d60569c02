//! `recordbridge` command line.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cli::check::CheckArgs;
use cli::quarantine::QuarantineCmd;
use cli::report::ReportArgs;
use cli::run::RunArgs;
use recordbridge::config::Config;
use recordbridge::ops;

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
    /// Validate the configuration and print it (secrets are never printed:
    /// only their source); with --mappings or --sample, validate the format
    /// mapping files and show the chat event v1 each sample event becomes
    /// (exit status 2 for a mapping file that does not fit, 1 for a sample
    /// event that does not map).
    Check(CheckArgs),
    /// Record completeness over a period, by room and by day (never any message text).
    Report(ReportArgs),
    /// Check every filed message and Task of the ledger against the FHIR server
    /// (exit status 1 when any is missing or differs).
    Reconcile {
        /// The FHIR server: fhir:URL.
        #[arg(long)]
        sink: Option<String>,
        #[arg(long)]
        ledger: Option<PathBuf>,
        /// JSON instead of text.
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
        Command::Quarantine(QuarantineCmd::List { ledger, .. })
        | Command::Quarantine(QuarantineCmd::Show { ledger, .. }) => Config {
            ledger: ledger.clone(),
            ..Config::default()
        },
        Command::Quarantine(QuarantineCmd::Resolve { ledger, sink, .. })
        | Command::Quarantine(QuarantineCmd::Discard { ledger, sink, .. }) => Config {
            ledger: ledger.clone(),
            sink: sink.clone(),
            ..Config::default()
        },
        Command::Check(_) => Config::default(),
        Command::Report(a) => Config {
            ledger: a.ledger.clone(),
            ..Config::default()
        },
        Command::Reconcile { sink, ledger, .. } => Config {
            ledger: ledger.clone(),
            sink: sink.clone(),
            ..Config::default()
        },
    };
    let loaded = Config::load(cli.config.as_deref(), &overrides).map(|mut c| {
        let fa = match &cli.command {
            Command::Run(a) => Some(&a.formats),
            Command::Check(a) => Some(&a.formats),
            _ => None,
        };
        if let Some(fa) = fa {
            if let Some(f) = &fa.format {
                c.format.clone_from(f);
            }
            if let Some(m) = &fa.mappings {
                // --mappings DIR moves every mapping file: the formats, and
                // the identifier and task rules where DIR has them.
                c.formats = Some(recordbridge::adapt::formats_dir(m));
                for (name, slot) in [
                    ("identifiers.toml", &mut c.identifiers),
                    ("tasks.toml", &mut c.tasks),
                ] {
                    let f = m.join(name);
                    if f.is_file() {
                        *slot = Some(f);
                    }
                }
            }
        }
        c
    });
    let cfg = match loaded.and_then(|c| c.validate().map(|()| c)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("recordbridge: {e}");
            return ExitCode::from(2);
        }
    };
    ops::init_tracing(&cfg.log.format, &cfg.log.level);
    let result = match cli.command {
        Command::Run(a) => cli::run::run(cfg, a.dry_run).await,
        Command::Quarantine(QuarantineCmd::List { status, json, .. }) => {
            cli::quarantine::list(&cfg, status.as_deref(), json).await
        }
        Command::Quarantine(cmd) => cli::quarantine::review(&cfg, cmd).await,
        Command::Report(a) => cli::report::report(&cfg, &a).await,
        Command::Reconcile { json, .. } => cli::reconcile::reconcile(&cfg, json).await,
        Command::Check(a) if a.formats.mappings.is_some() || a.sample.is_some() => {
            return cli::check::check_formats(&cfg, a.sample.as_deref());
        }
        Command::Check(_) => return cli::check::show_config(&cfg),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("recordbridge: {e:#}");
            // A broker configuration problem (credentials, topology) is a
            // configuration error, like an invalid setting.
            if e.is::<recordbridge::source::amqp::Fatal>()
                || e.is::<recordbridge::adapt::FormatError>()
                || e.is::<recordbridge::config::SettingError>()
            {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
