//! Operations: structured logs (JSON by default) on stderr.
//!
//! Logs name event ids, thread keys, outcomes and reasons; never message text,
//! names or identifier values (use `Identifier::masked`).

use tracing_subscriber::EnvFilter;

/// Install the global subscriber. `level` is a tracing filter directive.
///
/// Whatever `level` says, other crates' events pass only from `warn` up:
/// some log content at `debug`/`trace` (html5ever the message HTML, lapin
/// the message bodies, the HTTP clients the requests), and fhir-sdk logs every
/// request at `info`. The bridge's own events (`recordbridge`) follow `level`.
pub fn init_tracing(format: &str, level: &str) {
    use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let chosen = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let own_only = Targets::new()
        .with_target("recordbridge", LevelFilter::TRACE)
        .with_default(LevelFilter::WARN);
    let filter = chosen.and(own_only);
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let _ = if format == "text" {
        tracing_subscriber::registry()
            .with(layer.with_filter(filter))
            .try_init()
    } else {
        tracing_subscriber::registry()
            .with(layer.json().flatten_event(true).with_filter(filter))
            .try_init()
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
        let m = crate::metrics::metrics();
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
