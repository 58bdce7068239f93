//! Dead letters moved back where they came from (or purged): each published with `mandatory`
//! and acknowledged only once the broker confirmed it, so a crash leaves a message in both
//! places, never in neither. The messages a replay leaves in place are held unacknowledged
//! until the end and given back in their order.

use std::collections::{BTreeMap, VecDeque};

use futures::StreamExt;
use lapin::Confirmation;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicPublishOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use serde::Serialize;

use super::letters::{DeadLetter, Filter, QUIET, REPLAYS_HEADER, depth, now, subscribe};
use crate::error::Result;
use crate::rabbit::amqp::AmqpSession;

/// Where replayed messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Back to the queue each died in (its last `x-death` entry), through the default exchange.
    Origin,
    /// To this queue, through the default exchange.
    Queue(String),
}

/// What a replay or a purge takes.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Which messages.
    pub filter: Filter,
    /// At most this many.
    pub limit: Option<u64>,
    /// A message replayed this many times already stays.
    pub max_replays: u64,
}

/// What a replay or a purge did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// Messages looked at.
    pub seen: u64,
    /// Messages moved (or purged).
    pub moved: u64,
    /// Messages left where they were, by why.
    pub stayed: BTreeMap<String, u64>,
    /// Messages selected that could not be moved (no such queue, refused): they stay too.
    pub failed: u64,
}

impl Outcome {
    fn stay(&mut self, why: &str) {
        *self.stayed.entry(why.to_string()).or_default() += 1;
    }

    /// The messages that stayed, all reasons together.
    pub fn stayed_total(&self) -> u64 {
        self.stayed.values().sum()
    }
}

/// What to do with the messages a replay selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Publish them to the destination, then acknowledge them.
    Replay(Destination),
    /// Acknowledge them: they are gone.
    Purge,
    /// Count them, touch nothing.
    DryRun,
}

/// Publishes a replay keeps unconfirmed at once: the broker confirms them in a stream instead
/// of one round trip each. A crash loses none of them (each is acknowledged only after its
/// confirm) and leaves at most this many in both places.
pub const IN_FLIGHT: usize = 64;

/// A replayed message waiting for its confirm.
struct Pending {
    delivery: Delivery,
    confirm: lapin::PublisherConfirm,
    destination: String,
}

/// Goes through the messages `queue` holds now, once each, in order: those `selection` takes
/// are replayed (published in order with `mandatory`, and acknowledged each once the broker
/// confirmed it: a crash in between leaves a message in both places, never in neither) or
/// purged; the others are held and given back, in their order, at the end. `progress` is told
/// of each message.
pub async fn process(
    session: &AmqpSession,
    queue: &str,
    selection: &Selection,
    action: &Action,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Outcome> {
    let count = depth(session, queue).await?;
    let channel = session.channel().await?;
    channel
        .confirm_select(Default::default())
        .await
        .map_err(|e| session.error(e, "turning on publisher confirms"))?;
    let mut deliveries = subscribe(session, &channel, queue, "god-dlq-replay").await?;
    let mut outcome = Outcome::default();
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let now = now();
    while outcome.seen < count {
        let delivery = match tokio::time::timeout(QUIET, deliveries.next()).await {
            Ok(Some(Ok(delivery))) => delivery,
            _ => break,
        };
        outcome.seen += 1;
        let letter = DeadLetter::of(outcome.seen as usize, &delivery);
        let taken = outcome.moved + outcome.failed + pending.len() as u64;
        if !selection.filter.matches(&letter, now) {
            outcome.stay("not selected by the filter");
        } else if selection.limit.is_some_and(|l| taken >= l) {
            outcome.stay("beyond --limit");
        } else if letter.replays >= selection.max_replays && matches!(action, Action::Replay(_)) {
            outcome.stay("replayed --max-replays times already");
        } else {
            match action {
                Action::DryRun => outcome.moved += 1,
                Action::Purge => {
                    ack(session, &delivery).await?;
                    outcome.moved += 1;
                }
                Action::Replay(destination) => match target(destination, &letter) {
                    Err(why) => {
                        outcome.failed += 1;
                        outcome.stay(&why);
                    }
                    Ok(to) => {
                        pending.push_back(publish(session, &channel, delivery, &letter, to).await?);
                        if pending.len() >= IN_FLIGHT
                            && let Some(oldest) = pending.pop_front()
                        {
                            settle(session, oldest, &mut outcome).await?;
                        }
                    }
                },
            }
        }
        progress(1);
    }
    while let Some(oldest) = pending.pop_front() {
        settle(session, oldest, &mut outcome).await?;
    }
    // Everything not acknowledged goes back where it was, in its order.
    let _ = channel.close(200, "replayed".into()).await;
    Ok(outcome)
}

/// The queue a replayed message goes to.
fn target(destination: &Destination, letter: &DeadLetter) -> std::result::Result<String, String> {
    match destination {
        Destination::Queue(q) => Ok(q.clone()),
        Destination::Origin => letter
            .origin_queue
            .clone()
            .ok_or_else(|| "no x-death history to say where it came from".to_string()),
    }
}

/// Publishes a copy of a dead letter to `destination` through the default exchange, with its
/// replay count raised.
async fn publish(
    session: &AmqpSession,
    channel: &lapin::Channel,
    delivery: Delivery,
    letter: &DeadLetter,
    destination: String,
) -> Result<Pending> {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(
        REPLAYS_HEADER.into(),
        AMQPValue::LongLongInt(letter.replays as i64 + 1),
    );
    // A replayed message that dies again is led by where it dies then, not where it first
    // died (god's dead-letters exchange routes on x-first-death-queue); x-death keeps its history.
    let kept: Vec<(ShortString, AMQPValue)> = headers
        .inner()
        .iter()
        .filter(|(k, _)| !k.as_str().starts_with("x-first-death-"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let headers = FieldTable::from(
        kept.into_iter()
            .collect::<std::collections::BTreeMap<_, _>>(),
    );
    let properties = delivery.properties.clone().with_headers(headers);
    let confirm = channel
        .basic_publish(
            "".into(),
            destination.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            &delivery.data,
            properties,
        )
        .await
        .map_err(|e| session.error(e, "publishing a replayed message"))?;
    Ok(Pending {
        delivery,
        confirm,
        destination,
    })
}

/// Waits for a replayed message's confirm, then acknowledges the dead letter; one the broker
/// could not route or refused stays.
async fn settle(session: &AmqpSession, pending: Pending, outcome: &mut Outcome) -> Result<()> {
    let confirmation = pending
        .confirm
        .await
        .map_err(|e| session.error(e, "waiting for the broker's confirm"))?;
    match confirmation {
        Confirmation::Ack(None) => {
            ack(session, &pending.delivery).await?;
            outcome.moved += 1;
        }
        Confirmation::Ack(Some(_)) => {
            outcome.failed += 1;
            outcome.stay(&format!("queue {} does not exist", pending.destination));
        }
        _ => {
            outcome.failed += 1;
            outcome.stay(&format!(
                "the broker refused it for {}",
                pending.destination
            ));
        }
    }
    Ok(())
}

async fn ack(session: &AmqpSession, delivery: &Delivery) -> Result<()> {
    delivery
        .ack(BasicAckOptions::default())
        .await
        .map(|_| ())
        .map_err(|e| session.error(e, "acknowledging a message"))
}
