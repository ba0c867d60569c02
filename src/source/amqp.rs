//! The AMQP source: chat events from RabbitMQ through lapin.
//!
//! * **Topology** ([`declare_topology`]): the chat exchange (topic) and the
//!   quorum queue the bridge consumes, bound with `amqp.binding_key`; a
//!   dead-letter exchange and queue; `x-delivery-limit`, so a message that
//!   keeps failing is dead-lettered by the broker instead of looping forever;
//!   the outcomes exchange. Declaring is idempotent; a queue that exists with
//!   other arguments is a configuration error (`PRECONDITION_FAILED`), reported
//!   as such. `deploy/rabbitmq/definitions.json` holds the same topology.
//! * **Consumer**: manual acknowledgements and a QoS prefetch, so at most
//!   `amqp.prefetch` unacknowledged deliveries are in the process at once
//!   (this bounds memory). Deliveries are forwarded in order to the run loop;
//!   the run acknowledges each one only when its outcome is durable.
//! * **Reconnection**: a supervisor owns the connection. When it is lost
//!   (broker restart, network), the supervisor reconnects with exponential
//!   backoff and consumes again. Deliveries received on the lost connection
//!   cannot be acknowledged any more; the broker redelivers them and the ledger
//!   recognises the ones already decided. lapin's own auto-recovery is not
//!   used: one rebuild path (connect, declare, consume) is simpler to reason
//!   about than recovery of individual channels, and it is the path taken at
//!   start anyway.
//! * **Publishing** (dead letters with a reason, outcome events) goes through a
//!   separate channel in confirm mode: [`Broker::publish`] returns only when
//!   the broker has confirmed the message.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::{Notify, mpsc};
use tracing::{debug, info, warn};

use super::Delivery;
use crate::backoff::Backoff;
use crate::config::{AmqpConfig, redact_url};

/// After a stop, deliveries already sent are forwarded until none has come for this long.
const DRAIN_IDLE: Duration = Duration::from_secs(2);

/// How long a partition being given back waits for its forwarded deliveries
/// to be finished before closing its channel anyway.
const RELEASE_WAIT: Duration = Duration::from_secs(30);

/// Redelivered messages are collected until none has come for this long.
const REORDER_IDLE: Duration = Duration::from_millis(300);

/// The `sent_at` of a chat event body, if it has a readable one.
fn sent_at(d: &Delivery) -> Option<chrono::DateTime<chrono::Utc>> {
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

async fn flush(returned: &mut Vec<Delivery>, tx: &mpsc::Sender<Delivery>) -> Result<(), ()> {
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

/// Header naming why the bridge dead-lettered a message.
pub const REASON_HEADER: &str = "x-recordbridge-reason";

/// An AMQP delivery's handle: acknowledge it once its outcome is durable.
#[derive(Debug)]
pub struct AmqpMsg {
    pub acker: lapin::Acker,
    /// Connection generation the delivery came on (acks on an older one fail).
    pub generation: u64,
    pub routing_key: String,
    pub properties: BasicProperties,
    /// The body when it is not UTF-8 (otherwise it is in [`Delivery::body`]).
    pub raw_invalid: Option<Vec<u8>>,
    pub redelivered: bool,
    /// The partition's count of deliveries forwarded and not yet
    /// acknowledged (partitioned consumption; a partition is given back
    /// only when it is zero).
    pub inflight: Option<Arc<AtomicUsize>>,
}

impl AmqpMsg {
    /// A text header of the message (long or short string), if present.
    pub fn header_text(&self, name: &str) -> Option<String> {
        match self.properties.headers().as_ref()?.inner().get(name)? {
            AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
            AMQPValue::ShortString(s) => Some(s.to_string()),
            _ => None,
        }
    }
}

/// The live connection and its two channels.
struct Live {
    conn: Arc<Connection>,
    consume: Channel,
    publish: Channel,
    consumer_tag: String,
}

/// A fatal broker problem: reconnecting will not help (wrong credentials,
/// topology that differs from the configuration, missing pre-provisioned queue).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Fatal(pub String);

/// Shared handle to the broker: connection state, publishing, shutdown.
pub struct Broker {
    url: String,
    cfg: AmqpConfig,
    live: Mutex<Option<Live>>,
    connected: AtomicBool,
    generation: AtomicU64,
    stop: tokio::sync::watch::Sender<bool>,
    reconnected: Notify,
    /// A partition consumer ended with an error (partitioned consumption).
    lost: Notify,
    /// Partitioned consumption: the partitions consumed now.
    parts: Mutex<std::collections::BTreeMap<u16, Part>>,
    /// Where deliveries go (kept for partitions subscribed later).
    tx: Mutex<Option<mpsc::Sender<Delivery>>>,
}

/// One partition queue being consumed, on its own channel.
struct Part {
    release: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    channel: Channel,
    tag: String,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("url", &redact_url(&self.url))
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

/// Arguments of the consumed quorum queue.
pub fn queue_arguments(cfg: &AmqpConfig) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long("quorum"));
    args.insert("x-dead-letter-exchange".into(), long(&cfg.dead_exchange));
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongInt(cfg.delivery_limit as i32),
    );
    // Dead-letter at-least-once: the broker keeps a message until the
    // dead-letter queue has confirmed it (needs reject-publish overflow).
    args.insert("x-dead-letter-strategy".into(), long("at-least-once"));
    args.insert("x-overflow".into(), long("reject-publish"));
    args
}

fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// Declare (idempotently) every exchange, queue and binding the bridge uses.
pub async fn declare_topology(ch: &Channel, cfg: &AmqpConfig) -> lapin::Result<()> {
    let none = FieldTable::default;
    ch.exchange_declare(
        cfg.exchange.as_str().into(),
        ExchangeKind::Topic,
        durable_exchange(),
        none(),
    )
    .await?;
    ch.exchange_declare(
        cfg.dead_exchange.as_str().into(),
        ExchangeKind::Topic,
        durable_exchange(),
        none(),
    )
    .await?;
    ch.exchange_declare(
        cfg.outcomes_exchange.as_str().into(),
        ExchangeKind::Topic,
        durable_exchange(),
        none(),
    )
    .await?;
    let mut dead_args = FieldTable::default();
    dead_args.insert("x-queue-type".into(), long("quorum"));
    ch.queue_declare(cfg.dead_queue.as_str().into(), durable_queue(), dead_args)
        .await?;
    ch.queue_bind(
        cfg.dead_queue.as_str().into(),
        cfg.dead_exchange.as_str().into(),
        "#".into(),
        QueueBindOptions::default(),
        none(),
    )
    .await?;
    if cfg.partitions > 0 {
        // Chat exchange → consistent-hash exchange (hashing the routing key,
        // which publishers set to the room) → N partition queues, weight 1 each.
        ch.exchange_declare(
            cfg.partition_exchange.as_str().into(),
            ExchangeKind::Custom(CONSISTENT_HASH.into()),
            durable_exchange(),
            none(),
        )
        .await?;
        ch.exchange_bind(
            cfg.partition_exchange.as_str().into(),
            cfg.exchange.as_str().into(),
            cfg.binding_key.as_str().into(),
            lapin::options::ExchangeBindOptions::default(),
            none(),
        )
        .await?;
        for p in 0..cfg.partitions {
            let q = partition_queue(cfg, p);
            ch.queue_declare(q.as_str().into(), durable_queue(), partition_arguments(cfg))
                .await?;
            ch.queue_bind(
                q.as_str().into(),
                cfg.partition_exchange.as_str().into(),
                "1".into(),
                QueueBindOptions::default(),
                none(),
            )
            .await?;
        }
        return Ok(());
    }
    ch.queue_declare(
        cfg.queue.as_str().into(),
        durable_queue(),
        queue_arguments(cfg),
    )
    .await?;
    ch.queue_bind(
        cfg.queue.as_str().into(),
        cfg.exchange.as_str().into(),
        cfg.binding_key.as_str().into(),
        QueueBindOptions::default(),
        none(),
    )
    .await?;
    Ok(())
}

/// The exchange type of the consistent-hash plugin.
pub const CONSISTENT_HASH: &str = "x-consistent-hash";

/// The name of partition queue `p`: `queue.p`.
pub fn partition_queue(cfg: &AmqpConfig, p: u16) -> String {
    format!("{}.{p}", cfg.queue)
}

/// Arguments of a partition queue: those of the consumed queue, and a
/// single active consumer (one replica at a time receives its messages).
pub fn partition_arguments(cfg: &AmqpConfig) -> FieldTable {
    let mut args = queue_arguments(cfg);
    args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    args
}

/// Check that a pre-provisioned topology exists (passive declarations).
async fn check_topology(conn: &Connection, cfg: &AmqpConfig) -> lapin::Result<()> {
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    // A failed passive declare closes the channel: one channel per check.
    let queues: Vec<String> = if cfg.partitions > 0 {
        (0..cfg.partitions)
            .map(|p| partition_queue(cfg, p))
            .collect()
    } else {
        vec![cfg.queue.clone()]
    };
    for q in queues.iter().chain([&cfg.dead_queue]) {
        let ch = conn.create_channel().await?;
        ch.queue_declare(q.as_str().into(), passive, FieldTable::default())
            .await?;
        let _ = ch.close(200, "ok".into()).await;
    }
    if cfg.publish_outcomes {
        let ch = conn.create_channel().await?;
        ch.exchange_declare(
            cfg.outcomes_exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                passive: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
        let _ = ch.close(200, "ok".into()).await;
    }
    Ok(())
}

/// Errors that reconnecting cannot cure.
fn fatal_kind(e: &lapin::Error) -> Option<&'static str> {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => match amqp.kind() {
            AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED) => Some(
                "the broker has this topology with other arguments (PRECONDITION_FAILED); \
                 make the amqp settings match it, or delete the queue",
            ),
            AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED)
            | AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED) => {
                Some("access refused: check the AMQP user's permissions and the vhost")
            }
            AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) => {
                Some("not found: with amqp.declare = false the topology must exist")
            }
            AMQPErrorKind::Hard(AMQPHardError::COMMANDINVALID)
                if amqp.get_message().as_str().contains(CONSISTENT_HASH) =>
            {
                Some(
                    "the broker has no consistent-hash exchange type: \
                     run `rabbitmq-plugins enable rabbitmq_consistent_hash_exchange` (amqp.partitions > 0)",
                )
            }
            _ => None,
        },
        lapin::ErrorKind::AuthProviderError(_) => Some("authentication failed"),
        _ => None,
    }
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
    async fn connect(&self) -> lapin::Result<Option<lapin::Consumer>> {
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
    async fn supervise(self: Arc<Self>, mut consumer: lapin::Consumer, tx: mpsc::Sender<Delivery>) {
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
    fn live_conn(&self) -> Option<Arc<Connection>> {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|l| l.conn.clone())
    }

    /// Close the current connection, if any, and mark the broker disconnected.
    async fn close_live(&self, code: u16, why: &str) {
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
    async fn rebuild(&self, backoff: &mut Backoff, why: &str) -> Option<Option<lapin::Consumer>> {
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

    /// Forward deliveries until the connection is lost (returns why) or the
    /// consumer is stopped. After a stop (`basic.cancel`), what the broker has
    /// already sent is still forwarded and processed rather than released:
    /// RabbitMQ 3.10 does not keep the original order of messages a closing
    /// consumer returns, and a thread's events must be decided in order.
    async fn forward(&self, consumer: &mut lapin::Consumer, tx: &mpsc::Sender<Delivery>) -> String {
        let (_never, rx) = tokio::sync::watch::channel(false);
        self.forward_until(consumer, tx, rx, None).await
    }

    /// [`Broker::forward`], also ending (with "released") when `release`
    /// turns true; `inflight` counts what it forwards (partitions).
    async fn forward_until(
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
    async fn subscribe(
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
    async fn supervise_partitions(self: Arc<Self>) {
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

    /// Cancel the partition consumers; what they were sent is drained.
    async fn cancel_parts(&self) {
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

    /// Close the current connection so that the supervisor rebuilds it.
    async fn drop_connection(&self, why: &str) {
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

    async fn sleep_or_stop(&self, d: Duration) {
        tokio::select! {
            () = tokio::time::sleep(d) => {}
            () = self.stopped() => {}
        }
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

    /// Publish one message and wait for the broker's confirmation. Retries
    /// (waiting for a reconnection) until confirmed or the bridge is stopping.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        props: BasicProperties,
    ) -> anyhow::Result<()> {
        let mut backoff = reconnect_backoff(&self.cfg);
        loop {
            let ch = self
                .live
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map(|l| l.publish.clone());
            let err = match ch {
                None => "not connected".to_owned(),
                Some(ch) => {
                    match publish_confirmed(&ch, exchange, routing_key, payload, props.clone())
                        .await
                    {
                        Ok(()) => return Ok(()),
                        Err(e) => {
                            if !ch.status().connected() && self.is_connected() {
                                // The broker closed the publishing channel (say, an
                                // exchange was deleted): rebuild the connection,
                                // which declares the topology again.
                                self.drop_connection("publishing channel closed").await;
                            }
                            e
                        }
                    }
                }
            };
            if self.stopping() && !self.is_connected() {
                anyhow::bail!("publish to {exchange} abandoned at shutdown: {err}");
            }
            let wait = backoff.next_wait();
            warn!(exchange, error = %err, retry_in_ms = wait.as_millis() as u64, "publish not confirmed; retrying");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.reconnected.notified() => {}
            }
            if self.stopping() && !self.is_connected() {
                anyhow::bail!("publish to {exchange} abandoned at shutdown: {err}");
            }
        }
    }

    /// Dead-letter a message with a reason header (publisher-confirmed). The
    /// original headers and properties are kept.
    pub async fn dead_letter(
        &self,
        routing_key: &str,
        properties: &BasicProperties,
        body: &[u8],
        reason: &str,
    ) -> anyhow::Result<()> {
        let mut headers = properties.headers().clone().unwrap_or_default();
        // Reasons name a field and a problem, never content; keep them short.
        let reason: String = reason.chars().take(1000).collect();
        headers.insert(REASON_HEADER.into(), long(&reason));
        headers.insert("x-recordbridge-queue".into(), long(&self.cfg.queue));
        let props = properties
            .clone()
            .with_headers(headers)
            .with_delivery_mode(2);
        self.publish(&self.cfg.dead_exchange, routing_key, body, props)
            .await
    }
}

async fn publish_confirmed(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
    props: BasicProperties,
) -> Result<(), String> {
    let confirm = ch
        .basic_publish(
            ShortString::from(exchange),
            ShortString::from(routing_key),
            BasicPublishOptions::default(),
            payload,
            props,
        )
        .await
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    if confirm.is_nack() {
        return Err("the broker refused the message (nack)".into());
    }
    Ok(())
}

/// The wait between reconnects (settings `amqp.reconnect_initial_ms`, `amqp.reconnect_max_ms`).
fn reconnect_backoff(cfg: &AmqpConfig) -> Backoff {
    Backoff::new(
        Duration::from_millis(cfg.reconnect_initial_ms),
        Duration::from_millis(cfg.reconnect_max_ms),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(seq: u64, body: &str) -> Delivery {
        Delivery {
            seq,
            body: Ok(body.to_owned()),
            amqp: None,
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
