//! `run`: read chat events, decide, and write FHIR transaction Bundles.

use std::path::PathBuf;

use clap::Args;
use recordbridge::config::Config;
use recordbridge::pipeline;

use super::FormatArgs;

#[derive(Args)]
pub struct RunArgs {
    /// Event source: file:PATH, - (stdin), or amqp://USER:PASS@HOST:PORT/VHOST (a long-running consumer).
    #[arg(long)]
    pub source: Option<String>,
    /// Sink: dir:PATH (bundle files) or fhir:URL (a FHIR R4 server).
    #[arg(long)]
    pub sink: Option<String>,
    /// Ledger: a SQLite file (default: <bundle dir>/ledger.db) or postgres://USER@HOST/DB.
    #[arg(long)]
    pub ledger: Option<PathBuf>,
    /// Print one decision line per decision (ARCHITECTURE §6) to stdout and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub formats: FormatArgs,
}

/// Assemble the pipeline from the configuration and run it until the source
/// ends or a shutdown signal arrives.
pub async fn run(cfg: Config, dry_run: bool) -> anyhow::Result<()> {
    pipeline::Run::new(cfg, dry_run)
        .await?
        .run()
        .await
        .map(|_| ())
}
