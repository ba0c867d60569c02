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

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::config::{Config, SinkSpec, SourceSpec};
use crate::decide::{self, Decision, Outcome, Policy, reason};
use crate::event::{self, ChatEvent, EventKind};
use crate::identify::Identify;
use crate::ledger::Ledger;
use crate::record::{self, RecordCtx};
use crate::sink::WriteError;
use crate::sink::dir::DirSink;
use crate::sink::fhir::{FhirSink, Resolution};
use crate::source::{self, Delivery};

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
    ledger: Ledger,
    identify: Identify,
    policy: Policy,
    out: Output,
    rejects: Mutex<RejectReport>,
    summary: Mutex<Summary>,
    source_name: String,
}

/// A run over a file or stdin.
pub struct Run {
    shared: Arc<Shared>,
    /// The source file; `None` reads stdin.
    source: Option<PathBuf>,
    workers: usize,
    _dry_dir: Option<tempfile::TempDir>,
}

/// Load the identifier patterns named by the configuration.
pub fn load_identify(cfg: &Config) -> anyhow::Result<Identify> {
    let text = std::fs::read_to_string(&cfg.identifiers).with_context(|| {
        format!(
            "setting `identifiers`: cannot read {}",
            cfg.identifiers.display()
        )
    })?;
    Identify::from_toml(&text)
        .map_err(|e| anyhow::anyhow!("setting `identifiers` ({}): {e}", cfg.identifiers.display()))
}

impl Run {
    pub async fn new(cfg: Config, dry_run: bool) -> anyhow::Result<Self> {
        let identify = load_identify(&cfg)?;
        let policy = Policy {
            hold_window: chrono::Duration::milliseconds(
                (cfg.hold_window_hours * 3_600_000.0) as i64,
            ),
        };
        let sink = cfg.sink_spec().map_err(anyhow::Error::msg)?;
        let ledger_path = cfg.ledger_path();
        let mut workers = 1;
        let mut reject_path = None;
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
        let source = match cfg.source_spec().map_err(anyhow::Error::msg)? {
            SourceSpec::File(p) => Some(p),
            SourceSpec::Stdin => None,
        };
        let source_name = source
            .as_deref()
            .map_or_else(|| "-".to_owned(), |p| p.display().to_string());
        let shared = Shared {
            cfg,
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
        };
        Ok(Self {
            shared: Arc::new(shared),
            source,
            workers,
            _dry_dir: dry_dir,
        })
    }

    /// Process the whole source (or until interrupted, finishing in-flight events).
    pub async fn run(self) -> anyhow::Result<Summary> {
        let sh = self.shared.clone();
        let mut rx = source::file::spawn(self.source.as_deref())?;
        sweep(&sh, Utc::now()).await?;

        let mut senders = Vec::with_capacity(self.workers);
        let mut handles = Vec::with_capacity(self.workers);
        for _ in 0..self.workers {
            let (tx, mut wrx) = mpsc::channel::<Work>(64);
            senders.push(tx);
            let sh = sh.clone();
            handles.push(tokio::spawn(async move {
                while let Some(work) = wrx.recv().await {
                    let done = match work {
                        Work::Event(ev, key) => one(&sh, *ev, &key).await,
                        Work::Expire(key) => expire_thread(&sh, &key, Utc::now()).await,
                    };
                    if let Err(e) = done {
                        // Stop taking work; what is uncommitted is redone next run.
                        wrx.close();
                        return Err(e);
                    }
                }
                Ok::<(), anyhow::Error>(())
            }));
        }

        let mut interrupted = false;
        let shutdown = shutdown_signal();
        tokio::pin!(shutdown);
        // Held content expires during long runs too (a stdin stream may run for weeks);
        // each expiry goes to the worker that owns the thread, so it never races its events.
        let mut sweep_timer =
            tokio::time::interval(std::time::Duration::from_secs(sh.cfg.sweep_interval_secs));
        sweep_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        sweep_timer.tick().await;
        loop {
            let d = tokio::select! {
                d = rx.recv() => d,
                _ = sweep_timer.tick() => {
                    let mut failed = false;
                    for key in sh.ledger.threads_with_expired_holds(Utc::now()).await? {
                        let idx = worker_of(&key, senders.len());
                        failed |= senders[idx].send(Work::Expire(key)).await.is_err();
                    }
                    if failed { break }
                    continue;
                }
                () = &mut shutdown => { interrupted = true; None }
            };
            let Some(d) = d else { break };
            sh.summary
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .read += 1;
            let Some((ev, key)) = dispatch(&sh, &d).await? else {
                continue;
            };
            let idx = worker_of(&key, senders.len());
            if senders[idx]
                .send(Work::Event(Box::new(ev), key))
                .await
                .is_err()
            {
                break; // that worker failed; its error is reported below
            }
        }
        drop(senders);
        let mut first_err = None;
        for h in handles {
            if let Err(e) = h.await.context("worker panicked")? {
                first_err.get_or_insert(e);
            }
        }
        if let Some(e) = first_err {
            sh.ledger.close().await;
            return Err(e);
        }
        sweep(&sh, Utc::now()).await?;
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

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    info!("shutdown requested: finishing events in flight");
}

fn worker_of(key: &str, n: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % n as u64) as usize
}

/// Parse a delivery and find its thread; malformed input is rejected here.
async fn dispatch(sh: &Shared, d: &Delivery) -> anyhow::Result<Option<(ChatEvent, String)>> {
    let parsed = d
        .body
        .as_deref()
        .map_err(|e| e.clone())
        .and_then(|s| event::parse_event(s, &sh.cfg.platform).map_err(|e| e.to_string()));
    match parsed {
        Ok(ev) => {
            let key = thread_key(sh, &ev).await?;
            Ok(Some((ev, key)))
        }
        Err(reason) => {
            reject(sh, d, &reason, Utc::now()).await?;
            Ok(None)
        }
    }
}

async fn reject(sh: &Shared, d: &Delivery, why: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
    sh.summary
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .rejected += 1;
    warn!(line = d.seq, source = %sh.source_name, reason = why, "rejected malformed event");
    if let Output::DryRun(w) = &sh.out {
        let id = d
            .body
            .as_ref()
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
            .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned));
        let line = serde_json::json!({"event_id": id, "outcome": "rejected", "patient": null,
            "identifiers": [], "task": null, "reason": reason::MALFORMED});
        writeln!(w.lock().unwrap_or_else(PoisonError::into_inner), "{line}")?;
    } else {
        sh.rejects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(&sh.source_name, d.seq, why, d.body.as_deref().ok())?;
    }
    sh.ledger
        .record_reject(&format!("{}:{}", sh.source_name, d.seq), why, now)
        .await
}

async fn thread_key(sh: &Shared, ev: &ChatEvent) -> anyhow::Result<String> {
    if ev.kind != EventKind::Message
        && let Some(t) = &ev.target
        && let Some(k) = sh.ledger.thread_of(&ev.platform, t).await?
    {
        return Ok(k);
    }
    Ok(ev.thread_key())
}

/// Decide, write and commit one event.
async fn one(sh: &Shared, ev: ChatEvent, key: &str) -> anyhow::Result<()> {
    if sh.ledger.seen(&ev.platform, &ev.id).await?.is_some() {
        sh.summary
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .duplicates += 1;
        debug!(event_id = %ev.id, "duplicate event: already decided");
        return Ok(());
    }
    let now = Utc::now();
    let state = sh.ledger.load_thread(key).await?;
    let found = sh.identify.find(&ev);
    let step = decide::decide(state, ev, found, now, &sh.policy);
    apply(sh, key, step, now).await
}

/// Write a step's decisions in order, then commit them with the new state.
async fn apply(
    sh: &Shared,
    key: &str,
    mut step: decide::Step,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    for d in &mut step.decisions {
        if d.outcome == Outcome::Filed {
            write(sh, d, now).await?;
            if d.outcome != Outcome::Filed {
                step.state.unfile(&d.event.id);
            }
            if d.outcome == Outcome::Rejected {
                let why = d.reason.as_deref().unwrap_or("rejected");
                sh.rejects
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .write_event(&sh.source_name, &d.event, why)?;
            }
        }
        debug!(event_id = %d.event.id, thread = key, outcome = d.outcome.as_str(), reason = d.reason.as_deref(), "decided");
        if let Output::DryRun(w) = &sh.out {
            let mut w = w.lock().unwrap_or_else(PoisonError::into_inner);
            serde_json::to_writer(&mut *w, &d.line())?;
            w.write_all(b"\n")?;
        }
    }
    sh.ledger
        .commit(key, &step.state, &step.decisions, now)
        .await?;
    let mut s = sh.summary.lock().unwrap_or_else(PoisonError::into_inner);
    for d in &step.decisions {
        s.count(d);
    }
    Ok(())
}

/// Write one filed decision; may turn it into a quarantine (rule 7) or a reject (4xx).
async fn write(sh: &Shared, d: &mut Decision, now: DateTime<Utc>) -> anyhow::Result<()> {
    let device = &sh.cfg.device;
    match &sh.out {
        Output::DryRun(_) => Ok(()),
        Output::Dir(sink) => {
            let ctx = RecordCtx {
                now,
                patient_ref: None,
                device,
            };
            if let Some(b) = record::bundle(d, &ctx) {
                sink.write(&serde_json::to_vec(&b)?)
                    .map_err(|e| anyhow::anyhow!("bundle directory sink failed: {e}"))?;
                sh.summary
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .bundles += 1;
            }
            Ok(())
        }
        Output::Fhir(sink) => {
            let mut patient_ref = None;
            if sh.cfg.fhir.resolve_patients {
                let Some(p) = d.patient.clone() else {
                    return Ok(());
                };
                match sink.resolve(&p).await {
                    Ok(Resolution::Found(r)) => patient_ref = Some(r),
                    Ok(Resolution::Unknown) => {
                        quarantine(d, reason::UNKNOWN_PATIENT);
                        return Ok(());
                    }
                    Ok(Resolution::Ambiguous) => {
                        quarantine(d, reason::AMBIGUOUS_PATIENT);
                        return Ok(());
                    }
                    Err(e) => return fail(d, e),
                }
            }
            let ctx = RecordCtx {
                now,
                patient_ref: patient_ref.as_deref(),
                device,
            };
            let Some(b) = record::bundle(d, &ctx) else {
                return Ok(());
            };
            match sink.write(&serde_json::to_vec(&b)?).await {
                Ok(resources) => {
                    debug!(event_id = %d.event.id, resources = resources.len(), "written");
                    sh.summary
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .bundles += 1;
                    Ok(())
                }
                Err(e) => fail(d, e),
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
        WriteError::Retryable(why) => {
            anyhow::bail!(
                "FHIR server unavailable, stopping with event {} uncommitted (it is redone on the next run): {why}",
                d.event.id
            )
        }
        WriteError::Fatal(why) => {
            anyhow::bail!(
                "cannot write to the FHIR server, stopping with event {} uncommitted (it is redone on the next run): {why}",
                d.event.id
            )
        }
    }
}

/// Expire held content past its window in every thread.
async fn sweep(sh: &Shared, now: DateTime<Utc>) -> anyhow::Result<()> {
    for key in sh.ledger.threads_with_expired_holds(now).await? {
        expire_thread(sh, &key, now).await?;
    }
    Ok(())
}

/// Delete one thread's expired held content, recording the outcomes.
async fn expire_thread(sh: &Shared, key: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
    let state = sh.ledger.load_thread(key).await?;
    let step = decide::expire(state, now);
    if step.decisions.is_empty() {
        return Ok(());
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
    Event(Box<ChatEvent>, String),
    Expire(String),
}
