//! Sinks: where transaction Bundles are written.

pub mod auth;
pub mod dir;
pub mod fhir;

use crate::config::{Config, SinkSpec};
use crate::ops::SinkProbe;

/// The configured sink (setting `sink`), built in one place for every
/// command that writes: `run` and the quarantine review.
pub enum Sink {
    /// A directory of transaction Bundle files.
    Dir(dir::DirSink),
    /// A FHIR server over REST.
    Fhir(Box<fhir::FhirSink>),
}

impl Sink {
    pub fn open(cfg: &Config) -> anyhow::Result<Self> {
        Ok(match cfg.sink_spec().map_err(anyhow::Error::msg)? {
            SinkSpec::Dir(d) => Sink::Dir(dir::DirSink::open(&d)?),
            SinkSpec::Fhir(u) => Sink::Fhir(Box::new(fhir::FhirSink::new(&u, &cfg.fhir)?)),
        })
    }

    /// What `/readyz` checks for the configured sink (setting `sink`).
    pub fn probe(spec: &SinkSpec) -> SinkProbe {
        match spec {
            SinkSpec::Dir(d) => SinkProbe::Dir(d.clone()),
            SinkSpec::Fhir(u) => SinkProbe::Fhir(u.clone()),
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
    #[error("rejected: {0}")]
    Rejected(String),
    /// Local failure of the sink itself (disk full, permissions): the run stops.
    #[error("{0}")]
    Fatal(String),
}
