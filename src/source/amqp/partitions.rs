//! Partitioned consumption: a channel and consumer per partition queue held.

use super::*;

/// How long a partition being given back waits for its forwarded deliveries
/// to be finished before closing its channel anyway.
pub(super) const RELEASE_WAIT: Duration = Duration::from_secs(30);

/// One partition queue being consumed, on its own channel.
pub(super) struct Part {
    pub(super) release: tokio::sync::watch::Sender<bool>,
    pub(super) task: tokio::task::JoinHandle<()>,
    pub(super) channel: Channel,
    pub(super) tag: String,
}

impl Broker {
    /// Partitioned consumption: consume exactly the partitions in `want`
    /// (those this replica holds leases on). A partition no longer wanted is
    /// given back gently: nothing more of it is forwarded, what was
    /// forwarded is finished and acknowledged, then its channel is closed
    /// (the rest returns to the queue, and RabbitMQ makes the next waiting
    /// consumer active). Returns the partitions consumed now, so the caller
    /// gives back the leases of the others.
    pub async fn set_partitions(self: &Arc<Self>, want: &[u16]) -> Vec<u16> {
        let mut parts =
            std::mem::take(&mut *self.parts.lock().unwrap_or_else(PoisonError::into_inner));
        // Finished tasks (released, or their channel died with the connection).
        parts.retain(|_, p| !p.task.is_finished());
        for (p, part) in &parts {
            if !want.contains(p) {
                part.release.send_replace(true);
            }
        }
        let conn = self.live_conn();
        let tx = self
            .tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let (Some(conn), Some(tx), false) = (conn, tx, self.stopping()) {
            for p in want {
                if parts.contains_key(p) {
                    continue;
                }
                match self.subscribe(&conn, *p, tx.clone()).await {
                    Ok(part) => {
                        parts.insert(*p, part);
                    }
                    Err(e) => {
                        warn!(partition = p, error = %e, "cannot consume partition yet");
                        break;
                    }
                }
            }
        }
        let now: Vec<u16> = parts.keys().copied().collect();
        *self.parts.lock().unwrap_or_else(PoisonError::into_inner) = parts;
        if self.stopping() {
            // A stop that came while the map was out missed these.
            self.cancel_parts().await;
        }
        now
    }

    /// Consume partition queue `p` on a channel of its own.
    pub(super) async fn subscribe(
        self: &Arc<Self>,
        conn: &Connection,
        p: u16,
        tx: mpsc::Sender<Delivery>,
    ) -> lapin::Result<Part> {
        let ch = conn.create_channel().await?;
        ch.basic_qos(self.cfg.prefetch, BasicQosOptions::default())
            .await?;
        let queue = partition_queue(&self.cfg, p);
        let generation = self.generation.load(Ordering::SeqCst);
        let tag = format!("recordbridge-{}-{generation}-p{p}", std::process::id());
        let mut consumer = ch
            .basic_consume(
                queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let (release, release_rx) = tokio::sync::watch::channel(false);
        let inflight = Arc::new(AtomicUsize::new(0));
        let b = self.clone();
        let channel = ch.clone();
        let task = tokio::spawn(async move {
            let why = b
                .forward_until(&mut consumer, &tx, release_rx, Some(inflight.clone()))
                .await;
            if why == "released" {
                // What was forwarded is finished before the next replica
                // can become the active consumer (bounded wait).
                let deadline = tokio::time::Instant::now() + RELEASE_WAIT;
                while inflight.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let _ = ch.close(200, "partition released".into()).await;
                info!(partition = p, "partition given back");
            } else if !b.stopping() {
                warn!(partition = p, reason = %why, "partition consumer ended");
                b.lost.notify_one();
            }
        });
        info!(partition = p, queue = %queue, "consuming partition");
        Ok(Part {
            release,
            task,
            channel,
            tag,
        })
    }

    /// Partitioned consumption: keep a connection (partitions are
    /// subscribed by [`Broker::set_partitions`]); when it is lost, reconnect.
    pub(super) async fn supervise_partitions(self: Arc<Self>) {
        let mut backoff = reconnect_backoff(&self.cfg);
        loop {
            // Wait until the connection drops or a partition consumer fails.
            loop {
                let alive = self
                    .live
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_ref()
                    .is_some_and(|l| l.conn.status().connected());
                if !alive || self.stopping() {
                    break;
                }
                tokio::select! {
                    () = self.lost.notified() => {}
                    () = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    () = self.stopped() => {}
                }
                break;
            }
            if self.stopping() {
                break;
            }
            if self
                .rebuild(&mut backoff, "connection or partition consumer lost")
                .await
                .is_none()
            {
                return;
            }
        }
        // Stopping: the partition consumers drain (see forward) and end.
        let tasks: Vec<_> =
            std::mem::take(&mut *self.parts.lock().unwrap_or_else(PoisonError::into_inner))
                .into_values()
                .map(|p| p.task)
                .collect();
        for t in tasks {
            let _ = t.await;
        }
        // The run loop's channel ends when no sender is left.
        self.tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        debug!("AMQP partition consumers stopped");
    }

    /// Cancel the partition consumers; what they were sent is drained.
    pub(super) async fn cancel_parts(&self) {
        let parts: Vec<(Channel, String)> = self
            .parts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|p| (p.channel.clone(), p.tag.clone()))
            .collect();
        for (ch, tag) in parts {
            let _ = ch
                .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                .await;
        }
    }

    /// Is partition `p` consumed here now?
    pub fn consumes(&self, p: u16) -> bool {
        self.parts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&p)
    }
}
