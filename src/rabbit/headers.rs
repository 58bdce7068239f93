//! Reading AMQP headers: the `x-death` history RabbitMQ writes on dead-lettered messages, and
//! header values as text or numbers.

use lapin::types::{AMQPValue, FieldTable};

/// The `x-death` entries of a message, the latest first.
pub fn deaths(headers: &FieldTable) -> impl Iterator<Item = &FieldTable> {
    let entries = match headers.inner().get("x-death") {
        Some(AMQPValue::FieldArray(entries)) => entries.as_slice(),
        _ => &[],
    };
    entries.iter().filter_map(|e| match e {
        AMQPValue::FieldTable(t) => Some(t),
        _ => None,
    })
}

/// A header value as text (long or short string).
pub fn text(value: Option<&AMQPValue>) -> Option<&str> {
    match value? {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

/// A header value as a number (any integer type, or a timestamp).
pub fn integer(value: Option<&AMQPValue>) -> Option<u64> {
    match value? {
        AMQPValue::LongLongInt(i) => u64::try_from(*i).ok(),
        AMQPValue::LongInt(i) => u64::try_from(*i).ok(),
        AMQPValue::ShortInt(i) => u64::try_from(*i).ok(),
        AMQPValue::LongUInt(i) => Some(u64::from(*i)),
        AMQPValue::Timestamp(i) => Some(*i),
        _ => None,
    }
}
