//! Partitioned consumption: this replica's share of partition leases.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tracing::{info, warn};

use crate::source::amqp::Broker;

use super::*;

/// This replica's name in the partition leases: the host name (a pod's
/// name in Kubernetes), the process id and a random suffix.
pub(super) fn replica_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &suffix[..6])
}

/// Partitioned consumption: heartbeat and hold this replica's fair share of
/// partition leases (ledger), and consume exactly the partitions held
/// (broker). Ends when the broker stops; returns the replica id.
pub(super) async fn manage_partitions(sh: Arc<Shared>, broker: Arc<Broker>, me: String) -> String {
    let n = sh.cfg.amqp.partitions;
    let lease = chrono::Duration::seconds(sh.cfg.amqp.lease_secs as i64);
    let every = Duration::from_millis((sh.cfg.amqp.lease_secs * 1000 / 3).max(500));
    info!(replica = %me, partitions = n, lease_secs = sh.cfg.amqp.lease_secs, "partitioned consumption");
    // Announce first, so that replicas starting together see each other
    // before they claim their shares.
    if let Err(e) = sh
        .ledger
        .lease_partitions(&me, n, lease, false, Utc::now())
        .await
    {
        warn!(error = %e, "partition leases: heartbeat failed");
    }
    let mut held: Vec<u16> = Vec::new();
    let mut seeded = false;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = broker.stopped() => break,
        }
        if broker.stopping() {
            break;
        }
        // Without the broker, leases are not renewed: they expire and the
        // other replicas take the partitions over.
        if !broker.is_connected() {
            continue;
        }
        // The lease rows, once (retried while the ledger is unreachable).
        if !seeded {
            if let Err(e) = sh.ledger.init_partitions(n).await {
                warn!(error = %e, "partition leases: cannot create the lease rows");
                continue;
            }
            seeded = true;
        }
        let l = match sh
            .ledger
            .lease_partitions(&me, n, lease, true, Utc::now())
            .await
        {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "partition leases: heartbeat failed");
                continue;
            }
        };
        let want: Vec<u16> = l.owned.iter().take(l.share).copied().collect();
        let consumed = broker.set_partitions(&want).await;
        let give_back: Vec<u16> = l
            .owned
            .iter()
            .filter(|p| !want.contains(p) && !consumed.contains(p))
            .copied()
            .collect();
        if !give_back.is_empty()
            && let Err(e) = sh.ledger.release_partitions(&me, &give_back, false).await
        {
            warn!(error = %e, "partition leases: release failed");
        }
        if consumed != held {
            info!(replica = %me, live_replicas = l.live, share = l.share, partitions = ?consumed, "partitions consumed");
            held = consumed;
        }
    }
    me
}
