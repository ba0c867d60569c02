//! `check`: validate the configuration, the format mappings and sample events.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use recordbridge::config::Config;

use super::FormatArgs;

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub formats: FormatArgs,
    /// Sample events of the format (NDJSON, one per line): print the chat event v1 each becomes.
    #[arg(long, value_name = "FILE")]
    pub sample: Option<PathBuf>,
}

/// `check --mappings DIR [--sample FILE]`: every mapping file of the
/// directory is loaded and each error printed (file:line: field: problem);
/// then each sample line is adapted and printed as one JSON line:
/// `{"line":N,"event":{chat event v1}}`, `{"line":N,"ignored":{"id","reason"}}`
/// or `{"line":N,"error":"..."}`.
pub fn check_formats(cfg: &Config, sample: Option<&std::path::Path>) -> ExitCode {
    use recordbridge::adapt::{self, Adapted, Formats};
    let (formats, errors) = Formats::load_all(cfg.formats.as_deref());
    for e in &errors {
        eprintln!("recordbridge: mapping error: {e}");
    }
    if !errors.is_empty() {
        return ExitCode::from(2);
    }
    for m in formats.mappings() {
        eprintln!(
            "format `{}` (platform `{}`, {} rules): {} fits",
            m.name,
            m.platform(),
            m.rule_count(),
            m.file.display()
        );
    }
    let Some(sample) = sample else {
        return ExitCode::SUCCESS;
    };
    let Some(format) = formats.get(&cfg.format) else {
        eprintln!(
            "recordbridge: setting `format`: `{}` is not a known format (known: {})",
            cfg.format,
            formats.names().join(", ")
        );
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(sample) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("recordbridge: cannot read {}: {e}", sample.display());
            return ExitCode::from(2);
        }
    };
    let mut bad = 0usize;
    let mut out = std::io::stdout().lock();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let n = i + 1;
        let shown = match adapt::adapt(format, line, &cfg.platform) {
            Ok(Adapted::Event(e)) => serde_json::json!({"line": n, "event": e}),
            Ok(Adapted::Ignored { id, reason, .. }) => {
                serde_json::json!({"line": n, "ignored": {"id": id, "reason": reason}})
            }
            Err(e) => {
                bad += 1;
                serde_json::json!({"line": n, "error": e})
            }
        };
        if writeln!(out, "{shown}").is_err() {
            return ExitCode::FAILURE;
        }
    }
    if bad > 0 {
        eprintln!(
            "recordbridge: {bad} sample event(s) of {} do not map as format `{}`",
            sample.display(),
            cfg.format
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// `check` alone: the formats and the identifier and Task rules must load;
/// the configuration is printed with URLs' secrets redacted (secrets are never printed: only their source).
pub fn show_config(cfg: &Config) -> ExitCode {
    if let Err(e) = recordbridge::adapt::Formats::for_config(cfg.formats.as_deref(), &cfg.format) {
        eprintln!("recordbridge: {e}");
        return ExitCode::from(2);
    }
    // The identifier and Task rules `run` would load must load here too.
    let rules = recordbridge::pipeline::load_identify(cfg)
        .map(drop)
        .and_then(|()| recordbridge::pipeline::load_tasks(cfg).map(drop));
    if let Err(e) = rules {
        eprintln!("recordbridge: {e}");
        return ExitCode::from(2);
    }
    let mut shown = cfg.clone();
    shown.sink = shown.sink.as_deref().map(recordbridge::config::redact_url);
    shown.source = shown
        .source
        .as_deref()
        .map(recordbridge::config::redact_url);
    shown.ledger = shown
        .ledger
        .as_deref()
        .map(|l| PathBuf::from(recordbridge::config::redact_url(&l.to_string_lossy())));
    println!("{}", toml::to_string_pretty(&shown).unwrap_or_default());
    ExitCode::SUCCESS
}
