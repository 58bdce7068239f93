//! The relay's history: a RabbitMQ stream (`god.relay.history` by default) bound like the
//! relay's queue, so every event has a position (the stream's offset) and a client that comes
//! back can be given what it missed. The stream's epoch (`x-god-epoch`, a UUID set when the
//! stream is created, read back through the management API) changes when the stream is
//! created again: offsets of another epoch mean nothing.

use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, Consumer};

use crate::model::queue_type::EPOCH_ARGUMENT;
use crate::rabbit::amqp::reply_code;
use crate::rabbit::endpoints::{BrokerEndpoints, mask_url_str};
use crate::rabbit::headers::integer;
use crate::rabbit::management::encode;

/// The stream's default name.
pub const DEFAULT_STREAM: &str = "god.relay.history";
/// How long the history keeps events by default.
pub const DEFAULT_MAX_AGE: &str = "1h";
/// How many bytes the history keeps at most by default.
pub const DEFAULT_MAX_BYTES: u64 = 1_000_000_000;
/// The header a stream delivery carries its offset in.
const OFFSET_HEADER: &str = "x-stream-offset";
/// Deliveries a replay takes ahead of what it has sent.
const REPLAY_PREFETCH: u16 = 2000;
/// How long the end of the stream is looked for at start: the last chunk comes at once.
const END_PROBE_QUIET: Duration = Duration::from_millis(300);

/// Where the history is and how long it keeps events.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// The stream's name.
    pub stream: String,
    /// How long events are kept (RabbitMQ's `x-max-age`: `1h`, `30m`, `7D`).
    pub max_age: String,
    /// How many bytes are kept at most (`x-max-length-bytes`).
    pub max_bytes: u64,
    /// The management API, where the epoch is read.
    pub endpoints: BrokerEndpoints,
}

/// A delivery's offset in the stream.
pub fn offset_of(delivery: &Delivery) -> Option<u64> {
    let headers = delivery.properties.headers().as_ref()?;
    integer(headers.inner().get(OFFSET_HEADER))
}

/// Declares the stream when it is missing (with a new epoch), binds it to `exchange` with
/// `binding_key`, and returns its epoch ("" when it cannot be read: then no client resumes).
pub async fn prepare(
    connection: &Connection,
    config: &HistoryConfig,
    exchange: &str,
    binding_key: &str,
) -> Result<String, lapin::Error> {
    let channel = connection.create_channel().await?;
    let passive = QueueDeclareOptions {
        passive: true,
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let (channel, created) = match channel
        .queue_declare(
            config.stream.as_str().into(),
            passive,
            FieldTable::default(),
        )
        .await
    {
        Ok(_) => (channel, None),
        Err(e) if reply_code(&e) == Some(404) => {
            let channel = connection.create_channel().await?;
            let epoch = uuid::Uuid::new_v4().to_string();
            declare(&channel, config, &epoch).await?;
            tracing::info!("relay: created its history, stream {}", config.stream);
            (channel, Some(epoch))
        }
        Err(e) => return Err(e),
    };
    channel
        .queue_bind(
            config.stream.as_str().into(),
            exchange.into(),
            binding_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    unbind_other_keys(&channel, config, exchange, binding_key).await?;
    let _ = channel.close(200, "bound".into()).await;
    match created {
        Some(epoch) => Ok(epoch),
        None => Ok(read_epoch(config).await),
    }
}

/// Removes the bindings of the stream to `exchange` other than `binding_key` (a relay started
/// before with another key left them): the history holds what this relay serves, no more.
/// Without the management API (where bindings are listed) they stay, and the relay still
/// sends only what its key matches.
async fn unbind_other_keys(
    channel: &Channel,
    config: &HistoryConfig,
    exchange: &str,
    binding_key: &str,
) -> Result<(), lapin::Error> {
    let path = format!(
        "bindings/{}/e/{}/q/{}",
        encode(&config.endpoints.vhost),
        encode(exchange),
        encode(&config.stream)
    );
    let bindings = match management_get(config, &path).await {
        Ok(bindings) => bindings,
        Err(why) => {
            tracing::warn!(
                "relay: the history's bindings cannot be listed ({why}); left as they are"
            );
            return Ok(());
        }
    };
    let stale = bindings
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["routing_key"].as_str())
        .filter(|key| *key != binding_key);
    for key in stale {
        channel
            .queue_unbind(
                config.stream.as_str().into(),
                exchange.into(),
                key.into(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!("relay: unbound key {key} of an earlier relay from its history");
    }
    Ok(())
}

async fn declare(channel: &Channel, config: &HistoryConfig, epoch: &str) -> lapin::Result<()> {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("stream".into()),
    );
    arguments.insert(
        "x-max-age".into(),
        AMQPValue::LongString(config.max_age.as_str().into()),
    );
    arguments.insert(
        "x-max-length-bytes".into(),
        AMQPValue::LongLongInt(i64::try_from(config.max_bytes).unwrap_or(i64::MAX)),
    );
    arguments.insert(EPOCH_ARGUMENT.into(), AMQPValue::LongString(epoch.into()));
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(config.stream.as_str().into(), options, arguments)
        .await
        .map(|_| ())
}

/// The epoch of an existing stream, from its arguments ("" when the API does not answer or
/// the stream has none: it was made by something else than god).
async fn read_epoch(config: &HistoryConfig) -> String {
    let path = format!(
        "queues/{}/{}",
        encode(&config.endpoints.vhost),
        encode(&config.stream)
    );
    match management_get(config, &path).await {
        Ok(queue) => queue["arguments"][EPOCH_ARGUMENT]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        Err(why) => {
            tracing::warn!(
                "relay: the history's epoch cannot be read ({why}); clients cannot resume until it can"
            );
            String::new()
        }
    }
}

/// A management API resource (`path` under `/api/`), from the first node that answers. (Plain
/// requests: the management client's node rotation cannot be awaited in the relay's session
/// task.)
async fn management_get(config: &HistoryConfig, path: &str) -> Result<serde_json::Value, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let credentials = &config.endpoints.management_credentials;
    let mut why = String::from("no management API URL");
    for base in config.endpoints.management_bases() {
        let url = format!("{base}/api/{path}");
        let answer = client
            .get(&url)
            .basic_auth(&credentials.user, Some(credentials.password()))
            .send()
            .await;
        match answer {
            Ok(answer) if answer.status().is_success() => {
                return answer.json().await.map_err(|e| e.to_string());
            }
            Ok(answer) => {
                why = format!(
                    "{} answers HTTP {}",
                    mask_url_str(&base),
                    answer.status().as_u16()
                );
            }
            Err(e) => why = format!("{}: {}", mask_url_str(&base), e.without_url()),
        }
    }
    Err(why)
}

/// A consumer of the stream from `offset` on its own channel, taking `prefetch` ahead.
pub async fn consume_from(
    connection: &Connection,
    stream: &str,
    offset: AMQPValue,
    prefetch: u16,
    tag: &str,
) -> Result<(Channel, Consumer), lapin::Error> {
    let channel = connection.create_channel().await?;
    let consumer = consume_on(&channel, stream, offset, prefetch, tag).await?;
    Ok((channel, consumer))
}

/// A consumer of the stream from `offset` on `channel`.
async fn consume_on(
    channel: &Channel,
    stream: &str,
    offset: AMQPValue,
    prefetch: u16,
    tag: &str,
) -> Result<Consumer, lapin::Error> {
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut arguments = FieldTable::default();
    arguments.insert(OFFSET_HEADER.into(), offset);
    channel
        .basic_consume(
            stream.into(),
            tag.into(),
            BasicConsumeOptions::default(),
            arguments,
        )
        .await
}

/// When the stream's first event was published (None when the stream is empty or its first
/// event says nothing of its time): the message's timestamp, else its envelope's `timestamp`.
/// Read on `channel`, which is closed afterwards.
pub async fn first_event_time(
    channel: Channel,
    stream: &str,
) -> Result<Option<time::OffsetDateTime>, lapin::Error> {
    let first = AMQPValue::LongString("first".into());
    let mut consumer = consume_on(&channel, stream, first, 1, "god-doctor-probe").await?;
    let time = match tokio::time::timeout(END_PROBE_QUIET, consumer.next()).await {
        Ok(Some(delivery)) => published_at(&delivery?),
        _ => None,
    };
    let _ = channel.close(200, "probed".into()).await;
    Ok(time)
}

fn published_at(delivery: &Delivery) -> Option<time::OffsetDateTime> {
    if let Some(seconds) = *delivery.properties.timestamp() {
        return time::OffsetDateTime::from_unix_timestamp(i64::try_from(seconds).ok()?).ok();
    }
    let envelope: serde_json::Value = serde_json::from_slice(&delivery.data).ok()?;
    let text = envelope["timestamp"].as_str()?;
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

/// A replay of the stream from `offset`.
pub async fn replay_from(
    connection: &Connection,
    stream: &str,
    offset: u64,
) -> Result<(Channel, Consumer), lapin::Error> {
    let offset = AMQPValue::LongLongInt(i64::try_from(offset).unwrap_or(i64::MAX));
    consume_from(
        connection,
        stream,
        offset,
        REPLAY_PREFETCH,
        "god-relay-replay",
    )
    .await
}

/// The offset of the stream's last event, None when it is empty: its last chunk is read until
/// the deliveries stop.
pub async fn end_offset(
    connection: &Connection,
    stream: &str,
) -> Result<Option<u64>, lapin::Error> {
    let last = AMQPValue::LongString("last".into());
    let (channel, mut consumer) =
        consume_from(connection, stream, last, REPLAY_PREFETCH, "god-relay-probe").await?;
    let mut end = None;
    while let Ok(Some(delivery)) = tokio::time::timeout(END_PROBE_QUIET, consumer.next()).await {
        let delivery = delivery?;
        end = end.max(offset_of(&delivery));
        delivery.acker.ack(BasicAckOptions::default()).await?;
    }
    let _ = channel.close(200, "probed".into()).await;
    Ok(end)
}
