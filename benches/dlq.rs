//! `cargo bench --bench dlq`: how fast `god dlq replay` moves dead letters back to their
//! queue, against the real broker.
//!
//! Reference, measured in the same run: the same safe move written directly with lapin in this
//! process (consume the dead-letter queue, publish each message to its origin queue with
//! `mandatory` and a confirm, acknowledge it after its confirm, with as many unconfirmed
//! publishes in flight as god keeps: 64). Each round fills the dead-letter queue with
//! GOD_BENCH_MESSAGES (default 100,000) dead letters (expired on arrival, so each carries its
//! x-death history) and times each mover until the origin queue holds them all;
//! GOD_BENCH_ROUNDS (default 3) rounds alternate the two, and the ratio is the median of the
//! rounds' ratios. god's time includes its process start and its count of the queue.
//!
//! Needs the broker of `scripts/bootstrap`.

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{BasicPublishOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};

use common::{
    MoverRounds, applied_registry, confirming_channel, delete_vhost, depth, env_number,
    fresh_vhost, purge, rate, two_thread_runtime,
};

const VHOST: &str = "god-bench-dlq";
const ORIGIN: &str = "svc.q";
const DLQ: &str = "svc.q_dlq";
const IN_FLIGHT: usize = god::dlq::replay::IN_FLIGHT;

fn main() {
    let messages: u32 = env_number("GOD_BENCH_MESSAGES", 100_000);
    let rounds: u32 = env_number("GOD_BENCH_ROUNDS", 3);
    let rt = two_thread_runtime();
    rt.block_on(async move {
        let http = reqwest::Client::new();
        fresh_vhost(&http, VHOST).await;
        let amqp = format!("amqp://guest:guest@127.0.0.1:5672/{VHOST}");
        let (_dir, registry) = applied_registry(&amqp, "version: \"1.0\"\nexchange: {name: bus, type: topic}\nservices:\n  svc:\n    queue_name: svc.q\n    routing_keys: [\"svc.#\"]\n");
        let (connection, channel) = confirming_channel(&amqp).await;

        println!("god dlq replay benchmark: {messages} dead letters moved from {DLQ} back to {ORIGIN}, {rounds} alternating rounds, 2 cores, RabbitMQ 3.10\n");
        let mut table = MoverRounds::start("god dlq replay");
        for _ in 0..rounds {
            fill(&channel, messages).await;
            let started = Instant::now();
            let out = support::god()
                .arg("--registry")
                .arg(&registry)
                .args(["dlq", "replay", DLQ, "--auto-approve"])
                .env("RABBITMQ_URL", &amqp)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
            wait_until_moved(&channel, messages).await;
            let god_rate = rate(messages, started);
            purge(&channel, ORIGIN).await;

            fill(&channel, messages).await;
            let started = Instant::now();
            raw_move(&amqp, messages).await;
            wait_until_moved(&channel, messages).await;
            let raw_rate = rate(messages, started);
            purge(&channel, ORIGIN).await;

            table.row(god_rate, raw_rate);
        }
        table.finish();
        let _ = connection.close(200, "done".into()).await;
        delete_vhost(&http, VHOST).await;
    });
}

/// Publishes `n` messages to the service's queue that expire on arrival: its dead-letter
/// queue holds `n`, each with its x-death history.
async fn fill(channel: &Channel, n: u32) {
    let mut confirms = Vec::with_capacity(n as usize);
    for i in 0..n {
        let body = format!(r#"{{"event_id": "e{i}", "event_type": "svc.created"}}"#);
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_expiration("0".into());
        confirms.push(
            channel
                .basic_publish(
                    "bus".into(),
                    "svc.created".into(),
                    BasicPublishOptions::default(),
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
    while depth(channel, DLQ).await < n {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The reference mover: the safe move written directly, with god's window of unconfirmed
/// publishes.
async fn raw_move(amqp: &str, n: u32) {
    let (connection, channel) = confirming_channel(amqp).await;
    channel
        .basic_qos(0, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = channel
        .basic_consume(
            DLQ.into(),
            "bench-raw".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut pending = VecDeque::new();
    for _ in 0..n {
        let delivery = consumer.next().await.unwrap().unwrap();
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let confirm = channel
            .basic_publish(
                "".into(),
                ORIGIN.into(),
                options,
                &delivery.data,
                delivery.properties.clone(),
            )
            .await
            .unwrap();
        pending.push_back((delivery, confirm));
        if pending.len() >= IN_FLIGHT {
            let (delivery, confirm) = pending.pop_front().unwrap();
            confirm.await.unwrap();
            delivery.ack(Default::default()).await.unwrap();
        }
    }
    for (delivery, confirm) in pending {
        confirm.await.unwrap();
        delivery.ack(Default::default()).await.unwrap();
    }
    let _ = connection.close(200, "done".into()).await;
}

async fn wait_until_moved(channel: &Channel, n: u32) {
    while depth(channel, ORIGIN).await < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
