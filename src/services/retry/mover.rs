//! `god retry`: the mover behind `retry: [5s, 30s, 2m]`. A service queue dead-letters what its
//! consumer rejects into its inbox (`<queue>.retry`); the mover takes each message from there,
//! counts the retries it was given (its `x-god-retries` header), and publishes it, with
//! confirms and before it acknowledges it, to the next stage queue (`<queue>.retry.N`, whose
//! TTL is the delay and which dead-letters back into the queue through the `god.retry` header
//! exchange) or, once every stage was tried, to the queue's dead-letter queue. A message keeps
//! its routing key, properties, body and `x-death` history all the way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldArray, FieldTable, ShortString};
use lapin::{Channel, Confirmation};
use serde_json::json;

use crate::rabbit::rotation::{self, NodeRotation, Session, keep_running};

use crate::model::desired::{ATTEMPTS_HEADER, RETRIES_HEADER, RETRY_QUEUE_HEADER, RetryRoute};
use crate::rabbit::headers::{deaths, integer, text};

/// The consumer tag of the mover: how `god doctor` finds it on the broker.
pub const CONSUMER_TAG: &str = "god-retry";
/// The variable the mover's routes come in, as JSON, when it runs as a container.
pub const ROUTES_VARIABLE: &str = "GOD_RETRY_ROUTES";

/// Settings of a mover.
#[derive(Debug, Clone)]
pub struct RetryConfig {
    /// AMQP URLs (with credentials): nodes of one cluster, tried in turn.
    pub amqp_urls: Vec<String>,
    /// The queues it serves.
    pub routes: Vec<RetryRoute>,
    /// Unacknowledged deliveries at most.
    pub prefetch: u16,
}

/// The mover's shared state.
pub struct Mover {
    config: RetryConfig,
    nodes: NodeRotation,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
}

/// Where one message goes.
struct Decision<'a> {
    target: &'a str,
    retries: u64,
    final_attempts: Option<u64>,
}

impl Mover {
    /// A mover not yet consuming.
    pub fn new(config: RetryConfig) -> Arc<Self> {
        Arc::new(Self {
            nodes: NodeRotation::new("retry", config.amqp_urls.clone()),
            config,
            retried: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
        })
    }

    /// Moves messages until the process ends, reconnecting (to the next node) whenever the
    /// connection is lost. An unacknowledged message goes back to its inbox with the
    /// connection, so nothing is lost on the way.
    pub fn keep_moving(self: &Arc<Self>) {
        keep_running(self);
    }

    /// Publishes one message where it goes next and, once the broker confirmed it, acknowledges
    /// it. A message the broker could not route (its stage is gone) or refused stays in the
    /// inbox, and is tried again a second later.
    async fn move_one(
        &self,
        channel: &Channel,
        route: &RetryRoute,
        delivery: Delivery,
    ) -> Result<(), lapin::Error> {
        let headers = delivery.properties.headers().clone().unwrap_or_default();
        let decision = decide(route, &headers);
        let routing_key = original_routing_key(route, &headers, delivery.routing_key.as_str());
        let properties = delivery
            .properties
            .clone()
            .with_headers(next_headers(route, headers, &decision));
        let confirmation = channel
            .basic_publish(
                "".into(),
                routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &delivery.data,
                properties,
            )
            .await?
            .await?;
        match confirmation {
            Confirmation::Ack(None) => {
                delivery.ack(BasicAckOptions::default()).await?;
                let counter = match decision.final_attempts {
                    Some(_) => &self.dead_lettered,
                    None => &self.retried,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                tracing::warn!(
                    "retry: {} refused or could not route a message of {}; it stays in {} (run god apply?)",
                    decision.target,
                    route.queue,
                    route.inbox
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
                delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await?;
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Session for Mover {
    fn rotation(&self) -> &NodeRotation {
        &self.nodes
    }

    async fn session(&self) -> Result<(), lapin::Error> {
        let (connection, channel) = self.nodes.channel(self.config.prefetch).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let mut consumers = Vec::new();
        for (i, route) in self.config.routes.iter().enumerate() {
            let consumer = channel
                .basic_consume(
                    route.inbox.as_str().into(),
                    format!("{CONSUMER_TAG}:{}", route.queue).as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            consumers.push(consumer.map(move |delivery| (i, delivery)));
        }
        self.nodes.set_connected(true);
        let mut deliveries = futures::stream::select_all(consumers);
        let lost = rotation::lost(&connection);
        tokio::pin!(lost);
        loop {
            let next = tokio::select! {
                next = deliveries.next() => next,
                () = &mut lost => None,
            };
            let Some((i, delivery)) = next else { break };
            self.move_one(&channel, &self.config.routes[i], delivery?)
                .await?;
        }
        Ok(())
    }
}

/// Where a message of the inbox goes: a rejected message to its next stage while stages are
/// left, else (and whatever else brought it here: a TTL, a length limit, a delivery limit) to
/// the dead-letter queue with the number of times it failed: the retries it was given, each
/// after a failure, and the failure that brought it here. The count travels in the message's
/// own header (`x-god-retries`), never in `x-death`: RabbitMQ 4.0 no longer counts deaths of a
/// message a client published again, as the mover does at every hop.
fn decide<'a>(route: &'a RetryRoute, headers: &FieldTable) -> Decision<'a> {
    let retries = integer(headers.inner().get(RETRIES_HEADER)).unwrap_or(0);
    let rejected = deaths(headers)
        .next()
        .and_then(|d| text(d.inner().get("reason")))
        .is_some_and(|reason| reason == "rejected");
    match route.stages.get(retries as usize).filter(|_| rejected) {
        Some(stage) => Decision {
            target: stage,
            retries: retries + 1,
            final_attempts: None,
        },
        None => Decision {
            target: &route.dead_letter_queue,
            retries,
            final_attempts: Some(retries + 1),
        },
    }
}

/// The message's headers for its next hop: its retries, the queue the `god.retry` exchange sends
/// it back to, its attempts when it leaves for good, and `BCC` naming where it goes (the broker
/// routes it there and removes the header).
fn next_headers(
    route: &RetryRoute,
    mut headers: FieldTable,
    decision: &Decision<'_>,
) -> FieldTable {
    headers.insert(
        ShortString::from(RETRIES_HEADER),
        AMQPValue::LongLongInt(decision.retries as i64),
    );
    headers.insert(
        ShortString::from(RETRY_QUEUE_HEADER),
        AMQPValue::LongString(route.queue.as_str().into()),
    );
    if let Some(attempts) = decision.final_attempts {
        headers.insert(
            ShortString::from(ATTEMPTS_HEADER),
            AMQPValue::LongLongInt(attempts as i64),
        );
    }
    let target = AMQPValue::LongString(decision.target.into());
    headers.insert(
        ShortString::from("BCC"),
        AMQPValue::FieldArray(FieldArray::from(vec![target])),
    );
    headers
}

/// The routing key the message was published with (kept through every hop, for consumers that
/// read it), from its `x-death` history. Never the name of one of the route's queues: through
/// the default exchange it would also be delivered there.
fn original_routing_key(route: &RetryRoute, headers: &FieldTable, received: &str) -> String {
    let key = deaths(headers)
        .filter(|d| text(d.inner().get("queue")) == Some(route.queue.as_str()))
        .filter_map(|d| match d.inner().get("routing-keys") {
            Some(AMQPValue::FieldArray(keys)) => {
                keys.as_slice().first().and_then(|k| text(Some(k)))
            }
            _ => None,
        })
        .next()
        .unwrap_or(received)
        .to_string();
    let own = [&route.queue, &route.inbox, &route.dead_letter_queue];
    if own.contains(&&key) || route.stages.contains(&key) {
        String::new()
    } else {
        key
    }
}

/// The mover's HTTP side: `/health` answers 200 while it consumes, 503 otherwise, with what it
/// moved so far.
pub fn router(mover: Arc<Mover>) -> Router {
    Router::new()
        .route("/health", get(health))
        .with_state(mover)
}

async fn health(State(mover): State<Arc<Mover>>) -> impl IntoResponse {
    let connected = mover.nodes.is_connected();
    let status = if connected {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if connected { "ok" } else { "disconnected" },
        "queues": mover.config.routes.iter().map(|r| r.queue.as_str()).collect::<Vec<_>>(),
        "retried": mover.retried.load(Ordering::Relaxed),
        "dead_lettered": mover.dead_lettered.load(Ordering::Relaxed),
    });
    (status, axum::Json(body))
}

/// Starts moving and serves `/health` on `listen` until the process ends.
pub async fn serve(mover: Arc<Mover>, listen: SocketAddr) -> std::io::Result<()> {
    mover.keep_moving();
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(
        "retry: moving for {} queue(s); health on http://{listen}/health",
        mover.config.routes.len()
    );
    axum::serve(listener, router(mover)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> RetryRoute {
        RetryRoute::new("q", vec![5_000, 30_000], "q_dlq")
    }

    /// The headers of a message that left `q` for `reason` after `retries` retries, with the
    /// one death RabbitMQ 4.0 records for it (the mover published it again, so earlier deaths
    /// are not counted): `count` 1 whatever came before.
    fn arrived(retries: i64, reason: &str) -> FieldTable {
        let mut death = FieldTable::default();
        death.insert("queue".into(), AMQPValue::LongString("q".into()));
        death.insert("reason".into(), AMQPValue::LongString(reason.into()));
        death.insert("count".into(), AMQPValue::LongLongInt(1));
        let mut headers = FieldTable::default();
        headers.insert(
            "x-death".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::FieldTable(death)])),
        );
        if retries > 0 {
            headers.insert(RETRIES_HEADER.into(), AMQPValue::LongLongInt(retries));
        }
        headers
    }

    #[test]
    fn a_rejected_message_goes_through_every_stage_then_to_its_dead_letter_queue() {
        let route = route();
        let first = decide(&route, &arrived(0, "rejected"));
        assert_eq!((first.target, first.retries), ("q.retry.1", 1));
        let second = decide(&route, &arrived(1, "rejected"));
        assert_eq!((second.target, second.retries), ("q.retry.2", 2));
        let last = decide(&route, &arrived(2, "rejected"));
        assert_eq!(last.target, "q_dlq");
        assert_eq!(
            last.final_attempts,
            Some(3),
            "two retries and the last failure"
        );
    }

    #[test]
    fn a_message_that_expired_goes_to_its_dead_letter_queue_counting_its_retries() {
        let route = route();
        let decision = decide(&route, &arrived(1, "expired"));
        assert_eq!(decision.target, "q_dlq");
        assert_eq!(decision.final_attempts, Some(2));
    }
}
