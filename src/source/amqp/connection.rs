//! The connection: start, supervision, reconnection with backoff, shutdown.

use super::*;

/// The wait between reconnects (settings `amqp.reconnect_initial_ms`, `amqp.reconnect_max_ms`).
pub(super) fn reconnect_backoff(cfg: &AmqpConfig) -> Backoff {
    Backoff::new(
        Duration::from_millis(cfg.reconnect_initial_ms),
        Duration::from_millis(cfg.reconnect_max_ms),
    )
}

impl Broker {
    /// Connect (retrying until the broker answers, or failing on a fatal
    /// error), declare the topology and start consuming. Deliveries arrive on
    /// the returned channel until [`Broker::stop_consuming`].
    ///
    /// `Ok(None)`: `shutdown` came before the broker could be reached.
    pub async fn start(
        url: &str,
        cfg: &AmqpConfig,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<Option<(Arc<Self>, mpsc::Receiver<Delivery>)>> {
        let broker = Arc::new(Self {
            url: url.to_owned(),
            cfg: cfg.clone(),
            live: Mutex::new(None),
            connected: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            stop: tokio::sync::watch::Sender::new(false),
            reconnected: Notify::new(),
            lost: Notify::new(),
            parts: Mutex::new(std::collections::BTreeMap::new()),
            tx: Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel(usize::from(cfg.prefetch));
        // The first connection is made here, so that configuration errors
        // (credentials, topology) stop the start with a clear message.
        let mut backoff = reconnect_backoff(cfg);
        let consumer = loop {
            match broker.connect().await {
                Ok(c) => break c,
                Err(e) => {
                    if let Some(why) = fatal_kind(&e) {
                        anyhow::bail!(Fatal(format!(
                            "AMQP source {}: {why} ({e})",
                            redact_url(url)
                        )));
                    }
                    let wait = backoff.next_wait();
                    warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot reach the AMQP broker yet");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = shutdown.wait_for(|s| *s) => {
                            info!("stopped before the AMQP broker could be reached");
                            return Ok(None);
                        }
                    }
                }
            }
        };
        let b = broker.clone();
        match consumer {
            Some(c) => {
                tokio::spawn(async move { b.supervise(c, tx).await });
            }
            None => {
                *broker.tx.lock().unwrap_or_else(PoisonError::into_inner) = Some(tx);
                tokio::spawn(async move { b.supervise_partitions().await });
            }
        }
        Ok(Some((broker, rx)))
    }

    /// One connection: channels, topology, QoS and the consumer (none with
    /// partitions: those are subscribed by [`Broker::set_partitions`]).
    pub(super) async fn connect(&self) -> lapin::Result<Option<lapin::Consumer>> {
        let props = ConnectionProperties::default()
            .with_connection_name(LongString::from("recordbridge".as_bytes().to_vec()));
        let conn = Connection::connect(&self.url, props).await?;
        let consume = conn.create_channel().await?;
        if self.cfg.declare {
            declare_topology(&consume, &self.cfg).await?;
        } else {
            check_topology(&conn, &self.cfg).await?;
        }
        let publish = conn.create_channel().await?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        consume
            .basic_qos(self.cfg.prefetch, BasicQosOptions::default())
            .await?;
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let tag = format!("recordbridge-{}-{generation}", std::process::id());
        if self.cfg.partitions > 0 {
            *self.live.lock().unwrap_or_else(PoisonError::into_inner) = Some(Live {
                conn: Arc::new(conn),
                consume,
                publish,
                consumer_tag: String::new(),
            });
            self.connected.store(true, Ordering::SeqCst);
            self.reconnected.notify_waiters();
            info!(
                broker = %redact_url(&self.url),
                partitions = self.cfg.partitions,
                generation,
                "connected to AMQP; partitions are consumed as their leases are taken"
            );
            return Ok(None);
        }
        let consumer = consume
            .basic_consume(
                self.cfg.queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        *self.live.lock().unwrap_or_else(PoisonError::into_inner) = Some(Live {
            conn: Arc::new(conn),
            consume,
            publish,
            consumer_tag: tag,
        });
        self.connected.store(true, Ordering::SeqCst);
        self.reconnected.notify_waiters();
        info!(
            broker = %redact_url(&self.url),
            queue = %self.cfg.queue,
            prefetch = self.cfg.prefetch,
            generation,
            "consuming from AMQP"
        );
        Ok(Some(consumer))
    }

    /// Forward deliveries; on a lost connection, reconnect with backoff.
    pub(super) async fn supervise(
        self: Arc<Self>,
        mut consumer: lapin::Consumer,
        tx: mpsc::Sender<Delivery>,
    ) {
        let mut backoff = reconnect_backoff(&self.cfg);
        loop {
            let lost = self.forward(&mut consumer, &tx).await;
            if self.stopping() || tx.is_closed() {
                break;
            }
            match self.rebuild(&mut backoff, &lost).await {
                Some(Some(c)) => consumer = c,
                // Stopping; or (not with one queue) a connection without a consumer.
                _ => break,
            }
        }
        debug!("AMQP consumer stopped");
    }

    /// The current connection, if any.
    pub(super) fn live_conn(&self) -> Option<Arc<Connection>> {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|l| l.conn.clone())
    }

    /// Close the current connection, if any, and mark the broker disconnected.
    pub(super) async fn close_live(&self, code: u16, why: &str) {
        self.connected.store(false, Ordering::SeqCst);
        let live = self
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(l) = live {
            let _ = l.conn.close(code, why.into()).await;
        }
    }

    /// Drop the broken connection (its unacknowledged deliveries are
    /// redelivered; partition consumers die with it and are subscribed again
    /// by [`Broker::set_partitions`]) and connect again with backoff.
    /// `None` when stopping first.
    pub(super) async fn rebuild(
        &self,
        backoff: &mut Backoff,
        why: &str,
    ) -> Option<Option<lapin::Consumer>> {
        self.close_live(320, "reconnecting").await;
        for (_, p) in
            std::mem::take(&mut *self.parts.lock().unwrap_or_else(PoisonError::into_inner))
        {
            p.task.abort();
        }
        warn!(reason = %why, "AMQP connection lost; reconnecting");
        loop {
            let wait = backoff.next_wait();
            self.sleep_or_stop(wait).await;
            if self.stopping() {
                return None;
            }
            match self.connect().await {
                Ok(c) => {
                    backoff.reset();
                    return Some(c);
                }
                Err(e) => {
                    warn!(error = %e, retry_in_ms = backoff.peek().as_millis() as u64, "AMQP reconnect failed")
                }
            }
        }
    }

    /// Close the current connection so that the supervisor rebuilds it.
    pub(super) async fn drop_connection(&self, why: &str) {
        let conn = self.live_conn();
        if let Some(c) = conn {
            warn!(reason = why, "closing the AMQP connection to rebuild it");
            let _ = c.close(320, "rebuilding".into()).await;
        }
    }

    /// Close the connection; unacknowledged deliveries return to the queue.
    pub async fn close(&self) {
        self.stop.send_replace(true);
        self.close_live(200, "shutdown").await;
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves once the bridge is stopping.
    pub async fn stopped(&self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    pub fn config(&self) -> &AmqpConfig {
        &self.cfg
    }

    pub(super) async fn sleep_or_stop(&self, d: Duration) {
        tokio::select! {
            () = tokio::time::sleep(d) => {}
            () = self.stopped() => {}
        }
    }
}
