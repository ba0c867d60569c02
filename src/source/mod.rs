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
    /// For a file line that is not text (invalid UTF-8, or longer than an
    /// event may be): its bytes as read, so that the reject report keeps them.
    pub raw: Option<RawLine>,
}

/// The bytes of an input line that could not be read as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine {
    /// The line's bytes, or its first [`crate::event::MAX_EVENT_BYTES`] for a
    /// longer line (memory stays bounded).
    pub kept: Vec<u8>,
    /// How many bytes the line had (without its `\n`).
    pub len: u64,
    /// SHA-256 of the whole line, hex: ties what was kept to the input.
    pub sha256: String,
}
