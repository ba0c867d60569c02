//! The imperative shell of a run: source → parse → dedup → identify → decide →
//! record → sink → commit. One event at a time per thread.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tracing::{debug, info, warn};

use crate::config::{Config, SinkSpec, SourceSpec};
use crate::decide::{self, Decision, Outcome, Policy};
use crate::event::{self, ChatEvent, EventKind};
use crate::identify::Identify;
use crate::ledger::Ledger;
use crate::record::{self, RecordCtx};
use crate::sink::WriteError;
use crate::sink::dir::DirSink;
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
    DryRun(std::io::BufWriter<std::io::Stdout>),
    Dir { sink: DirSink, rejects: RejectReport },
}

/// Reject report: one JSON line per malformed input, with its position, reason and raw content.
struct RejectReport {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl RejectReport {
    fn write(&mut self, source: &str, line: u64, reason: &str, raw: Option<&str>) -> anyhow::Result<()> {
        if self.file.is_none() {
            self.file = Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .with_context(|| format!("opening reject report {}", self.path.display()))?,
            );
        }
        let f = self.file.as_mut().expect("opened");
        let rec = serde_json::json!({"source": source, "line": line, "outcome": "rejected", "reason": reason, "raw": raw});
        writeln!(f, "{rec}")?;
        f.sync_data()?;
        Ok(())
    }
}

/// A run over a file or stdin.
pub struct Run {
    cfg: Config,
    ledger: Ledger,
    identify: Identify,
    policy: Policy,
    out: Output,
    source_name: String,
    pub summary: Summary,
    _dry_dir: Option<tempfile::TempDir>,
}

/// Load the identifier patterns named by the configuration.
pub fn load_identify(cfg: &Config) -> anyhow::Result<Identify> {
    let text = std::fs::read_to_string(&cfg.identifiers)
        .with_context(|| format!("setting `identifiers`: cannot read {}", cfg.identifiers.display()))?;
    Identify::from_toml(&text).map_err(|e| anyhow::anyhow!("setting `identifiers` ({}): {e}", cfg.identifiers.display()))
}

impl Run {
    pub async fn new(cfg: Config, dry_run: bool) -> anyhow::Result<Self> {
        let identify = load_identify(&cfg)?;
        let policy = Policy { hold_window: chrono::Duration::hours(i64::from(cfg.hold_window_hours)) };
        let ledger_path = cfg.ledger_path();
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
            (Ledger::open(&copy).await?, Output::DryRun(std::io::BufWriter::new(std::io::stdout())), Some(tmp))
        } else {
            let out = match cfg.sink_spec().map_err(anyhow::Error::msg)? {
                SinkSpec::Dir(d) => {
                    let sink = DirSink::open(&d)?;
                    Output::Dir { rejects: RejectReport { path: d.join("rejected.ndjson"), file: None }, sink }
                }
                SinkSpec::Fhir(_) => anyhow::bail!("setting `sink`: the FHIR sink is not available in this build yet"),
            };
            (Ledger::open(&ledger_path).await?, out, None)
        };
        let source_name = match cfg.source_spec().map_err(anyhow::Error::msg)? {
            SourceSpec::File(p) => p.display().to_string(),
            SourceSpec::Stdin => "-".to_owned(),
        };
        Ok(Self { cfg, ledger, identify, policy, out, source_name, summary: Summary::default(), _dry_dir: dry_dir })
    }

    /// Process the whole source.
    pub async fn run(mut self) -> anyhow::Result<Summary> {
        let path = match self.cfg.source_spec().map_err(anyhow::Error::msg)? {
            SourceSpec::File(p) => Some(p),
            SourceSpec::Stdin => None,
        };
        let mut rx = source::file::spawn(path.as_deref())?;
        self.sweep(Utc::now()).await?;
        while let Some(d) = rx.recv().await {
            self.one(d).await?;
        }
        self.sweep(Utc::now()).await?;
        if let Output::DryRun(w) = &mut self.out {
            w.flush()?;
        }
        self.ledger.close().await;
        info!(
            read = self.summary.read, rejected = self.summary.rejected, duplicates = self.summary.duplicates,
            filed = self.summary.filed, held = self.summary.held, quarantined = self.summary.quarantined,
            ignored = self.summary.ignored, bundles = self.summary.bundles, "run finished"
        );
        Ok(self.summary)
    }

    async fn one(&mut self, d: Delivery) -> anyhow::Result<()> {
        self.summary.read += 1;
        let now = Utc::now();
        let parsed = d.body.as_deref().map_err(|e| e.clone()).and_then(|s| {
            event::parse_event(s, &self.cfg.platform).map_err(|e| e.to_string())
        });
        let ev = match parsed {
            Ok(ev) => ev,
            Err(reason) => return self.reject(&d, &reason, now).await,
        };
        if self.ledger.seen(&ev.platform, &ev.id).await?.is_some() {
            self.summary.duplicates += 1;
            debug!(event_id = %ev.id, "duplicate event: already decided");
            return Ok(());
        }
        self.decide(ev, now).await
    }

    async fn reject(&mut self, d: &Delivery, reason: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
        self.summary.rejected += 1;
        warn!(line = d.seq, source = %self.source_name, reason, "rejected malformed event");
        let id = d.body.as_ref().ok().and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
            .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned));
        match &mut self.out {
            Output::DryRun(w) => {
                let line = serde_json::json!({"event_id": id, "outcome": "rejected", "patient": null,
                    "identifiers": [], "task": null, "reason": decide::reason::MALFORMED});
                writeln!(w, "{line}")?;
            }
            Output::Dir { rejects, .. } => {
                rejects.write(&self.source_name, d.seq, reason, d.body.as_deref().ok())?;
            }
        }
        self.ledger.record_reject(&format!("{}:{}", self.source_name, d.seq), reason, now).await
    }

    async fn thread_key(&self, ev: &ChatEvent) -> anyhow::Result<String> {
        if ev.kind != EventKind::Message {
            if let Some(t) = &ev.target {
                if let Some(k) = self.ledger.thread_of(&ev.platform, t).await? {
                    return Ok(k);
                }
            }
        }
        Ok(ev.thread_key())
    }

    async fn decide(&mut self, ev: ChatEvent, now: DateTime<Utc>) -> anyhow::Result<()> {
        let key = self.thread_key(&ev).await?;
        let state = self.ledger.load_thread(&key).await?;
        let found = self.identify.find(&ev);
        let step = decide::decide(state, ev, found, now, &self.policy);
        self.apply(&key, step, now).await
    }

    async fn apply(&mut self, key: &str, step: decide::Step, now: DateTime<Utc>) -> anyhow::Result<()> {
        let ctx = RecordCtx { now, patient_ref: None, device: &self.cfg.device };
        for d in &step.decisions {
            self.summary.count(d);
            debug!(event_id = %d.event.id, outcome = d.outcome.as_str(), reason = d.reason.as_deref(), "decided");
            match &mut self.out {
                Output::DryRun(w) => {
                    serde_json::to_writer(&mut *w, &d.line())?;
                    w.write_all(b"\n")?;
                }
                Output::Dir { sink, .. } => {
                    if let Some(b) = record::bundle(d, &ctx) {
                        let body = serde_json::to_vec(&b)?;
                        match sink.write(&body) {
                            Ok(_) => self.summary.bundles += 1,
                            Err(WriteError::Fatal(e) | WriteError::Retryable(e) | WriteError::Rejected(e)) => {
                                anyhow::bail!("bundle directory sink failed: {e}")
                            }
                        }
                    }
                }
            }
        }
        self.ledger.commit(key, &step.state, &step.decisions, now).await
    }

    /// Expire held content past its window in every thread.
    async fn sweep(&mut self, now: DateTime<Utc>) -> anyhow::Result<()> {
        for key in self.ledger.threads_with_expired_holds(now).await? {
            let state = self.ledger.load_thread(&key).await?;
            let step = decide::expire(state, now);
            self.apply(&key, step, now).await?;
        }
        Ok(())
    }
}
