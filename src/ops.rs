//! Operations: structured logs (JSON by default) on stderr.
//!
//! Logs name event ids, thread keys, outcomes and reasons; never message text,
//! names or identifier values (use `Identifier::masked`).

use tracing_subscriber::EnvFilter;

/// Install the global subscriber. `level` is a tracing filter directive.
pub fn init_tracing(format: &str, level: &str) {
    // fhir-sdk logs every request at info level: keep it to warnings.
    let filter = EnvFilter::try_new(format!(
        "{level},fhir_sdk=warn,sqlx=warn,hyper=warn,reqwest=warn"
    ))
    .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "text" {
        builder.try_init()
    } else {
        builder.json().flatten_event(true).try_init()
    };
}

/// State behind `/healthz` and `/readyz`.
#[derive(Debug)]
pub struct Health {
    broker: std::sync::OnceLock<std::sync::Arc<crate::source::amqp::Broker>>,
    ledger: std::sync::OnceLock<crate::ledger::Ledger>,
    sink: crate::sink::SinkProbe,
    /// A worker is waiting for an unreachable sink.
    pub stalled: std::sync::atomic::AtomicBool,
}

impl Health {
    pub fn new(sink: crate::sink::SinkProbe) -> Self {
        Self {
            broker: std::sync::OnceLock::new(),
            ledger: std::sync::OnceLock::new(),
            sink,
            stalled: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn set_broker(&self, b: std::sync::Arc<crate::source::amqp::Broker>) {
        let _ = self.broker.set(b);
    }

    /// The ledger, for the held-events gauges at scrape time.
    pub fn set_ledger(&self, l: crate::ledger::Ledger) {
        let _ = self.ledger.set(l);
    }

    /// `/metrics`: the process's metrics with the held gauges refreshed.
    pub async fn metrics_text(&self) -> String {
        let m = metrics();
        if let Some(l) = self.ledger.get()
            && let Ok((n, oldest)) = l.held_summary().await
        {
            m.held.set(n);
            let age = oldest.map_or(0.0, |t| {
                (chrono::Utc::now() - t).num_milliseconds() as f64 / 1000.0
            });
            m.oldest_held.set(age.max(0.0));
        }
        m.encode()
    }

    /// Ready when the broker is connected and the sink reachable.
    pub async fn readiness(&self) -> (bool, serde_json::Value) {
        let broker = self.broker.get().is_some_and(|b| b.is_connected());
        let reachable = self.sink.reachable().await;
        let stalled = self.stalled.load(std::sync::atomic::Ordering::SeqCst);
        let ready = broker && reachable && !stalled;
        (
            ready,
            serde_json::json!({"ready": ready, "broker": broker, "sink": reachable && !stalled}),
        )
    }
}

/// Serve `/healthz` (alive), `/readyz` (broker and sink reachable) and
/// `/metrics` (Prometheus) on `addr`.
/// Returns the bound address (useful with port 0) and the server task.
pub async fn serve_health(
    addr: std::net::SocketAddr,
    health: std::sync::Arc<Health>,
) -> anyhow::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    use axum::http::StatusCode;
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(
                |axum::extract::State(h): axum::extract::State<std::sync::Arc<Health>>| async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        h.metrics_text().await,
                    )
                },
            ),
        )
        .route(
            "/readyz",
            get(
                |axum::extract::State(h): axum::extract::State<std::sync::Arc<Health>>| async move {
                    let (ready, body) = h.readiness().await;
                    let code = if ready {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    (code, axum::Json(body))
                },
            ),
        )
        .with_state(health);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("setting `health.listen`: cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "health server stopped");
        }
    });
    Ok((bound, task))
}

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
