//! `cargo bench --bench retry`: how fast `god retry` moves rejected messages to their retry
//! stage, against the real broker.
//!
//! Reference, measured in the same run: the same move written directly with lapin in this
//! process (consume the inbox, publish to the stage with confirms, acknowledge after the
//! confirm, one message at a time): what the safe move itself costs on this broker. Each round
//! fills the inbox with GOD_BENCH_MESSAGES (default 20,000) rejected messages and times how long
//! each mover takes to empty it into the stage; GOD_BENCH_ROUNDS (default 3) rounds alternate
//! the two, and the ratio is the median of the rounds' ratios.
//!
//! Needs the broker of `scripts/bootstrap`.

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldArray, FieldTable, ShortString};
use lapin::{BasicProperties, Channel};

use common::{
    MoverRounds, applied_registry, confirming_channel, delete_vhost, depth, env_number,
    fresh_vhost, purge, rate, two_thread_runtime,
};
use support::ServiceProcess;

const VHOST: &str = "god-bench-retry";
const INBOX: &str = "svc.q.retry";
const STAGE: &str = "svc.q.retry.1";

fn main() {
    let messages: u32 = env_number("GOD_BENCH_MESSAGES", 20_000);
    let rounds: u32 = env_number("GOD_BENCH_ROUNDS", 3);
    let rt = two_thread_runtime();
    rt.block_on(async move {
        let http = reqwest::Client::new();
        fresh_vhost(&http, VHOST).await;
        let amqp = format!("amqp://guest:guest@127.0.0.1:5672/{VHOST}");
        let (_dir, registry) = applied_registry(&amqp, "version: \"1.0\"\nexchange: {name: bus, type: topic}\nservices:\n  svc:\n    queue_name: svc.q\n    routing_keys: [\"svc.#\"]\n    retry: [10m]\n");
        let (connection, channel) = confirming_channel(&amqp).await;

        println!("god retry benchmark: {messages} rejected messages moved from {INBOX} to {STAGE}, {rounds} alternating rounds, 2 cores, RabbitMQ 3.10\n");
        let mut table = MoverRounds::start("god retry");
        for _ in 0..rounds {
            fill_inbox(&channel, messages).await;
            let started = Instant::now();
            let mover = ServiceProcess::retry(&amqp, &registry);
            wait_until_moved(&channel, messages).await;
            let god_rate = rate(messages, started);
            drop(mover);
            purge(&channel, STAGE).await;

            fill_inbox(&channel, messages).await;
            let started = Instant::now();
            let raw = tokio::spawn(raw_move(amqp.clone(), messages));
            wait_until_moved(&channel, messages).await;
            let raw_rate = rate(messages, started);
            raw.await.unwrap();
            purge(&channel, STAGE).await;

            table.row(god_rate, raw_rate);
        }
        table.finish();
        let _ = connection.close(200, "done".into()).await;
        delete_vhost(&http, VHOST).await;
    });
}

/// Publishes `n` messages to the service's queue (on a confirming channel) and rejects them
/// all: its inbox holds `n`.
async fn fill_inbox(channel: &Channel, n: u32) {
    let mut confirms = Vec::with_capacity(n as usize);
    for i in 0..n {
        let body = format!("event-{i}");
        let properties = BasicProperties::default().with_delivery_mode(2);
        confirms.push(
            channel
                .basic_publish(
                    "bus".into(),
                    "svc.created".into(),
                    Default::default(),
                    body.as_bytes(),
                    properties,
                )
                .await
                .unwrap(),
        );
    }
    for c in confirms {
        c.await.unwrap();
    }
    channel
        .basic_qos(1000, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = channel
        .basic_consume(
            "svc.q".into(),
            "bench-reject".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut rejected = 0;
    while rejected < n {
        let delivery = consumer.next().await.unwrap().unwrap();
        delivery
            .nack(BasicNackOptions {
                requeue: false,
                ..Default::default()
            })
            .await
            .unwrap();
        rejected += 1;
    }
    channel
        .basic_cancel("bench-reject".into(), Default::default())
        .await
        .unwrap();
    while depth(channel, INBOX).await < n {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The reference mover: the same safe move, written directly. Both movers are timed the same
/// way: until the stage holds every message (polled every 50 ms).
async fn raw_move(amqp: String, n: u32) {
    let (connection, channel) = confirming_channel(&amqp).await;
    channel
        .basic_qos(50, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = channel
        .basic_consume(
            INBOX.into(),
            "bench-raw".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    for _ in 0..n {
        let delivery = consumer.next().await.unwrap().unwrap();
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(
            ShortString::from("BCC"),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongString(STAGE.into())])),
        );
        let properties = delivery.properties.clone().with_headers(headers);
        let options = lapin::options::BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        channel
            .basic_publish(
                "".into(),
                "svc.created".into(),
                options,
                &delivery.data,
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        delivery.ack(Default::default()).await.unwrap();
    }
    let _ = connection.close(200, "done".into()).await;
}

async fn wait_until_moved(channel: &Channel, n: u32) {
    while depth(channel, STAGE).await < n {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
