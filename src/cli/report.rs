//! `report`: record completeness over a period (never any message text).

use std::path::PathBuf;

use clap::Args;
use recordbridge::config::Config;

use super::{open_ledger, usage};

#[derive(Args)]
pub struct ReportArgs {
    /// Ledger file.
    #[arg(long)]
    pub ledger: Option<PathBuf>,
    /// Events sent at or after this time (RFC 3339, or YYYY-MM-DD for midnight UTC).
    #[arg(long)]
    pub since: Option<String>,
    /// Events sent before this time (RFC 3339, or YYYY-MM-DD).
    #[arg(long)]
    pub until: Option<String>,
    /// html (self-contained page with charts), json or csv.
    #[arg(long, default_value = "json")]
    pub format: String,
    /// Write to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn parse_time(name: &str, s: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        .map_err(|_| {
            usage(format!(
                "--{name}: `{s}` is neither RFC 3339 nor YYYY-MM-DD"
            ))
        })
}

pub async fn report(cfg: &Config, a: &ReportArgs) -> anyhow::Result<()> {
    let since = a
        .since
        .as_deref()
        .map(|s| parse_time("since", s))
        .transpose()?;
    let until = a
        .until
        .as_deref()
        .map(|s| parse_time("until", s))
        .transpose()?;
    if !matches!(a.format.as_str(), "html" | "json" | "csv") {
        return Err(usage(format!(
            "--format: `{}` is not one of html, json, csv",
            a.format
        )));
    }
    if let (Some(s), Some(u)) = (since, until)
        && u <= s
    {
        return Err(usage("--until: must be after --since"));
    }
    let ledger = open_ledger(cfg).await?;
    let rows = ledger.report_rows(since, until).await?;
    let inputs = recordbridge::report::Inputs {
        rejected: ledger.reject_times(since, until).await?,
        ignored: ledger.ignored_times(since, until).await?,
    };
    ledger.close().await;
    let r = recordbridge::report::build(&rows, &inputs, since, until, chrono::Utc::now());
    let text = match a.format.as_str() {
        "html" => recordbridge::report::html::render(&r),
        "csv" => recordbridge::report::csv(&r),
        _ => serde_json::to_string_pretty(&r)? + "\n",
    };
    match &a.out {
        Some(p) => {
            std::fs::write(p, text).map_err(|e| anyhow::anyhow!("--out {}: {e}", p.display()))?
        }
        None => print!("{text}"),
    }
    Ok(())
}
