//! `apply --migrate`: replacing a queue (a new type, new arguments) without losing what it
//! holds. Before the queue is deleted, a holding queue takes its bindings and its messages;
//! once the queue is declared again, the messages move back and the holding queue goes. Every
//! message is published (with a confirm) before it is acknowledged where it came from, so a
//! crash at any point leaves each message in one of the two queues, or, for the few in flight,
//! in both (at-least-once).

use std::time::{Duration, Instant};

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};

use crate::error::{GodError, Result};
use crate::model::QueueSpec;
use crate::model::queue_type::QueueType;
use crate::observe::rabbit::{queue_now, ready_messages};
use crate::plan::MIGRATION_HOLDING_SUFFIX as HOLDING_SUFFIX;
use crate::rabbit::amqp::{AmqpSession, field_table};
use crate::rabbit::management::ManagementApi;

/// What a failure to move bindings is reported as.
const BINDING: &str = "moving a queue's bindings for a migration";

/// Messages moved per round: fetched, published, confirmed, then acknowledged together.
const BATCH: usize = 500;

/// How long the management statistics may lag behind the broker.
const STATISTICS_LAG: Duration = Duration::from_millis(5500);

/// How long the consumers of a queue may take to acknowledge what they hold before it goes.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

/// A queue whose messages and bindings wait in its holding queue while it is declared again.
#[derive(Debug)]
pub struct Evacuated {
    /// The queue being replaced.
    pub queue: String,
    /// Its holding queue.
    pub holding: String,
}

/// First half of a migrating replace: declares the holding queue (durable, of the new queue's
/// type, so that it is as safe as the queue it stands in for), binds it as the queue is bound,
/// unbinds the queue, moves its messages over, waits until its consumers hold nothing
/// unacknowledged, and deletes it.
pub async fn evacuate(
    api: &ManagementApi,
    amqp: &AmqpSession,
    old: &QueueSpec,
    new: &QueueSpec,
) -> Result<Evacuated> {
    let holding = format!("{}{HOLDING_SUFFIX}", old.name);
    let channel = amqp.channel().await?;
    declare_holding(amqp, &channel, &holding, new.queue_type()).await?;
    let bindings = api.exchange_bindings_of(&old.name).await?;
    amqp.set_bindings(&channel, &holding, &bindings, true, BINDING)
        .await?;
    amqp.set_bindings(&channel, &old.name, &bindings, false, BINDING)
        .await?;
    move_messages(amqp, &old.name, &holding).await?;
    let drained_at = Instant::now();
    loop {
        settle(api, amqp, &old.name, drained_at).await?;
        // A message published straight to the queue (default exchange) after the move is moved
        // too; the broker then deletes the queue only if it is still empty.
        if old.queue_type() == QueueType::Classic {
            if api.delete_queue(&old.name, true).await? {
                break;
            }
        } else if ready_messages(amqp, &old.name).await? == 0 {
            api.delete_queue(&old.name, false).await?;
            break;
        }
        move_messages(amqp, &old.name, &holding).await?;
    }
    Ok(Evacuated {
        queue: old.name.clone(),
        holding,
    })
}

/// Second half, once the queue is declared again with its bindings: unbinds the holding queue,
/// moves its messages back, and deletes it.
pub async fn bring_back(api: &ManagementApi, amqp: &AmqpSession, e: &Evacuated) -> Result<()> {
    let channel = amqp.channel().await?;
    let bindings = api.exchange_bindings_of(&e.holding).await?;
    amqp.set_bindings(&channel, &e.holding, &bindings, false, BINDING)
        .await?;
    loop {
        move_messages(amqp, &e.holding, &e.queue).await?;
        if ready_messages(amqp, &e.holding).await? == 0 {
            return api.delete_queue(&e.holding, false).await.map(|_| ());
        }
    }
}

async fn declare_holding(
    amqp: &AmqpSession,
    channel: &lapin::Channel,
    holding: &str,
    queue_type: QueueType,
) -> Result<()> {
    let arguments = field_table(&[("x-queue-type".to_string(), queue_type.as_str().into())].into());
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(holding.into(), options, arguments)
        .await
        .map(|_| ())
        .map_err(|e| amqp.error(e, "declaring the holding queue of a migration"))
}

/// Moves every ready message of `from` to `to` (default exchange), in order, a batch at a
/// time: fetched, published with their properties, confirmed, then acknowledged.
async fn move_messages(amqp: &AmqpSession, from: &str, to: &str) -> Result<()> {
    let channel = amqp.channel().await?;
    let fail = |e| amqp.error(e, "moving messages for a migration");
    channel
        .confirm_select(Default::default())
        .await
        .map_err(fail)?;
    loop {
        let mut last_tag = None;
        let mut confirms = Vec::with_capacity(BATCH);
        for _ in 0..BATCH {
            let Some(message) = channel
                .basic_get(from.into(), BasicGetOptions { no_ack: false })
                .await
                .map_err(fail)?
            else {
                break;
            };
            let delivery = message.delivery;
            confirms.push(
                channel
                    .basic_publish(
                        "".into(),
                        to.into(),
                        BasicPublishOptions {
                            mandatory: true,
                            ..BasicPublishOptions::default()
                        },
                        &delivery.data,
                        delivery.properties.clone(),
                    )
                    .await
                    .map_err(fail)?,
            );
            last_tag = Some(delivery.delivery_tag);
        }
        let Some(last_tag) = last_tag else {
            let _ = channel.close(200, "moved".into()).await;
            return Ok(());
        };
        for confirm in confirms {
            let confirmation = confirm.await.map_err(fail)?;
            if !confirmation.is_ack() || confirmation.take_message().is_some() {
                return Err(GodError::Broker {
                    endpoint: amqp.endpoint().to_string(),
                    operation: format!("moving messages from {from} to {to}"),
                    detail: "the broker did not take a message (nack or returned); nothing more is moved, and what was not confirmed stays where it was".into(),
                });
            }
        }
        channel
            .basic_ack(last_tag, BasicAckOptions { multiple: true })
            .await
            .map_err(fail)?;
    }
}

/// Waits until `queue` has no ready message and no consumer holding one unacknowledged. With
/// no consumer, the exact count is enough; with consumers, the statistics must show nothing
/// unacknowledged in a sample taken after the drain.
async fn settle(
    api: &ManagementApi,
    amqp: &AmqpSession,
    queue: &str,
    drained_at: Instant,
) -> Result<()> {
    let deadline = Instant::now() + SETTLE_LIMIT;
    loop {
        let now = queue_now(amqp, queue).await?;
        if now.messages > 0 || now.consumers == 0 {
            return Ok(());
        }
        let fresh = drained_at.elapsed() >= STATISTICS_LAG;
        let unacknowledged = api
            .queue(queue)
            .await?
            .and_then(|q| q.messages_unacknowledged)
            .unwrap_or(0);
        if fresh && unacknowledged == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(GodError::Broker {
                endpoint: amqp.endpoint().to_string(),
                operation: format!("migrating {queue}"),
                detail: format!(
                    "its consumers still hold {unacknowledged} message(s) unacknowledged after {}s; the queue is kept (unbound, its other messages in {queue}{HOLDING_SUFFIX}): stop the consumers or let them acknowledge, then apply --migrate again",
                    SETTLE_LIMIT.as_secs()
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
