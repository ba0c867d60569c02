//! Sinks: where transaction Bundles are written.

pub mod auth;
pub mod dir;
pub mod fhir;

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, SinkSpec};

/// The configured sink (setting `sink`), built in one place for every
/// command that writes: `run` and the quarantine review.
pub enum Sink {
    /// A directory of transaction Bundle files.
    Dir(dir::DirSink),
    /// A FHIR server over REST (shared with the readiness probe: one
    /// connection pool, one TLS setting, one access token).
    Fhir(Arc<fhir::FhirSink>),
}

impl Sink {
    pub fn open(cfg: &Config) -> anyhow::Result<Self> {
        Ok(
            match cfg.sink_spec().map_err(crate::config::SettingError)? {
                SinkSpec::Dir(d) => Sink::Dir(dir::DirSink::open(&d)?),
                SinkSpec::Fhir(u) => Sink::Fhir(Arc::new(fhir::FhirSink::new(&u, &cfg.fhir)?)),
            },
        )
    }

    /// What `/readyz` checks for this sink.
    pub fn probe(&self) -> SinkProbe {
        match self {
            Sink::Dir(d) => SinkProbe::Dir(d.dir().to_owned()),
            Sink::Fhir(f) => SinkProbe::Fhir(f.clone()),
        }
    }
}

/// What `/readyz` checks for the sink.
#[derive(Debug, Clone)]
pub enum SinkProbe {
    /// Nothing is written (a dry run): always reachable.
    Nothing,
    /// The bundle directory exists and is a directory.
    Dir(std::path::PathBuf),
    /// The FHIR server answers `GET [base]/metadata` (any status below 500),
    /// asked through the sink's own client.
    Fhir(Arc<fhir::FhirSink>),
}

impl SinkProbe {
    /// How long `/readyz` waits for the FHIR server.
    const WAIT: Duration = Duration::from_secs(3);

    /// Can the sink be written to now?
    pub async fn reachable(&self) -> bool {
        match self {
            SinkProbe::Nothing => true,
            SinkProbe::Dir(d) => d.is_dir(),
            SinkProbe::Fhir(f) => tokio::time::timeout(Self::WAIT, f.answers())
                .await
                .unwrap_or(false),
        }
    }
}

/// Why a write did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// Still failing after the configured retries (network, 408, 429, 5xx); nothing is lost.
    #[error("retryable: {0}")]
    Retryable(String),
    /// The target refused this bundle for good (4xx); the event is rejected with this reason.
    #[error("rejected: {reason}")]
    Rejected {
        /// The status (`HTTP 422`): the event's reason, safe to log.
        reason: String,
        /// The server's OperationOutcome text (digits masked). It may quote
        /// the event, so it goes only to the reject report.
        detail: String,
    },
    /// Local failure of the sink itself (disk full, permissions): the run stops.
    #[error("{0}")]
    Fatal(String),
}
