//! Configuration → the parts of a run: rules, ledger, sink, source, health.

use std::sync::{Arc, Mutex};

use anyhow::Context;
use tokio::sync::mpsc;
use tracing::info;

use crate::config::{Config, SettingError, SinkSpec, SourceSpec};
use crate::decide::Policy;
use crate::identify::Identify;
use crate::ledger::Ledger;
use crate::ops::Health;
use crate::sink::SinkProbe;
use crate::source::amqp::Broker;

use super::rejects::{RejectReport, Rejects};
use super::shutdown::shutdown_watch;
use super::*;

/// Load the identifier patterns named by the configuration (built in when
/// unset). A file that cannot be read or does not fit is a setting error.
pub fn load_identify(cfg: &Config) -> anyhow::Result<Identify> {
    let Some(path) = &cfg.identifiers else {
        return Ok(Identify::default());
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        SettingError(format!(
            "setting `identifiers`: cannot read {}: {e}",
            path.display()
        ))
    })?;
    Identify::from_toml(&text).map_err(|e| {
        SettingError(format!("setting `identifiers` ({}): {e}", path.display())).into()
    })
}

/// Load the task detection rules named by the configuration (built in when
/// unset). A file that cannot be read or does not fit is a setting error.
pub fn load_tasks(cfg: &Config) -> anyhow::Result<crate::decide::task::TaskRules> {
    let Some(path) = &cfg.tasks else {
        return Ok(crate::decide::task::TaskRules::builtin());
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        SettingError(format!(
            "setting `tasks`: cannot read {}: {e}",
            path.display()
        ))
    })?;
    crate::decide::task::TaskRules::from_toml(&text)
        .map_err(|e| SettingError(format!("setting `tasks` ({}): {e}", path.display())).into())
}

/// The exclusive lock of `run` on a SQLite ledger (`<ledger>.lock`), held
/// until the process ends; a second run is refused with what holds it.
fn lock_run(ledger: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let path = ledger.with_extension("lock");
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating ledger directory {}", dir.display()))?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(SettingError(format!(
            "ledger {}: another `recordbridge run` is using it (it holds {}); one run per ledger, or a PostgreSQL ledger for replicas",
            ledger.display(),
            path.display()
        ))
        .into()),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(anyhow::anyhow!("locking {}: {e}", path.display()))
        }
    }
}

impl Run {
    pub async fn new(cfg: Config, dry_run: bool) -> anyhow::Result<Self> {
        let stop = shutdown_watch()?;
        let identify = load_identify(&cfg)?;
        let formats = crate::adapt::Formats::for_config(cfg.formats.as_deref(), &cfg.format)?;
        let policy = Policy {
            hold_window: chrono::Duration::milliseconds(
                (cfg.hold_window_hours * 3_600_000.0) as i64,
            ),
            tasks: Arc::new(load_tasks(&cfg)?),
        };
        let sink = cfg.sink_spec().map_err(crate::config::SettingError)?;
        let ledger_path = cfg.ledger_path();
        let mut workers = 1;
        let mut reject_path = None;
        let on_postgres = crate::ledger::is_postgres(&ledger_path.to_string_lossy());
        if dry_run && on_postgres {
            anyhow::bail!(
                "--dry-run works on a copy of a SQLite ledger; with a PostgreSQL ledger it would change shared state"
            );
        }
        // One run per SQLite ledger: a second would decide the same events
        // again. PostgreSQL replicas share one ledger by partition leases.
        let run_lock = if dry_run || on_postgres {
            None
        } else {
            Some(lock_run(&ledger_path)?)
        };
        let (ledger, out, dry_dir) = if dry_run {
            // Continue from the real ledger's state without changing it: work on a copy.
            let tmp = tempfile::tempdir()?;
            let copy = tmp.path().join("ledger.db");
            if ledger_path.exists() {
                std::fs::copy(&ledger_path, &copy).context("copying ledger for dry run")?;
                for ext in ["db-wal", "db-shm"] {
                    let side = ledger_path.with_extension(ext);
                    if side.exists() {
                        std::fs::copy(&side, copy.with_extension(ext))?;
                    }
                }
            }
            (
                Ledger::open(&copy).await?,
                Output::DryRun(Mutex::new(std::io::BufWriter::new(std::io::stdout()))),
                Some(tmp),
            )
        } else {
            match &sink {
                SinkSpec::Dir(d) => reject_path = Some(d.join("rejected.ndjson")),
                SinkSpec::Fhir(_) => {
                    workers = cfg.fhir.concurrency;
                    reject_path = Some(ledger_path.with_extension("rejected.ndjson"));
                }
            }
            let out = Output::Write(Sink::open(&cfg)?);
            (Ledger::open(&ledger_path).await?, out, None)
        };
        let spec = cfg.source_spec().map_err(crate::config::SettingError)?;
        let probe = match &out {
            Output::Write(s) => s.probe(),
            Output::DryRun(_) => SinkProbe::Nothing,
        };
        let health = Arc::new(Health::new(probe));
        let mut health_task = None;
        let (input, source_name, broker) = match spec {
            SourceSpec::File(p) => (Input::File(Some(p.clone())), p.display().to_string(), None),
            SourceSpec::Stdin => (Input::File(None), "-".to_owned(), None),
            SourceSpec::Amqp(url) => {
                if dry_run {
                    anyhow::bail!(
                        "--dry-run reads a file or stdin; it never consumes from a queue (it would acknowledge messages it did not file)"
                    );
                }
                if cfg.health.listen != "off" {
                    let addr =
                        cfg.health.listen.parse().map_err(|_| {
                            anyhow::anyhow!("setting `health.listen`: not HOST:PORT")
                        })?;
                    let (bound, task) = crate::ops::serve_health(addr, health.clone()).await?;
                    info!(address = %bound, "health endpoints /healthz and /readyz listening");
                    health_task = Some(task);
                }
                let name = format!("amqp:{}", cfg.amqp.queue);
                match Broker::start(&url, &cfg.amqp, stop.clone()).await? {
                    Some((broker, rx)) => {
                        health.set_broker(broker.clone());
                        health.set_ledger(ledger.clone());
                        (Input::Amqp(rx), name, Some(broker))
                    }
                    // Stopped while waiting for the broker: an empty run.
                    None => (Input::Amqp(mpsc::channel(1).1), name, None),
                }
            }
        };
        if broker.is_some() {
            // Every thread of a queue goes through a worker, also for the
            // bundle directory (file names then follow commit order).
            workers = workers.max(1);
        }
        let outcomes = broker.is_some() && cfg.amqp.publish_outcomes;
        let (failed, _) = tokio::sync::watch::channel(false);
        let shared = Shared {
            cfg,
            formats,
            ledger,
            identify,
            policy,
            out,
            rejects: match &broker {
                Some(b) => Rejects::DeadLetters(b.clone()),
                None => Rejects::Report(Mutex::new(RejectReport {
                    path: reject_path,
                    file: None,
                })),
            },
            summary: Mutex::new(Summary::default()),
            source_name,
            broker,
            outcomes,
            health,
            failed,
        };
        Ok(Self {
            shared: Arc::new(shared),
            input,
            workers,
            stop,
            health_task,
            _dry_dir: dry_dir,
            _run_lock: run_lock,
        })
    }
}
