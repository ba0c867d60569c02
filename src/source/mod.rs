//! Sources of chat events. Each yields [`Delivery`]s in order.

pub mod amqp;
pub mod file;

/// One input unit: its origin (for reject reports) and its body, or why it
/// could not even be read as text.
#[derive(Debug)]
pub struct Delivery {
    /// 1-based position in the source (line number for files, delivery tag for AMQP).
    pub seq: u64,
    pub body: Result<String, String>,
    /// For AMQP deliveries: the handle to acknowledge or dead-letter it.
    pub amqp: Option<amqp::AmqpMsg>,
}
