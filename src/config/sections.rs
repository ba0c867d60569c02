//! The sections of the configuration file ([amqp], [health], [log], [fhir],
//! [fhir.auth]) with their defaults.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// RabbitMQ topology and consumer settings (ARCHITECTURE §7 names by default).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AmqpConfig {
    /// Topic exchange the chat platform publishes chat events to.
    pub exchange: String,
    /// Quorum queue the bridge consumes.
    pub queue: String,
    /// Binding key of the queue on the exchange.
    pub binding_key: String,
    /// Dead-letter exchange (malformed events, and events past the delivery limit).
    pub dead_exchange: String,
    /// Queue bound to the dead-letter exchange.
    pub dead_queue: String,
    /// Topic exchange outcome events are published to (ARCHITECTURE §8).
    pub outcomes_exchange: String,
    /// Publish outcome events (with publisher confirms).
    pub publish_outcomes: bool,
    /// Unacknowledged deliveries held at once (QoS prefetch); bounds memory.
    pub prefetch: u16,
    /// Deliveries of one message before RabbitMQ dead-letters it (`x-delivery-limit`).
    pub delivery_limit: u32,
    /// Declare the topology at start; `false` only checks that it exists (pre-provisioned).
    pub declare: bool,
    /// Message header naming the format of a message's body (a mapping file's
    /// name, or `v1`); without it, the setting `format` applies.
    pub format_header: String,
    /// Partitioned consumption: 0 consumes the one queue `queue`; N > 0
    /// routes chat events by room through the consistent-hash exchange
    /// `partition_exchange` into N queues `queue.0` … `queue.N-1`, each with
    /// a single active consumer, shared among the replicas by leases in the
    /// ledger (a PostgreSQL ledger for several replicas).
    pub partitions: u16,
    /// The consistent-hash exchange (plugin rabbitmq_consistent_hash_exchange).
    pub partition_exchange: String,
    /// Lease time of a partition: a replica that stops renewing (it died)
    /// loses its partitions to the others after this long.
    pub lease_secs: u64,
    /// Reconnection backoff after a lost connection.
    pub reconnect_initial_ms: u64,
    pub reconnect_max_ms: u64,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        Self {
            exchange: "recordbridge.chat".into(),
            queue: "recordbridge.events".into(),
            binding_key: "#".into(),
            dead_exchange: "recordbridge.dlx".into(),
            dead_queue: "recordbridge.dead".into(),
            outcomes_exchange: "recordbridge.outcomes".into(),
            publish_outcomes: true,
            prefetch: 200,
            delivery_limit: 10,
            declare: true,
            format_header: "x-recordbridge-format".into(),
            partitions: 0,
            partition_exchange: "recordbridge.partition".into(),
            lease_secs: 15,
            reconnect_initial_ms: 500,
            reconnect_max_ms: 30_000,
        }
    }
}

/// Health endpoints (`/healthz`, `/readyz`), served while consuming from AMQP.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// `HOST:PORT` to listen on, or `off`.
    pub listen: String,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `json` or `text`.
    pub format: String,
    /// tracing filter directive, e.g. `info` or `recordbridge=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "json".into(),
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FhirConfig {
    /// Threads written concurrently (order is kept within a thread).
    pub concurrency: usize,
    /// Per-request timeout, seconds.
    pub timeout_secs: u64,
    /// Retries of a retryable failure (network, 408, 429, 5xx) before giving up on a run.
    pub max_retries: u32,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// How long an identifier → Patient resolution is cached.
    pub patient_cache_ttl_secs: u64,
    /// Resolve identifiers to Patients before writing (rule 7).
    pub resolve_patients: bool,
    /// Extra PEM CA bundle trusted besides the system roots.
    pub ca_bundle: Option<PathBuf>,
    pub auth: AuthConfig,
}

impl Default for FhirConfig {
    fn default() -> Self {
        Self {
            concurrency: 8,
            timeout_secs: 30,
            max_retries: 20,
            backoff_initial_ms: 200,
            backoff_max_ms: 30_000,
            patient_cache_ttl_secs: 300,
            resolve_patients: true,
            ca_bundle: None,
            auth: AuthConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `none`, `bearer`, `client-credentials` or `smart-backend`.
    pub mode: String,
    /// Name of the environment variable that holds the secret (bearer token or client secret).
    pub secret_env: Option<String>,
    /// File that holds the secret (bearer token, client secret or private key PEM).
    pub secret_file: Option<PathBuf>,
    pub token_url: Option<String>,
    pub client_id: Option<String>,
    pub scope: Option<String>,
    /// SMART backend services: RS384 or ES384.
    pub algorithm: String,
    /// SMART backend services: key id (`kid` header).
    pub key_id: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: "none".into(),
            secret_env: None,
            secret_file: None,
            token_url: None,
            client_id: None,
            scope: None,
            algorithm: "RS384".into(),
            key_id: None,
        }
    }
}
