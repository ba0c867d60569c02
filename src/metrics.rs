//! The process's Prometheus metrics (prometheus-client), counted by the
//! pipeline and the sinks and served at `/metrics` by `ops`. Labels carry
//! outcomes, reasons and platforms only: no identifiers, no text.

/// Prometheus metrics of the process (prometheus-client), served at `/metrics`.
/// Labels carry outcomes and reasons only: no identifiers, no text.
pub struct Metrics {
    registry: prometheus_client::registry::Registry,
    /// Decisions by outcome and reason.
    pub events: prometheus_client::metrics::family::Family<
        Vec<(String, String)>,
        prometheus_client::metrics::counter::Counter,
    >,
    /// Seconds per sink write (one transaction Bundle or bundle file).
    pub sink_seconds: prometheus_client::metrics::histogram::Histogram,
    /// Retried FHIR requests (network, 408, 429, 5xx).
    pub retries: prometheus_client::metrics::counter::Counter,
    /// Seconds from an event's `sent_at` to its decision (queue and processing lag).
    pub event_lag: prometheus_client::metrics::histogram::Histogram,
    /// Held events waiting for their thread's patient (set at scrape time).
    pub held: prometheus_client::metrics::gauge::Gauge,
    /// Age in seconds of the oldest held event (set at scrape time).
    pub oldest_held: prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
    /// End-to-end encrypted events, by platform: the bridge cannot read
    /// them, so nothing of their room reaches the record. Any increase is an
    /// alert (a room turned encryption on).
    pub encrypted: prometheus_client::metrics::family::Family<
        Vec<(String, String)>,
        prometheus_client::metrics::counter::Counter,
    >,
}

impl Metrics {
    fn new() -> Self {
        use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
        let mut registry = prometheus_client::registry::Registry::with_prefix("recordbridge");
        let m = Self {
            events: Default::default(),
            sink_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            retries: Default::default(),
            event_lag: Histogram::new(exponential_buckets(0.01, 4.0, 14)),
            held: Default::default(),
            oldest_held: Default::default(),
            encrypted: Default::default(),
            registry: Default::default(),
        };
        registry.register(
            "events",
            "Decisions by outcome and reason",
            m.events.clone(),
        );
        registry.register(
            "sink_write_seconds",
            "Seconds per sink write",
            m.sink_seconds.clone(),
        );
        registry.register("sink_retries", "Retried FHIR requests", m.retries.clone());
        registry.register(
            "event_lag_seconds",
            "Seconds from sent_at to decision",
            m.event_lag.clone(),
        );
        registry.register(
            "held_events",
            "Held events waiting for a patient",
            m.held.clone(),
        );
        registry.register(
            "oldest_held_age_seconds",
            "Age of the oldest held event",
            m.oldest_held.clone(),
        );
        registry.register(
            "encrypted_events",
            "End-to-end encrypted events the bridge cannot read (nothing of their room reaches the record: alert on any)",
            m.encrypted.clone(),
        );
        Self { registry, ..m }
    }

    /// Count one decision.
    pub fn decided(&self, outcome: &str, reason: Option<&str>) {
        self.events
            .get_or_create(&vec![
                ("outcome".to_owned(), outcome.to_owned()),
                ("reason".to_owned(), reason.unwrap_or("").to_owned()),
            ])
            .inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }
}

static METRICS: std::sync::OnceLock<Metrics> = std::sync::OnceLock::new();

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}
