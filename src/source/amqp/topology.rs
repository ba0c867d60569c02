//! Topology: the exchanges and queues the bridge declares (or checks, when
//! they are pre-provisioned), their arguments, and which broker errors are
//! fatal.

use super::*;

pub(super) fn long(s: &str) -> AMQPValue {
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

pub(super) fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

pub(super) fn durable_queue() -> QueueDeclareOptions {
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
pub(super) async fn check_topology(conn: &Connection, cfg: &AmqpConfig) -> lapin::Result<()> {
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
pub(super) fn fatal_kind(e: &lapin::Error) -> Option<&'static str> {
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
