//! Sinks: where transaction Bundles are written.

pub mod auth;
pub mod dir;
pub mod fhir;

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
