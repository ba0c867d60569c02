//! One module per command; `main.rs` only parses the command line and
//! loads the configuration.

pub mod check;
pub mod quarantine;
pub mod reconcile;
pub mod report;
pub mod run;

use std::path::PathBuf;

use clap::Args;
use recordbridge::config::Config;
use recordbridge::ledger::Ledger;

/// Which event format, and where its mapping files are.
#[derive(Args, Clone)]
pub struct FormatArgs {
    /// Format of the events: v1, or a mapping file's name (e.g. matrix, teams).
    #[arg(long)]
    pub format: Option<String>,
    /// Directory of the format mapping files (default mappings/formats); a
    /// directory with a `formats` folder (such as `mappings`) means that folder.
    #[arg(long, value_name = "DIR")]
    pub mappings: Option<PathBuf>,
}

/// The configured ledger, which must exist already (a PostgreSQL URL is taken as is).
pub async fn open_ledger(cfg: &Config) -> anyhow::Result<Ledger> {
    let path = cfg.ledger_path();
    if !recordbridge::ledger::is_postgres(&path.to_string_lossy()) && !path.exists() {
        anyhow::bail!("no ledger at {} (use --ledger PATH)", path.display());
    }
    Ledger::open(&path).await
}

/// A command line that does not fit (a value of the wrong form, settings
/// that contradict each other): exit status 2, like an invalid setting.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    recordbridge::config::SettingError(message.into()).into()
}
