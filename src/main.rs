//! `recordbridge` command line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use recordbridge::config::Config;
use recordbridge::ledger::Ledger;
use recordbridge::{ops, pipeline};

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

#[derive(Args)]
struct ReportArgs {
    /// Ledger file.
    #[arg(long)]
    ledger: Option<PathBuf>,
    /// Events sent at or after this time (RFC 3339, or YYYY-MM-DD for midnight UTC).
    #[arg(long)]
    since: Option<String>,
    /// Events sent before this time (RFC 3339, or YYYY-MM-DD).
    #[arg(long)]
    until: Option<String>,
    /// html (self-contained page with charts), json or csv.
    #[arg(long, default_value = "json")]
    format: String,
    /// Write to this file instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    /// Event source: file:PATH, - (stdin), or amqp://USER:PASS@HOST:PORT/VHOST (a long-running consumer).
    #[arg(long)]
    source: Option<String>,
    /// Sink: dir:PATH (bundle files) or fhir:URL (a FHIR R4 server).
    #[arg(long)]
    sink: Option<String>,
    /// Ledger: a SQLite file (default: <bundle dir>/ledger.db) or postgres://USER@HOST/DB.
    #[arg(long)]
    ledger: Option<PathBuf>,
    /// Print one decision line per decision (ARCHITECTURE §6) to stdout and write nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    formats: FormatArgs,
}

/// Which event format, and where its mapping files are.
#[derive(Args, Clone)]
struct FormatArgs {
    /// Format of the events: v1, or a mapping file's name (e.g. matrix, teams).
    #[arg(long)]
    format: Option<String>,
    /// Directory of the format mapping files (default mappings/formats); a
    /// directory with a `formats` folder (such as `mappings`) means that folder.
    #[arg(long, value_name = "DIR")]
    mappings: Option<PathBuf>,
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    formats: FormatArgs,
    /// Sample events of the format (NDJSON, one per line): print the chat event v1 each becomes.
    #[arg(long, value_name = "FILE")]
    sample: Option<PathBuf>,
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
        Command::Run(a) => match pipeline::Run::new(cfg, a.dry_run).await {
            Ok(r) => r.run().await.map(|_| ()),
            Err(e) => Err(e),
        },
        Command::Quarantine(QuarantineCmd::List { status, json, .. }) => {
            quarantine_list(&cfg, status.as_deref(), json).await
        }
        Command::Quarantine(cmd) => quarantine_review(&cfg, cmd).await,
        Command::Report(a) => report(&cfg, &a).await,
        Command::Reconcile { json, .. } => reconcile(&cfg, json).await,
        Command::Check(a) if a.formats.mappings.is_some() || a.sample.is_some() => {
            return check_formats(&cfg, a.sample.as_deref());
        }
        Command::Check(_) => {
            if let Err(e) =
                recordbridge::adapt::Formats::for_config(cfg.formats.as_deref(), &cfg.format)
            {
                eprintln!("recordbridge: {e}");
                return ExitCode::from(2);
            }
            let mut shown = cfg.clone();
            shown.source = shown
                .source
                .as_deref()
                .map(recordbridge::config::redact_url);
            shown.ledger = shown
                .ledger
                .as_deref()
                .map(|l| PathBuf::from(recordbridge::config::redact_url(&l.to_string_lossy())));
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

async fn quarantine_list(cfg: &Config, status: Option<&str>, json: bool) -> anyhow::Result<()> {
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

fn parse_time(name: &str, s: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        .map_err(|_| anyhow::anyhow!("--{name}: `{s}` is neither RFC 3339 nor YYYY-MM-DD"))
}

async fn report(cfg: &Config, a: &ReportArgs) -> anyhow::Result<()> {
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
        anyhow::bail!("--format: `{}` is not one of html, json, csv", a.format);
    }
    let ledger = open_ledger(cfg).await?;
    let rows = ledger.report_rows(since, until).await?;
    let rejects = ledger.reject_times(since, until).await?;
    ledger.close().await;
    let r = recordbridge::report::build(&rows, &rejects, since, until, chrono::Utc::now());
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

/// The configured ledger, which must exist already (a PostgreSQL URL is taken as is).
async fn open_ledger(cfg: &Config) -> anyhow::Result<Ledger> {
    let path = cfg.ledger_path();
    if !recordbridge::ledger::is_postgres(&path.to_string_lossy()) && !path.exists() {
        anyhow::bail!("no ledger at {} (use --ledger PATH)", path.display());
    }
    Ledger::open(&path).await
}

async fn quarantine_review(cfg: &Config, cmd: QuarantineCmd) -> anyhow::Result<()> {
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

async fn reconcile(cfg: &Config, json: bool) -> anyhow::Result<()> {
    let url = match cfg.sink_spec().map_err(anyhow::Error::msg)? {
        recordbridge::config::SinkSpec::Fhir(u) => u,
        recordbridge::config::SinkSpec::Dir(_) => anyhow::bail!("--sink: reconcile needs fhir:URL"),
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

/// `check --mappings DIR [--sample FILE]`: every mapping file of the
/// directory is loaded and each error printed (file:line: field: problem);
/// then each sample line is adapted and printed as one JSON line:
/// `{"line":N,"event":{chat event v1}}`, `{"line":N,"ignored":{"id","reason"}}`
/// or `{"line":N,"error":"..."}`.
fn check_formats(cfg: &Config, sample: Option<&std::path::Path>) -> ExitCode {
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
