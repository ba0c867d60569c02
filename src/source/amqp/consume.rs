//! Consumption: forwarding deliveries in order (redeliveries put back in
//! `sent_at` order), draining at a stop, and acknowledgements.

use super::*;

/// After a stop, deliveries already sent are forwarded until none has come for this long.
pub(super) const DRAIN_IDLE: Duration = Duration::from_secs(2);

/// Redelivered messages are collected until none has come for this long.
pub(super) const REORDER_IDLE: Duration = Duration::from_millis(300);

/// The `sent_at` of a chat event body, if it has a readable one.
pub(super) fn sent_at(d: &Delivery) -> Option<chrono::DateTime<chrono::Utc>> {
    #[derive(serde::Deserialize)]
    struct Sent {
        sent_at: Option<String>,
    }
    let s: Sent = serde_json::from_str(d.body.as_deref().ok()?).ok()?;
    chrono::DateTime::parse_from_rfc3339(&s.sent_at?)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Put redelivered messages back in `sent_at` order (stable; unreadable ones
/// first, where they are rejected anyway).
pub fn reorder(returned: &mut [Delivery]) {
    returned.sort_by_cached_key(sent_at);
}

pub(super) async fn flush(
    returned: &mut Vec<Delivery>,
    tx: &mpsc::Sender<Delivery>,
) -> Result<(), ()> {
    if returned.is_empty() {
        return Ok(());
    }
    reorder(returned);
    debug!(
        count = returned.len(),
        "redelivered messages forwarded in sent_at order"
    );
    for d in returned.drain(..) {
        tx.send(d).await.map_err(|_| ())?;
    }
    Ok(())
}

impl Broker {
    /// Forward deliveries until the connection is lost (returns why) or the
    /// consumer is stopped. After a stop (`basic.cancel`), what the broker has
    /// already sent is still forwarded and processed rather than released:
    /// RabbitMQ 3.10 does not keep the original order of messages a closing
    /// consumer returns, and a thread's events must be decided in order.
    pub(super) async fn forward(
        &self,
        consumer: &mut lapin::Consumer,
        tx: &mpsc::Sender<Delivery>,
    ) -> String {
        let (_never, rx) = tokio::sync::watch::channel(false);
        self.forward_until(consumer, tx, rx, None).await
    }

    /// [`Broker::forward`], also ending (with "released") when `release`
    /// turns true; `inflight` counts what it forwards (partitions).
    pub(super) async fn forward_until(
        &self,
        consumer: &mut lapin::Consumer,
        tx: &mpsc::Sender<Delivery>,
        mut release: tokio::sync::watch::Receiver<bool>,
        inflight: Option<Arc<AtomicUsize>>,
    ) -> String {
        let generation = self.generation.load(Ordering::SeqCst);
        let mut release_open = true;
        // Redelivered messages (returned by a crashed or disconnected
        // consumer) come back first, in an order RabbitMQ 3.10 does not
        // guarantee: they are collected and forwarded in `sent_at` order.
        let mut returned: Vec<Delivery> = Vec::new();
        let why = loop {
            let wait = if self.stopping() {
                DRAIN_IDLE
            } else if returned.is_empty() {
                Duration::from_secs(3600)
            } else {
                REORDER_IDLE
            };
            let next = tokio::select! {
                n = tokio::time::timeout(wait, consumer.next()) => match n {
                    Ok(n) => n,
                    // Idle: forward what was collected; when stopping, the drain is over.
                    Err(_) => {
                        if flush(&mut returned, tx).await.is_err() || self.stopping() {
                            break "stopped".to_owned();
                        }
                        continue;
                    }
                },
                () = self.stopped(), if !self.stopping() => continue, // drain from now on
                r = release.changed(), if release_open => {
                    if r.is_err() {
                        release_open = false;
                    } else if *release.borrow_and_update() {
                        break "released".to_owned();
                    }
                    continue;
                }
            };
            let d = match next {
                Some(Ok(d)) => d,
                None if self.stopping() => break "stopped".into(),
                Some(Err(e)) => break e.to_string(),
                None => break "consumer cancelled by the broker".into(),
            };
            let (body, raw_invalid) = match String::from_utf8(d.data) {
                Ok(s) => (Ok(s), None),
                Err(e) => (
                    Err(format!(
                        "not UTF-8 at byte {}",
                        e.utf8_error().valid_up_to()
                    )),
                    Some(e.into_bytes()),
                ),
            };
            let redelivered = d.redelivered;
            let delivery = Delivery {
                seq: d.delivery_tag,
                body,
                amqp: Some(AmqpMsg {
                    acker: d.acker,
                    generation,
                    routing_key: d.routing_key.to_string(),
                    properties: d.properties,
                    raw_invalid,
                    redelivered,
                    inflight: inflight.clone(),
                }),
                // The broker keeps an undecodable body whole (raw_invalid).
                raw: None,
            };
            if let Some(n) = &inflight {
                n.fetch_add(1, Ordering::SeqCst);
            }
            if redelivered {
                returned.push(delivery);
                if returned.len() < usize::from(self.cfg.prefetch) {
                    continue;
                }
                if flush(&mut returned, tx).await.is_err() {
                    break "stopped".into();
                }
                continue;
            }
            // A first delivery: everything returned before it goes first.
            if flush(&mut returned, tx).await.is_err() || tx.send(delivery).await.is_err() {
                break "stopped".into(); // the run stopped reading: released at close
            }
        };
        // Collected but not forwarded: released when the connection closes.
        why
    }

    /// Stop consuming (graceful shutdown). In-flight deliveries can still be
    /// acknowledged until [`Broker::close`].
    pub async fn stop_consuming(&self) {
        if self.stop.send_replace(true) {
            return; // already stopping
        }
        let live = self
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|l| (l.consume.clone(), l.consumer_tag.clone()));
        if let Some((ch, tag)) = live.filter(|(_, t)| !t.is_empty()) {
            let _ = ch
                .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                .await;
        }
        self.cancel_parts().await;
    }

    /// Acknowledge a delivery. A failure (the connection it came on is gone)
    /// is harmless: the broker redelivers and the ledger recognises it.
    pub async fn ack(&self, m: &AmqpMsg) {
        if let Some(n) = &m.inflight {
            n.fetch_sub(1, Ordering::SeqCst);
        }
        if let Err(e) = m
            .acker
            .ack(lapin::options::BasicAckOptions::default())
            .await
        {
            debug!(error = %e, generation = m.generation, "ack failed; the delivery will come again and be deduplicated");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(seq: u64, body: &str) -> Delivery {
        Delivery {
            seq,
            body: Ok(body.to_owned()),
            amqp: None,
            raw: None,
        }
    }

    #[test]
    fn redelivered_messages_are_put_back_in_sent_at_order() {
        let ev = |id: &str, t: &str| format!(r#"{{"id":"{id}","sent_at":"{t}","text":"x"}}"#);
        let mut v = vec![
            d(1, &ev("$3", "2026-11-20T09:03:00Z")),
            d(2, &ev("$1", "2026-11-20T10:01:00+01:00")),
            d(3, "not json"),
            d(4, &ev("$2", "2026-11-20T09:02:00Z")),
            d(5, &ev("$2b", "2026-11-20T09:02:00Z")),
        ];
        reorder(&mut v);
        let order: Vec<u64> = v.iter().map(|x| x.seq).collect();
        // Unreadable first; then by time across offsets; equal times keep their order.
        assert_eq!(order, [3, 2, 4, 5, 1]);
    }
}
