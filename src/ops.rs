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

/// What `/readyz` checks for the sink.
#[derive(Debug, Clone)]
pub enum SinkProbe {
    /// The bundle directory exists and is a directory.
    Dir(std::path::PathBuf),
    /// The FHIR server answers `GET [base]/metadata` (any status below 500).
    Fhir(String),
}

/// State behind `/healthz` and `/readyz`.
#[derive(Debug)]
pub struct Health {
    broker: std::sync::OnceLock<std::sync::Arc<crate::source::amqp::Broker>>,
    sink: SinkProbe,
    /// A worker is waiting for an unreachable sink.
    pub stalled: std::sync::atomic::AtomicBool,
    http: reqwest::Client,
}

impl Health {
    pub fn new(sink: SinkProbe) -> Self {
        Self {
            broker: std::sync::OnceLock::new(),
            sink,
            stalled: std::sync::atomic::AtomicBool::new(false),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(3))
                .build()
                .unwrap_or_default(),
        }
    }

    pub fn set_broker(&self, b: std::sync::Arc<crate::source::amqp::Broker>) {
        let _ = self.broker.set(b);
    }

    /// Ready when the broker is connected and the sink reachable.
    pub async fn readiness(&self) -> (bool, serde_json::Value) {
        let broker = self.broker.get().is_some_and(|b| b.is_connected());
        let reachable = match &self.sink {
            SinkProbe::Dir(d) => d.is_dir(),
            SinkProbe::Fhir(base) => self
                .http
                .get(format!("{base}/metadata"))
                .header("accept", "application/fhir+json")
                .send()
                .await
                .is_ok_and(|r| r.status().as_u16() < 500),
        };
        let stalled = self.stalled.load(std::sync::atomic::Ordering::SeqCst);
        let ready = broker && reachable && !stalled;
        (
            ready,
            serde_json::json!({"ready": ready, "broker": broker, "sink": reachable && !stalled}),
        )
    }
}

/// Serve `/healthz` (alive) and `/readyz` (broker and sink reachable) on `addr`.
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
