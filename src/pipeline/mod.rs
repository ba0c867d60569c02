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

mod admit;
mod apply;
mod build;
mod outcomes;
mod partitions;
mod rejects;
mod route;
mod shutdown;
mod write;

pub use admit::ENCRYPTED;
pub use build::{load_identify, load_tasks};

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::Config;
use crate::decide::{Decision, Outcome, Policy};
use crate::event::ChatEvent;
use crate::identify::Identify;
use crate::ledger::Ledger;
use crate::ops::Health;
use crate::sink::Sink;
use crate::source::amqp::{AmqpMsg, Broker};
use crate::source::{self, Delivery};
use admit::dispatch;
use apply::{expire_thread, process, sweep, threads_to_sweep};
use outcomes::{flush_outbox, publish_outcomes};
use partitions::{manage_partitions, replica_id};
use rejects::Rejects;
use route::{RECENT_THREADS, RecentThreads, worker_of};

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
    Write(Sink),
}

impl Output {
    /// In a dry run, print one decision line (ARCHITECTURE §6); a run that
    /// writes prints none.
    fn print(&self, line: &crate::decide::DecisionLine<'_>) -> anyhow::Result<()> {
        if let Output::DryRun(w) = self {
            let mut w = w.lock().unwrap_or_else(PoisonError::into_inner);
            serde_json::to_writer(&mut *w, line)?;
            w.write_all(b"\n")?;
        }
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
    /// Where rejected input goes (reject report or dead-letter queue).
    rejects: Rejects,
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
    /// `run`'s exclusive lock on a SQLite ledger, released at exit.
    _run_lock: Option<std::fs::File>,
}

impl Run {
    /// Process the whole source (or until interrupted, finishing in-flight
    /// events). With AMQP: until SIGTERM/SIGINT, or a fatal error.
    pub async fn run(self) -> anyhow::Result<Summary> {
        let sh = self.shared.clone();
        // stdin cannot be read again: on a stop, what was read is drained.
        let (mut rx, stdin) = match self.input {
            Input::File(path) => {
                let (rx, drain) = source::file::spawn(path.as_deref())?;
                (rx, path.is_none().then_some(drain))
            }
            Input::Amqp(rx) => (rx, None),
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
        let mut draining = false;
        loop {
            let d = tokio::select! {
                d = next(&mut rx, stdin.as_ref().filter(|_| draining)) => d,
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
                    match (&sh.broker, &stdin) {
                        // Stop consuming, but take in what the broker has
                        // already sent: the channel ends when it is drained.
                        (Some(b), _) => { b.stop_consuming().await; continue }
                        // Likewise what was read from stdin.
                        (None, Some(s)) => { s.stop(); draining = true; continue }
                        // A file is read again by the next run.
                        (None, None) => None,
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

/// A unit of work for the worker that owns a thread.
enum Work {
    Event(Box<ChatEvent>, String, Option<Box<AmqpMsg>>),
    Expire(String),
}

/// The next delivery. While `draining` a stream, `None` also once the
/// reader waits for input with nothing left unsent (a pipe kept open by its
/// writer never ends by itself).
async fn next(
    rx: &mut mpsc::Receiver<Delivery>,
    draining: Option<&source::file::Drain>,
) -> Option<Delivery> {
    let Some(drain) = draining else {
        return rx.recv().await;
    };
    loop {
        match tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
            Ok(d) => return d,
            Err(_) if drain.idle() && rx.is_empty() => return None,
            Err(_) => {}
        }
    }
}
