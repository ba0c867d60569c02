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

mod connection;
mod consume;
mod partitions;
mod publish;
mod topology;

use connection::*;
use partitions::*;
use topology::*;

pub use consume::reorder;
pub use topology::{
    CONSISTENT_HASH, declare_topology, partition_arguments, partition_queue, queue_arguments,
};

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

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("url", &redact_url(&self.url))
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}
