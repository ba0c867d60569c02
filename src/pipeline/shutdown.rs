//! Signals → a shutdown watch.

use anyhow::Context;
use tracing::info;

/// SIGTERM or SIGINT, as a watch that turns `true`. The handlers are
/// installed before this returns, so a signal at any point of the start-up
/// (waiting for the broker, say) is a graceful stop, not a kill.
pub(super) fn shutdown_watch() -> anyhow::Result<tokio::sync::watch::Receiver<bool>> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
        tokio::spawn(async move {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            info!("shutdown requested: finishing events in flight");
            tx.send_replace(true);
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        info!("shutdown requested: finishing events in flight");
        tx.send_replace(true);
    });
    Ok(rx)
}
