//! The imperative shell of a run: source → parse → dedup → identify → decide →
//! (resolve) → record → sink → commit.
//!
//! Events are routed to workers by thread key: one worker decides and writes
//! a thread's events in order, different threads run concurrently (bounded by
//! `fhir.concurrency` for the FHIR sink; one worker for the bundle directory,
//! so file names follow input order). An event is committed to the ledger only
//! after its writes succeeded, so a run stopped at any point (crash, signal,
//! FHIR server down beyond the retry limit) loses nothing: the next run over
//! the same input redoes the uncommitted events, and conditional creates make
//! the repeated writes change nothing.
//!
//! With the AMQP source the same loop runs as a long-lived consumer: each
//! delivery is acknowledged only after its outcome is committed (and its
//! outcome event confirmed by the broker); malformed deliveries are
//! dead-lettered with an `x-recordbridge-reason` header; a FHIR server that is
//! down stalls the affected threads (readiness goes false) instead of stopping
//! the bridge, and nothing is acknowledged until it is back.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::config::{Config, SettingError, SinkSpec, SourceSpec};
use crate::decide::{self, Decision, Outcome, Policy, reason};
use crate::event::{ChatEvent, EventKind};
use crate::identify::Identify;
use crate::identify::thread::ThreadState;
use crate::ledger::{Ledger, OutboxRow, Pending};
use crate::ops::{Health, SinkProbe};
use crate::record::{self, RecordCtx};
use crate::sink::WriteError;
use crate::sink::dir::DirSink;
use crate::sink::fhir::{FhirSink, Resolution};
use crate::source::amqp::{AmqpMsg, Broker};
use crate::source::{self, Delivery};

/// The sink could not be reached (after its own retries): in a file run the
/// run stops; with AMQP the event is retried until the sink is back.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkUnavailable(String);

/// What a run did, by count.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Summary {
    pub read: u64,
    pub rejected: u64,
    pub duplicates: u64,
    pub filed: u64,
    pub held: u64,
    pub quarantined: u64,
    pub ignored: u64,
    pub bundles: u64,
}

impl Summary {
    fn count(&mut self, d: &Decision) {
        match d.outcome {
            Outcome::Filed => self.filed += 1,
            Outcome::Held => self.held += 1,
            Outcome::Quarantined => self.quarantined += 1,
            Outcome::Ignored => self.ignored += 1,
            Outcome::Rejected => self.rejected += 1,
        }
    }
}

enum Output {
    /// Print decision lines, write nothing.
    DryRun(Mutex<std::io::BufWriter<std::io::Stdout>>),
    Dir(DirSink),
    Fhir(Box<FhirSink>),
}

/// Reject report: one JSON line per malformed input, with its position, reason and raw content.
struct RejectReport {
    path: Option<PathBuf>,
    file: Option<std::fs::File>,
}

impl RejectReport {
    fn write(
        &mut self,
        source: &str,
        line: u64,
        reason: &str,
        raw: Option<&str>,
    ) -> anyhow::Result<()> {
        let rec = serde_json::json!({"source": source, "line": line, "outcome": "rejected", "reason": reason, "raw": raw});
        self.append(&rec)
    }

    /// A parsed event the FHIR server refused: kept whole so it can be corrected and replayed.
    fn write_event(&mut self, source: &str, ev: &ChatEvent, reason: &str) -> anyhow::Result<()> {
        let raw = serde_json::to_string(ev)?;
        let rec = serde_json::json!({"source": source, "event_id": ev.id, "outcome": "rejected", "reason": reason, "raw": raw});
        self.append(&rec)
    }

    fn append(&mut self, rec: &serde_json::Value) -> anyhow::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let f = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening reject report {}", path.display()))?,
            ),
        };
        writeln!(f, "{rec}")?;
        f.sync_data()?;
        Ok(())
    }
}

struct Shared {
    cfg: Config,
    /// The source formats (`v1` and the mapping files).
    formats: crate::adapt::Formats,
    ledger: Ledger,
    identify: Identify,
    policy: Policy,
    out: Output,
    rejects: Mutex<RejectReport>,
    summary: Mutex<Summary>,
    source_name: String,
    /// The broker, when consuming from AMQP.
    broker: Option<Arc<Broker>>,
    /// Publish outcome events (AMQP source with `amqp.publish_outcomes`).
    outcomes: bool,
    health: Arc<Health>,
    /// Set when a worker stops on an error, so the run stops too.
    failed: tokio::sync::watch::Sender<bool>,
}

enum Input {
    /// The source file; `None` reads stdin.
    File(Option<PathBuf>),
    Amqp(mpsc::Receiver<Delivery>),
}

/// A run over a file, stdin or an AMQP queue.
pub struct Run {
    shared: Arc<Shared>,
    input: Input,
    workers: usize,
    /// Turns `true` on SIGTERM/SIGINT.
    stop: tokio::sync::watch::Receiver<bool>,
    health_task: Option<tokio::task::JoinHandle<()>>,
    _dry_dir: Option<tempfile::TempDir>,
}

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
        let sink = cfg.sink_spec().map_err(anyhow::Error::msg)?;
        let ledger_path = cfg.ledger_path();
        let mut workers = 1;
        let mut reject_path = None;
        let on_postgres = crate::ledger::is_postgres(&ledger_path.to_string_lossy());
        if dry_run && on_postgres {
            anyhow::bail!(
                "--dry-run works on a copy of a SQLite ledger; with a PostgreSQL ledger it would change shared state"
            );
        }
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
            let out = match &sink {
                SinkSpec::Dir(d) => {
                    reject_path = Some(d.join("rejected.ndjson"));
                    Output::Dir(DirSink::open(d)?)
                }
                SinkSpec::Fhir(url) => {
                    workers = cfg.fhir.concurrency;
                    reject_path = Some(ledger_path.with_extension("rejected.ndjson"));
                    Output::Fhir(Box::new(FhirSink::new(url, &cfg.fhir)?))
                }
            };
            (Ledger::open(&ledger_path).await?, out, None)
        };
        let spec = cfg.source_spec().map_err(anyhow::Error::msg)?;
        let probe = match &sink {
            SinkSpec::Dir(d) => SinkProbe::Dir(d.clone()),
            SinkSpec::Fhir(u) => SinkProbe::Fhir(u.clone()),
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
            rejects: Mutex::new(RejectReport {
                path: reject_path,
                file: None,
            }),
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
        })
    }

    /// Process the whole source (or until interrupted, finishing in-flight
    /// events). With AMQP: until SIGTERM/SIGINT, or a fatal error.
    pub async fn run(self) -> anyhow::Result<Summary> {
        let sh = self.shared.clone();
        let mut rx = match self.input {
            Input::File(path) => source::file::spawn(path.as_deref())?,
            Input::Amqp(rx) => rx,
        };
        if sh.outcomes {
            flush_outbox(&sh).await?;
        }
        let swept = sweep(&sh, Utc::now()).await?;
        publish_outcomes(&sh, swept).await?;

        let mut recent = RecentThreads::new(RECENT_THREADS);
        let leases = match &sh.broker {
            Some(b) if sh.cfg.amqp.partitions > 0 => Some(tokio::spawn(manage_partitions(
                sh.clone(),
                b.clone(),
                replica_id(),
            ))),
            _ => None,
        };
        let mut senders = Vec::with_capacity(self.workers);
        let mut handles = Vec::with_capacity(self.workers);
        for _ in 0..self.workers {
            let (tx, mut wrx) = mpsc::channel::<Work>(64);
            senders.push(tx);
            let sh = sh.clone();
            handles.push(tokio::spawn(async move {
                while let Some(work) = wrx.recv().await {
                    let done = match work {
                        Work::Event(ev, key, msg) => process(&sh, *ev, &key, msg).await,
                        Work::Expire(key) => expire_thread(&sh, &key, Utc::now())
                            .await
                            .map(|p| (p, true)),
                    };
                    // `go_on == false`: stopping with the sink unreachable; leave the
                    // rest queued (unacknowledged, so the broker redelivers it).
                    let done = match done {
                        Ok((pending, go_on)) => publish_outcomes(&sh, pending)
                            .await
                            .map(|published| published && go_on),
                        Err(e) => Err(e),
                    };
                    let stop = match done {
                        Ok(go_on) => !go_on,
                        Err(e) => {
                            // Stop taking work; what is uncommitted is redone
                            // (next run, or redelivered by the broker).
                            wrx.close();
                            sh.failed.send_replace(true);
                            return Err(e);
                        }
                    };
                    if stop {
                        break;
                    }
                }
                Ok::<(), anyhow::Error>(())
            }));
        }

        // A stop that came during start-up resolves `shutdown` at once.
        let mut interrupted = false;
        let mut stop = self.stop.clone();
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        tokio::pin!(shutdown);
        let mut failed = sh.failed.subscribe();
        // Held content expires during long runs too (a queue or a stdin stream
        // may run for weeks); each expiry goes to the worker that owns the
        // thread, so it never races its events.
        let mut sweep_timer =
            tokio::time::interval(Duration::from_secs(sh.cfg.sweep_interval_secs));
        sweep_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        sweep_timer.tick().await;
        loop {
            let d = tokio::select! {
                d = rx.recv() => d,
                _ = sweep_timer.tick() => {
                    // Partitioned: one replica sweeps (the holder of partition 0).
                    if sh.cfg.amqp.partitions > 0
                        && !sh.broker.as_ref().is_some_and(|b| b.consumes(0))
                    {
                        continue;
                    }
                    let mut failed = false;
                    for key in threads_to_sweep(&sh, Utc::now()).await? {
                        let idx = worker_of(&key, senders.len());
                        failed |= senders[idx].send(Work::Expire(key)).await.is_err();
                    }
                    if failed { break }
                    continue;
                }
                _ = failed.wait_for(|f| *f) => break,
                () = &mut shutdown, if !interrupted => {
                    interrupted = true;
                    match &sh.broker {
                        // Stop consuming, but take in what the broker has
                        // already sent: the channel ends when it is drained.
                        Some(b) => { b.stop_consuming().await; continue }
                        None => None,
                    }
                }
            };
            let Some(d) = d else { break };
            sh.summary
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .read += 1;
            let Some((ev, key, msg)) = dispatch(&sh, &mut recent, d).await? else {
                continue;
            };
            if matches!(sh.out, Output::DryRun(_)) {
                // A dry run shows its decision lines in input order: each
                // event is decided before the next is read (ignored and
                // rejected lines are written as they are read).
                let (pending, _) = process(&sh, ev, &key, msg.map(Box::new)).await?;
                publish_outcomes(&sh, pending).await?;
                continue;
            }
            let idx = worker_of(&key, senders.len());
            if senders[idx]
                .send(Work::Event(Box::new(ev), key, msg.map(Box::new)))
                .await
                .is_err()
            {
                break; // that worker failed; its error is reported below
            }
        }
        // Stop consuming (if not yet); what is queued to the workers is
        // finished. After a worker failure the rest goes back to the queue at close.
        if let Some(b) = &sh.broker {
            b.stop_consuming().await;
        }
        drop(rx);
        drop(senders);
        let mut first_err = None;
        for h in handles {
            if let Err(e) = h.await.context("worker panicked")? {
                first_err.get_or_insert(e);
            }
        }
        if let Some(t) = self.health_task {
            t.abort();
        }
        if let Some(e) = first_err {
            if let Some(b) = &sh.broker {
                b.close().await;
            }
            sh.ledger.close().await;
            return Err(e);
        }
        if !interrupted || sh.broker.is_none() {
            let swept = sweep(&sh, Utc::now()).await?;
            publish_outcomes(&sh, swept).await?;
        }
        if let Some(b) = &sh.broker {
            b.close().await;
        }
        if let Some(l) = leases {
            // Give the partitions back at once (the others need not wait
            // for the leases to expire).
            if let Ok(me) = l.await {
                let all: Vec<u16> = (0..sh.cfg.amqp.partitions).collect();
                if let Err(e) = sh.ledger.release_partitions(&me, &all, true).await {
                    warn!(error = %e, "could not give the partition leases back; they expire");
                }
            }
        }
        if let Output::DryRun(w) = &sh.out {
            w.lock().unwrap_or_else(PoisonError::into_inner).flush()?;
        }
        sh.ledger.close().await;
        let s = sh
            .summary
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        info!(
            read = s.read,
            rejected = s.rejected,
            duplicates = s.duplicates,
            filed = s.filed,
            held = s.held,
            quarantined = s.quarantined,
            ignored = s.ignored,
            bundles = s.bundles,
            interrupted,
            "run finished"
        );
        Ok(s)
    }
}

/// SIGTERM or SIGINT, as a watch that turns `true`. The handlers are
/// installed before this returns, so a signal at any point of the start-up
/// (waiting for the broker, say) is a graceful stop, not a kill.
fn shutdown_watch() -> anyhow::Result<tokio::sync::watch::Receiver<bool>> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
        tokio::spawn(async move {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            info!("shutdown requested: finishing events in flight");
            tx.send_replace(true);
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        info!("shutdown requested: finishing events in flight");
        tx.send_replace(true);
    });
    Ok(rx)
}

fn worker_of(key: &str, n: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % n as u64) as usize
}

/// The format of a delivery: its format header (AMQP), else the setting `format`.
fn format_of<'a>(sh: &'a Shared, d: &Delivery) -> Result<crate::adapt::Format<'a>, String> {
    let named = d
        .amqp
        .as_ref()
        .and_then(|m| m.header_text(&sh.cfg.amqp.format_header));
    let name = named.as_deref().unwrap_or(&sh.cfg.format);
    sh.formats.get(name).ok_or_else(|| {
        let shown: String = name.chars().take(64).collect();
        format!(
            "header `{}`: `{shown}` is not a known format (known: {})",
            sh.cfg.amqp.format_header,
            sh.formats.names().join(", ")
        )
    })
}

/// Adapt a delivery to chat event v1 and find its thread; malformed input is
/// rejected and events that are not chat (a platform's state or system
/// events) are ignored here.
async fn dispatch(
    sh: &Shared,
    recent: &mut RecentThreads,
    d: Delivery,
) -> anyhow::Result<Option<(ChatEvent, String, Option<AmqpMsg>)>> {
    let adapted = d.body.as_deref().map_err(|e| e.clone()).and_then(|s| {
        let format = format_of(sh, &d)?;
        crate::adapt::adapt(format, s, &sh.cfg.platform)
    });
    match adapted {
        Ok(crate::adapt::Adapted::Event(ev)) => {
            let key = thread_key(sh, recent, &ev).await?;
            Ok(Some((*ev, key, d.amqp)))
        }
        Ok(crate::adapt::Adapted::Ignored {
            id,
            platform,
            reason,
            event_type,
        }) => {
            let what = (id.as_deref(), &platform[..], event_type.as_deref());
            ignore(sh, &d, what, &reason, Utc::now()).await?;
            Ok(None)
        }
        Err(reason) => {
            reject(sh, &d, &reason, Utc::now()).await?;
            Ok(None)
        }
    }
}

/// The reason a mapping gives an end-to-end encrypted event (`matrix.toml`).
pub const ENCRYPTED: &str = "encrypted";

/// A platform event that is not a chat message (room state, a system
/// message, an event type no rule maps): decided `ignored` with the mapping's
/// reason. Nothing is filed or dead-lettered; with AMQP an outcome event is
/// published and the message acknowledged.
async fn ignore(
    sh: &Shared,
    d: &Delivery,
    (id, platform, event_type): (Option<&str>, &str, Option<&str>),
    why: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    sh.summary
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .ignored += 1;
    // The event type is a checked token (mapping.rs), never content.
    debug!(line = d.seq, source = %sh.source_name, platform, event_type, reason = why, "ignored a platform event that is not a chat message");
    crate::ops::metrics().decided("ignored", Some(why));
    if why == ENCRYPTED {
        crate::ops::metrics()
            .encrypted
            .get_or_create(&vec![("platform".to_owned(), platform.to_owned())])
            .inc();
        warn!(line = d.seq, source = %sh.source_name, platform, "an end-to-end encrypted event: the bridge cannot read it, so nothing of its room reaches the record");
    }
    if let Output::DryRun(w) = &sh.out {
        let line = serde_json::json!({"event_id": id, "outcome": "ignored", "patient": null,
            "identifiers": [], "task": null, "reason": why});
        writeln!(w.lock().unwrap_or_else(PoisonError::into_inner), "{line}")?;
    }
    if let (Some(b), Some(m)) = (&sh.broker, &d.amqp) {
        let payload = serde_json::json!({
            "event_id": id, "platform": platform, "room": null, "thread": null,
            "outcome": "ignored", "reason": why, "patient": null, "resources": [],
            "decided_at": ts(now),
        });
        if !publish_direct(sh, b, &format!("ignored.{platform}"), &payload, id).await {
            return Ok(());
        }
        b.ack(m).await;
    }
    Ok(())
}

/// Publish an outcome event that has no ledger row (rejected or ignored
/// deliveries: they are acknowledged only after this). `false`: not
/// published; the delivery stays unacknowledged and comes back.
async fn publish_direct(
    sh: &Shared,
    b: &Broker,
    routing_key: &str,
    payload: &serde_json::Value,
    event_id: Option<&str>,
) -> bool {
    if !sh.outcomes {
        return true;
    }
    match b
        .publish(
            &b.config().outcomes_exchange,
            routing_key,
            payload.to_string().as_bytes(),
            outcome_props(event_id),
        )
        .await
    {
        Ok(_) => true,
        Err(e) => {
            warn!(error = %e, routing_key, "outcome event not published; the delivery will be redelivered");
            false
        }
    }
}

async fn reject(sh: &Shared, d: &Delivery, why: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
    sh.summary
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .rejected += 1;
    warn!(line = d.seq, source = %sh.source_name, reason = why, "rejected malformed event");
    crate::ops::metrics().decided("rejected", Some(reason::MALFORMED));
    let id_of = || {
        d.body
            .as_ref()
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
    };
    if let Output::DryRun(w) = &sh.out {
        let id = id_of().and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned));
        let line = serde_json::json!({"event_id": id, "outcome": "rejected", "patient": null,
            "identifiers": [], "task": null, "reason": reason::MALFORMED});
        writeln!(w.lock().unwrap_or_else(PoisonError::into_inner), "{line}")?;
    } else if let (Some(b), Some(m)) = (&sh.broker, &d.amqp) {
        // The dead-letter queue is the reject report of a queue: the message
        // goes there unchanged, with the reason in a header.
        let body = match (&d.body, &m.raw_invalid) {
            (Ok(s), _) => s.as_bytes(),
            (Err(_), Some(raw)) => raw.as_slice(),
            (Err(_), None) => &[],
        };
        if let Err(e) = b
            .dead_letter(&m.routing_key, &m.properties, body, why)
            .await
        {
            // Not acknowledged: it comes back after a reconnect.
            warn!(error = %e, "could not dead-letter a malformed delivery; it will be redelivered");
            return Ok(());
        }
    } else {
        sh.rejects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(&sh.source_name, d.seq, why, d.body.as_deref().ok())?;
    }
    sh.ledger
        .record_reject(&format!("{}:{}", sh.source_name, d.seq), why, now)
        .await?;
    if let (Some(b), Some(m)) = (&sh.broker, &d.amqp) {
        let v = id_of();
        let field = |k: &str| {
            v.as_ref()
                .and_then(|v| v.get(k))
                .and_then(|x| x.as_str())
                .filter(|x| !x.is_empty() && x.len() <= 256)
                .map(str::to_owned)
        };
        let platform = field("platform").unwrap_or_else(|| sh.cfg.platform.clone());
        let payload = serde_json::json!({
            "event_id": field("id"), "platform": platform, "room": field("room"),
            "thread": field("thread"), "outcome": "rejected", "reason": reason::MALFORMED,
            "detail": why, "patient": null, "resources": [], "decided_at": ts(now),
        });
        let rk = format!("rejected.{platform}");
        if !publish_direct(sh, b, &rk, &payload, field("id").as_deref()).await {
            return Ok(());
        }
        b.ack(m).await;
    }
    Ok(())
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn outcome_props(event_id: Option<&str>) -> lapin::BasicProperties {
    let p = lapin::BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_type("recordbridge.outcome.v1".into());
    match event_id {
        Some(id) => p.with_message_id(id.into()),
        None => p,
    }
}

/// Publish outcome events from the outbox (broker-confirmed), then forget
/// them. `Ok(false)`: abandoned because the bridge is stopping while the broker
/// is away; they stay in the outbox and are published at the next start.
async fn publish_outcomes(sh: &Shared, pending: Vec<Pending>) -> anyhow::Result<bool> {
    let Some(b) = sh.broker.as_ref().filter(|_| sh.outcomes) else {
        return Ok(true);
    };
    let mut done = Vec::with_capacity(pending.len());
    let mut all = true;
    for p in &pending {
        if let Err(e) = b
            .publish(
                &b.config().outcomes_exchange,
                &p.routing_key,
                p.payload.as_bytes(),
                outcome_props(Some(&p.event_id)),
            )
            .await
        {
            warn!(error = %e, "outcome events kept in the outbox for the next start");
            all = false;
            break;
        }
        done.push(p.seq);
    }
    sh.ledger.published(&done).await?;
    Ok(all)
}

/// Publish what a crash left in the outbox.
async fn flush_outbox(sh: &Shared) -> anyhow::Result<()> {
    loop {
        let pending = sh.ledger.pending_outcomes(500).await?;
        if pending.is_empty() {
            return Ok(());
        }
        info!(
            count = pending.len(),
            "publishing outcome events left by an earlier run"
        );
        if !publish_outcomes(sh, pending).await? {
            return Ok(());
        }
    }
}

/// The conversation (thread) an event belongs to. An edit, redaction or
/// reaction goes to its target's thread: platforms such as Matrix and Teams
/// name the target, not the thread. A reply outside a thread goes to the
/// conversation of the message it answers, in the same room (ARCHITECTURE §4
/// rule 2). The target may still be in flight (dispatched, not yet
/// committed), so recently dispatched events are looked up first, then the
/// ledger.
async fn thread_key(
    sh: &Shared,
    recent: &mut RecentThreads,
    ev: &ChatEvent,
) -> anyhow::Result<String> {
    let of = match (&ev.kind, &ev.target) {
        (EventKind::Message, _) if ev.thread.is_none() => ev.reply_to.as_ref(),
        (EventKind::Message, _) | (_, None) => None,
        (_, Some(t)) => Some(t),
    };
    let key = match of {
        None => None,
        Some(t) => match recent.get(&ev.platform, t) {
            Some(k) => Some(k.to_owned()),
            None => sh.ledger.thread_of(&ev.platform, t).await?,
        },
    };
    // A reply joins its target's conversation only within the same room.
    let same_room = crate::event::thread_key(&ev.platform, &ev.room, "");
    let key = key
        .filter(|k| ev.kind != EventKind::Message || k.starts_with(&same_room))
        .unwrap_or_else(|| match (&ev.kind, &ev.thread, &ev.target) {
            // An edit, redaction or reaction of a message never seen: the
            // thread the message would be in (an edit first seen is that
            // message, see `first_seen`).
            (EventKind::Message, ..) | (_, Some(_), _) | (_, None, None) => ev.thread_key(),
            (_, None, Some(t)) => crate::event::thread_key(&ev.platform, &ev.room, t),
        });
    recent.insert(&ev.platform, &ev.id, &key);
    Ok(key)
}

/// This replica's name in the partition leases: the host name (a pod's
/// name in Kubernetes), the process id and a random suffix.
fn replica_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &suffix[..6])
}

/// Partitioned consumption: heartbeat and hold this replica's fair share of
/// partition leases (ledger), and consume exactly the partitions held
/// (broker). Ends when the broker stops; returns the replica id.
async fn manage_partitions(sh: Arc<Shared>, broker: Arc<Broker>, me: String) -> String {
    let n = sh.cfg.amqp.partitions;
    let lease = chrono::Duration::seconds(sh.cfg.amqp.lease_secs as i64);
    let every = Duration::from_millis((sh.cfg.amqp.lease_secs * 1000 / 3).max(500));
    info!(replica = %me, partitions = n, lease_secs = sh.cfg.amqp.lease_secs, "partitioned consumption");
    // Announce first, so that replicas starting together see each other
    // before they claim their shares.
    if let Err(e) = sh
        .ledger
        .lease_partitions(&me, n, lease, false, Utc::now())
        .await
    {
        warn!(error = %e, "partition leases: heartbeat failed");
    }
    let mut held: Vec<u16> = Vec::new();
    let mut seeded = false;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = broker.stopped() => break,
        }
        if broker.stopping() {
            break;
        }
        // Without the broker, leases are not renewed: they expire and the
        // other replicas take the partitions over.
        if !broker.is_connected() {
            continue;
        }
        // The lease rows, once (retried while the ledger is unreachable).
        if !seeded {
            if let Err(e) = sh.ledger.init_partitions(n).await {
                warn!(error = %e, "partition leases: cannot create the lease rows");
                continue;
            }
            seeded = true;
        }
        let l = match sh
            .ledger
            .lease_partitions(&me, n, lease, true, Utc::now())
            .await
        {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "partition leases: heartbeat failed");
                continue;
            }
        };
        let want: Vec<u16> = l.owned.iter().take(l.share).copied().collect();
        let consumed = broker.set_partitions(&want).await;
        let give_back: Vec<u16> = l
            .owned
            .iter()
            .filter(|p| !want.contains(p) && !consumed.contains(p))
            .copied()
            .collect();
        if !give_back.is_empty()
            && let Err(e) = sh.ledger.release_partitions(&me, &give_back, false).await
        {
            warn!(error = %e, "partition leases: release failed");
        }
        if consumed != held {
            info!(replica = %me, live_replicas = l.live, share = l.share, partitions = ?consumed, "partitions consumed");
            held = consumed;
        }
    }
    me
}

/// How many dispatched events' threads are remembered in memory (about
/// 10 MB at most); in flight at once are at most the worker queues (64 each).
const RECENT_THREADS: usize = 65_536;

/// Thread keys of the most recently dispatched events, bounded (oldest out
/// first). It only has to cover events not yet in the ledger, which the
/// bounded worker queues keep far below the capacity.
pub(crate) struct RecentThreads {
    map: HashMap<(String, String), String>,
    order: std::collections::VecDeque<(String, String)>,
    cap: usize,
}

impl RecentThreads {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: std::collections::VecDeque::new(),
            cap: cap.max(1),
        }
    }

    fn get(&self, platform: &str, id: &str) -> Option<&str> {
        self.map
            .get(&(platform.to_owned(), id.to_owned()))
            .map(String::as_str)
    }

    fn insert(&mut self, platform: &str, id: &str, key: &str) {
        let k = (platform.to_owned(), id.to_owned());
        if self.map.insert(k.clone(), key.to_owned()).is_none() {
            self.order.push_back(k);
            while self.order.len() > self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }
}

/// Process one event to a durable outcome, then acknowledge its delivery.
/// Returns the outcome events to publish and whether to acknowledge. With AMQP,
/// an unreachable sink is waited out (the thread stalls, readiness goes false).
async fn process(
    sh: &Shared,
    ev: ChatEvent,
    key: &str,
    msg: Option<Box<AmqpMsg>>,
) -> anyhow::Result<(Vec<Pending>, bool)> {
    let Some(b) = &sh.broker else {
        return one(sh, ev, key).await.map(|p| (p, true));
    };
    let mut wait = Duration::from_millis(sh.cfg.fhir.backoff_initial_ms);
    let max = Duration::from_millis(sh.cfg.fhir.backoff_max_ms);
    let pending = loop {
        match one(sh, ev.clone(), key).await {
            Ok(p) => {
                sh.health.stalled.store(false, Ordering::SeqCst);
                break p;
            }
            Err(e) if e.is::<SinkUnavailable>() => {
                sh.health.stalled.store(true, Ordering::SeqCst);
                if b.stopping() {
                    // Left unacknowledged: the broker redelivers it.
                    return Ok((Vec::new(), false));
                }
                warn!(event_id = %ev.id, thread = key, retry_in_ms = wait.as_millis() as u64, error = %e, "sink unavailable; event waits (not acknowledged)");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = b.stopped() => {}
                }
                wait = (wait * 2).min(max);
            }
            Err(e) => return Err(e),
        }
    };
    // Outcome events first (confirmed), then the acknowledgement: a crash in
    // between leaves the outcome in the outbox and the delivery unacknowledged.
    if !publish_outcomes(sh, pending).await? {
        return Ok((Vec::new(), false));
    }
    if let Some(m) = &msg {
        b.ack(m).await;
    }
    Ok((Vec::new(), true))
}

/// Decide, write and commit one event. Returns its outcome events to publish.
async fn one(sh: &Shared, ev: ChatEvent, key: &str) -> anyhow::Result<Vec<Pending>> {
    if sh.ledger.seen(&ev.platform, &ev.id).await?.is_some() {
        sh.summary
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .duplicates += 1;
        debug!(event_id = %ev.id, "duplicate event: already decided");
        // A crash may have come between its commit and its outcome event.
        return if sh.outcomes {
            sh.ledger.pending_outcomes_of(&ev.platform, &ev.id).await
        } else {
            Ok(Vec::new())
        };
    }
    let now = Utc::now();
    let state = sh.ledger.load_thread(key).await?;
    let ev = first_seen(sh, ev, &state).await?;
    let found = sh.identify.find(&ev);
    let step = decide::decide(state, ev, found, now, &sh.policy);
    apply(sh, key, step, now).await
}

/// An edit of a message the bridge has never seen is that message, with its
/// current content: Microsoft Graph delta queries, list calls and `updated`
/// notifications deliver a message already edited, and a Matrix
/// replacement carries the whole new content. It becomes the message (its
/// id is the target's), so a later delivery of the original is a duplicate
/// and later edits find it. A target the bridge has decided (filed,
/// quarantined, ignored) or holds is never replaced this way.
async fn first_seen(sh: &Shared, ev: ChatEvent, state: &ThreadState) -> anyhow::Result<ChatEvent> {
    let Some(target) = ev.target.as_deref().filter(|_| ev.kind == EventKind::Edit) else {
        return Ok(ev);
    };
    let known = state.filed.contains_key(target)
        || state.held.iter().any(|h| h.event.id == target)
        || sh.ledger.seen(&ev.platform, target).await?.is_some();
    if known {
        return Ok(ev);
    }
    debug!(event_id = %ev.id, "edit of a message never seen: decided as the message");
    let mut m = ev;
    m.id = m.target.take().unwrap_or_default();
    m.kind = EventKind::Message;
    Ok(m)
}

/// Write a step's decisions in order, then commit them with the new state.
async fn apply(
    sh: &Shared,
    key: &str,
    mut step: decide::Step,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Pending>> {
    let mut outbox = Vec::new();
    for d in &mut step.decisions {
        let mut resources = Vec::new();
        if d.outcome == Outcome::Filed {
            resources = write(sh, d, now).await?;
            if d.outcome != Outcome::Filed {
                step.state.unfile(&d.event.id);
            }
            if d.outcome == Outcome::Rejected {
                let why = d.reason.as_deref().unwrap_or("rejected");
                match &sh.broker {
                    Some(b) => {
                        let body = serde_json::to_vec(&d.event)?;
                        let props = lapin::BasicProperties::default()
                            .with_content_type("application/json".into())
                            .with_message_id(d.event.id.as_str().into());
                        // Like the sink: the broker away at shutdown leaves the
                        // event uncommitted and unacknowledged, to be redone.
                        b.dead_letter(&d.event.platform, &props, &body, why)
                            .await
                            .map_err(|e| SinkUnavailable(e.to_string()))?;
                    }
                    None => sh
                        .rejects
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .write_event(&sh.source_name, &d.event, why)?,
                }
            }
        }
        debug!(event_id = %d.event.id, thread = key, outcome = d.outcome.as_str(), reason = d.reason.as_deref(), "decided");
        if let Output::DryRun(w) = &sh.out {
            let mut w = w.lock().unwrap_or_else(PoisonError::into_inner);
            serde_json::to_writer(&mut *w, &d.line())?;
            w.write_all(b"\n")?;
        }
        if sh.outcomes {
            outbox.push(outcome_row(d, resources, now));
        }
    }
    let pending = sh
        .ledger
        .commit(key, &step.state, &step.decisions, &outbox, now)
        .await?;
    let m = crate::ops::metrics();
    let mut s = sh.summary.lock().unwrap_or_else(PoisonError::into_inner);
    for d in &step.decisions {
        s.count(d);
        m.decided(d.outcome.as_str(), d.reason.as_deref());
        let lag = (now - d.event.sent_at.with_timezone(&Utc)).num_milliseconds() as f64 / 1000.0;
        m.event_lag.observe(lag.max(0.0));
    }
    Ok(pending)
}

/// The outcome event of a decision (ARCHITECTURE §8): no message text.
fn outcome_row(d: &Decision, resources: Vec<String>, now: DateTime<Utc>) -> OutboxRow {
    let e = &d.event;
    let payload = serde_json::json!({
        "event_id": e.id,
        "platform": e.platform,
        "room": e.room,
        "thread": e.thread.as_deref().unwrap_or(&e.id),
        "outcome": d.outcome.as_str(),
        "reason": d.reason,
        "patient": d.patient,
        "resources": resources,
        "decided_at": ts(now),
    });
    OutboxRow {
        platform: e.platform.clone(),
        event_id: e.id.clone(),
        routing_key: format!("{}.{}", d.outcome.as_str(), e.platform),
        payload: payload.to_string(),
    }
}

/// Write one filed decision; may turn it into a quarantine (rule 7) or a reject (4xx).
/// Returns the Communication/Task resources written (for the outcome event).
async fn write(sh: &Shared, d: &mut Decision, now: DateTime<Utc>) -> anyhow::Result<Vec<String>> {
    let device = &sh.cfg.device;
    match &sh.out {
        Output::DryRun(_) => Ok(Vec::new()),
        Output::Dir(sink) => {
            let ctx = RecordCtx {
                now,
                patient_ref: None,
                device,
            };
            let Some(b) = record::bundle(d, &ctx) else {
                return Ok(Vec::new());
            };
            let t = std::time::Instant::now();
            sink.write(&serde_json::to_vec(&b)?)
                .map_err(|e| anyhow::anyhow!("bundle directory sink failed: {e}"))?;
            crate::ops::metrics()
                .sink_seconds
                .observe(t.elapsed().as_secs_f64());
            sh.summary
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .bundles += 1;
            // No server ids in a bundle file: name the resource by its identifier.
            let e = &d.event;
            let mut res = match &d.write {
                Some(decide::Write::Redact { target, .. } | decide::Write::Edit { target, .. }) => {
                    vec![record::communication_ref(&e.platform, target)]
                }
                Some(decide::Write::TaskOnly) => Vec::new(),
                _ => vec![record::communication_ref(&e.platform, &e.id)],
            };
            if let Some(t) = &d.task {
                res.push(format!(
                    "Task/{}",
                    record::task::task_id(&e.platform, &t.request_id)
                ));
            }
            Ok(res)
        }
        Output::Fhir(sink) => {
            let mut patient_ref = None;
            if sh.cfg.fhir.resolve_patients {
                let Some(p) = d.patient.clone() else {
                    return Ok(Vec::new());
                };
                match sink.resolve(&p).await {
                    Ok(Resolution::Found(r)) => patient_ref = Some(r),
                    Ok(Resolution::Unknown) => {
                        quarantine(d, reason::UNKNOWN_PATIENT);
                        return Ok(Vec::new());
                    }
                    Ok(Resolution::Ambiguous) => {
                        quarantine(d, reason::AMBIGUOUS_PATIENT);
                        return Ok(Vec::new());
                    }
                    Err(e) => return fail(d, e).map(|()| Vec::new()),
                }
                // The patient's second identifier written beside the first
                // (pairing) must be the same Patient's, or not known at all.
                let others: Vec<_> = d.identifiers.iter().filter(|i| **i != p).cloned().collect();
                for other in others {
                    match sink.resolve(&other).await {
                        Ok(Resolution::Found(r)) if Some(&r) != patient_ref.as_ref() => {
                            quarantine(d, reason::MULTI_PATIENT);
                            return Ok(Vec::new());
                        }
                        Ok(Resolution::Ambiguous) => {
                            quarantine(d, reason::AMBIGUOUS_PATIENT);
                            return Ok(Vec::new());
                        }
                        Ok(_) => {}
                        Err(e) => return fail(d, e).map(|()| Vec::new()),
                    }
                }
            }
            let ctx = RecordCtx {
                now,
                patient_ref: patient_ref.as_deref(),
                device,
            };
            let Some(b) = record::bundle(d, &ctx) else {
                return Ok(Vec::new());
            };
            let t = std::time::Instant::now();
            let written = sink.write(&serde_json::to_vec(&b)?).await;
            crate::ops::metrics()
                .sink_seconds
                .observe(t.elapsed().as_secs_f64());
            match written {
                Ok(resources) => {
                    debug!(event_id = %d.event.id, resources = resources.len(), "written");
                    sh.summary
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .bundles += 1;
                    Ok(resources
                        .into_iter()
                        .filter(|r| r.starts_with("Communication/") || r.starts_with("Task/"))
                        .collect())
                }
                Err(e) => fail(d, e).map(|()| Vec::new()),
            }
        }
    }
}

fn quarantine(d: &mut Decision, why: &str) {
    d.outcome = Outcome::Quarantined;
    d.reason = Some(why.to_owned());
    d.write = None;
}

fn fail(d: &mut Decision, e: WriteError) -> anyhow::Result<()> {
    match e {
        WriteError::Rejected(why) => {
            warn!(event_id = %d.event.id, reason = %why, "FHIR server refused the bundle; event rejected");
            d.outcome = Outcome::Rejected;
            d.reason = Some(why);
            d.write = None;
            Ok(())
        }
        WriteError::Retryable(why) => Err(SinkUnavailable(format!(
            "FHIR server unavailable, stopping with event {} uncommitted (it is redone on the next run): {why}",
            d.event.id
        ))
        .into()),
        WriteError::Fatal(why) => {
            anyhow::bail!(
                "cannot write to the FHIR server, stopping with event {} uncommitted (it is redone on the next run): {why}",
                d.event.id
            )
        }
    }
}

/// Expire held content past its window in every thread.
async fn sweep(sh: &Shared, now: DateTime<Utc>) -> anyhow::Result<Vec<Pending>> {
    let mut pending = Vec::new();
    for key in threads_to_sweep(sh, now).await? {
        pending.extend(expire_thread(sh, &key, now).await?);
    }
    Ok(pending)
}

/// Threads with held content past its window, or with kept message content
/// past its window (no decision since then).
async fn threads_to_sweep(sh: &Shared, now: DateTime<Utc>) -> anyhow::Result<Vec<String>> {
    let mut keys = sh.ledger.threads_with_expired_holds(now).await?;
    let before = now
        .checked_sub_signed(sh.policy.hold_window)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    for k in sh.ledger.threads_with_old_content(before).await? {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    Ok(keys)
}

/// Delete one thread's expired held content, recording the outcomes.
async fn expire_thread(sh: &Shared, key: &str, now: DateTime<Utc>) -> anyhow::Result<Vec<Pending>> {
    let state = sh.ledger.load_thread(key).await?;
    let kept = |s: &ThreadState| s.versions.values().map(Vec::len).sum::<usize>();
    let before = kept(&state);
    let step = decide::expire(state, now);
    if step.decisions.is_empty() && kept(&step.state) == before {
        return Ok(Vec::new());
    }
    debug!(
        thread = key,
        expired = step.decisions.len(),
        "held content expired"
    );
    apply(sh, key, step, now).await
}

/// A unit of work for the worker that owns a thread.
enum Work {
    Event(Box<ChatEvent>, String, Option<Box<AmqpMsg>>),
    Expire(String),
}
