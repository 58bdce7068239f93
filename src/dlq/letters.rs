//! What a dead-letter queue holds, read from each message's `x-death` history without
//! consuming it: reading takes every message of the queue unacknowledged on one channel, then
//! closes the channel, and the broker puts them all back where they were, in the same order.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use serde::Serialize;

use crate::error::{GodError, Result};
use crate::model::duration::parse_millis;
use crate::rabbit::amqp::AmqpSession;
use crate::rabbit::headers::{deaths, integer, text};

/// The header counting how many times god replayed a message.
pub const REPLAYS_HEADER: &str = "x-god-replays";
/// Characters of the body shown by `god dlq show`.
const PREVIEW: usize = 80;
/// How long reading waits for the next message before it takes the queue as read.
pub(super) const QUIET: Duration = Duration::from_secs(2);

/// One dead-lettered message, as its headers and body describe it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// Its place in the queue, from 1.
    pub position: usize,
    /// The event id: the message id, else the envelope's `event_id`.
    pub event_id: Option<String>,
    /// The event type: the envelope's `event_type`, else its first routing key.
    pub event_type: String,
    /// Why it died the last time: `rejected`, `expired`, `maxlen`, `delivery_limit`.
    pub reason: String,
    /// The queue it died in.
    pub origin_queue: Option<String>,
    /// The exchange it had been published to.
    pub exchange: Option<String>,
    /// The routing keys it had been published with.
    pub routing_keys: Vec<String>,
    /// When it died (seconds since the epoch).
    pub died_at: Option<u64>,
    /// How many times it died in that queue for that reason.
    pub deaths: u64,
    /// How many times god replayed it.
    pub replays: u64,
    /// The beginning of its body.
    pub preview: String,
}

impl DeadLetter {
    /// Reads a delivered message.
    pub fn of(position: usize, delivery: &Delivery) -> Self {
        let headers = delivery.properties.headers().clone().unwrap_or_default();
        let last = deaths(&headers).next();
        let field = |key: &str| {
            last.and_then(|d| text(d.inner().get(key)))
                .map(str::to_string)
        };
        let routing_keys: Vec<String> = match last.and_then(|d| d.inner().get("routing-keys")) {
            Some(AMQPValue::FieldArray(keys)) => keys
                .as_slice()
                .iter()
                .filter_map(|k| text(Some(k)).map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        let body: Option<serde_json::Value> = serde_json::from_slice(&delivery.data).ok();
        let body_text = |key: &str| {
            body.as_ref()
                .and_then(|b| b.get(key))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let event_type = body_text("event_type")
            .or_else(|| routing_keys.first().cloned())
            .unwrap_or_else(|| delivery.routing_key.to_string());
        Self {
            position,
            event_id: delivery
                .properties
                .message_id()
                .as_ref()
                .map(|m| m.to_string())
                .or_else(|| body_text("event_id")),
            event_type,
            reason: field("reason").unwrap_or_else(|| "none".to_string()),
            origin_queue: field("queue"),
            exchange: field("exchange"),
            routing_keys,
            died_at: last.and_then(|d| integer(d.inner().get("time"))),
            deaths: last
                .and_then(|d| integer(d.inner().get("count")))
                .unwrap_or(0),
            replays: integer(headers.inner().get(REPLAYS_HEADER)).unwrap_or(0),
            preview: String::from_utf8_lossy(&delivery.data)
                .chars()
                .take(PREVIEW)
                .collect(),
        }
    }
}

/// Which dead letters a command takes: `reason=rejected,type=agent.*,older-than=1h`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// The reason it died.
    pub reason: Option<String>,
    /// Its event type, as a topic pattern (`agent.#`, `task.*`).
    pub event_type: Option<String>,
    /// Died at least this long ago.
    pub older_than: Option<Duration>,
}

impl Filter {
    /// Parses `key=value` pairs, comma-separated.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut filter = Filter::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not KEY=VALUE"))?;
            match key.trim() {
                "reason" => filter.reason = Some(value.trim().to_string()),
                "type" => filter.event_type = Some(value.trim().to_string()),
                "older-than" => {
                    filter.older_than = Some(
                        parse_millis(value.trim())
                            .map(Duration::from_millis)
                            .map_err(|e| format!("older-than={value}: {e}"))?,
                    )
                }
                other => {
                    return Err(format!(
                        "unknown filter {other:?}: use reason=, type= or older-than="
                    ));
                }
            }
        }
        Ok(filter)
    }

    /// Whether a dead letter passes, at `now` (seconds since the epoch).
    pub fn matches(&self, letter: &DeadLetter, now: u64) -> bool {
        let reason = self.reason.as_ref().is_none_or(|r| r == &letter.reason);
        let event_type = self
            .event_type
            .as_ref()
            .is_none_or(|p| crate::model::topic::matches(p, &letter.event_type));
        let old = self.older_than.is_none_or(|age| {
            letter
                .died_at
                .is_some_and(|t| now.saturating_sub(t) >= age.as_secs())
        });
        reason && event_type && old
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A queue's dead letters by what they have in common.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// The dead-letter queue summed up.
    pub queue: String,
    /// Its messages, counted by the broker.
    pub count: u64,
    /// When the oldest died (seconds since the epoch).
    pub oldest: Option<u64>,
    /// Messages by reason.
    pub reasons: BTreeMap<String, u64>,
    /// Messages by event type.
    pub event_types: BTreeMap<String, u64>,
    /// Messages by the queue they died in.
    pub origins: BTreeMap<String, u64>,
}

impl Summary {
    /// The summary of the dead letters of `queue`.
    pub fn of(queue: &str, count: u64, letters: &[DeadLetter]) -> Self {
        let mut summary = Summary {
            queue: queue.to_string(),
            count,
            oldest: letters.iter().filter_map(|l| l.died_at).min(),
            ..Summary::default()
        };
        for letter in letters {
            *summary.reasons.entry(letter.reason.clone()).or_default() += 1;
            *summary
                .event_types
                .entry(letter.event_type.clone())
                .or_default() += 1;
            let origin = letter.origin_queue.clone().unwrap_or_else(|| "?".into());
            *summary.origins.entry(origin).or_default() += 1;
        }
        summary
    }
}

/// The number of messages in `queue` now (a passive declare); a queue that does not exist is
/// an error naming it.
pub async fn depth(session: &AmqpSession, queue: &str) -> Result<u64> {
    let counts = crate::observe::rabbit::exact_counts(
        session,
        &std::collections::BTreeSet::from([queue.to_string()]),
    )
    .await?;
    counts.get(queue).map(|s| s.messages).ok_or_else(|| {
        GodError::Usage(format!(
            "queue {queue} does not exist in this vhost\nhint: `god dlq list` names the dead-letter queues"
        ))
    })
}

/// Reads the first `limit` messages of `queue` (all when None) without consuming them: they
/// are taken unacknowledged and given back, in their order, when the channel closes. Returns
/// the queue's count, by the broker, with them.
pub async fn read(
    session: &AmqpSession,
    queue: &str,
    limit: Option<u64>,
) -> Result<(u64, Vec<DeadLetter>)> {
    let count = depth(session, queue).await?;
    let wanted = limit.map_or(count, |l| l.min(count));
    let channel = session.channel().await?;
    let mut deliveries = subscribe(session, &channel, queue, "god-dlq-read").await?;
    let mut letters = Vec::new();
    while (letters.len() as u64) < wanted {
        match tokio::time::timeout(QUIET, deliveries.next()).await {
            Ok(Some(Ok(delivery))) => letters.push(DeadLetter::of(letters.len() + 1, &delivery)),
            _ => break,
        }
    }
    let _ = channel.close(200, "read".into()).await;
    Ok((count, letters))
}

/// Consumes `queue` with manual acknowledgements and no prefetch limit: every message the
/// broker has is held, in order, until acknowledged or given back.
pub(super) async fn subscribe(
    session: &AmqpSession,
    channel: &lapin::Channel,
    queue: &str,
    tag: &str,
) -> Result<lapin::Consumer> {
    channel
        .basic_qos(0, BasicQosOptions::default())
        .await
        .map_err(|e| session.error(e, "setting the prefetch"))?;
    channel
        .basic_consume(
            queue.into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| session.error(e, &format!("reading queue {queue}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(reason: &str, event_type: &str, died_at: u64) -> DeadLetter {
        DeadLetter {
            position: 1,
            event_id: None,
            event_type: event_type.into(),
            reason: reason.into(),
            origin_queue: Some("q".into()),
            exchange: None,
            routing_keys: Vec::new(),
            died_at: Some(died_at),
            deaths: 1,
            replays: 0,
            preview: String::new(),
        }
    }

    #[test]
    fn filters_select_by_reason_type_pattern_and_age() {
        let f = Filter::parse("reason=rejected, type=agent.#, older-than=1h").unwrap();
        assert!(f.matches(&letter("rejected", "agent.x.done", 0), 7200));
        assert!(!f.matches(&letter("expired", "agent.x.done", 0), 7200));
        assert!(!f.matches(&letter("rejected", "task.done", 0), 7200));
        assert!(!f.matches(&letter("rejected", "agent.x", 7000), 7200));
        assert!(
            Filter::parse("")
                .unwrap()
                .matches(&letter("maxlen", "x", 0), 0)
        );
        assert!(
            Filter::parse("colour=red")
                .unwrap_err()
                .contains("unknown filter")
        );
        assert!(Filter::parse("older-than=soon").is_err());
    }

    #[test]
    fn a_summary_counts_by_reason_type_and_origin() {
        let letters = [
            letter("rejected", "a", 5),
            letter("rejected", "b", 3),
            letter("expired", "a", 9),
        ];
        let s = Summary::of("q_dlq", 3, &letters);
        assert_eq!(s.oldest, Some(3));
        assert_eq!(s.reasons["rejected"], 2);
        assert_eq!(s.event_types["a"], 2);
        assert_eq!(s.origins["q"], 3);
    }
}
