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
