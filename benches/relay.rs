//! `cargo bench --bench relay`: the relay with its history against the relay without it, in
//! the same run, on the real broker.
//!
//! Reported:
//! - deliveries/s to 100 live WebSocket clients (GOD_BENCH_EVENTS events, default 2,000), the
//!   relay with history and with `--no-history`, alternating, GOD_BENCH_ROUNDS rounds (default
//!   3), median and ratio;
//! - a reconnect that replays 10,000 events: from the WebSocket connect to the recovery frame;
//! - the cost of history on the publish path: confirmed publishes/s to the exchange with the
//!   history's stream bound, against the same exchange without it.
//!
//! Needs the broker of `scripts/bootstrap`.

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use serde_json::Value;

use common::load::median;
use common::{
    applied_registry, confirming_channel, delete_vhost, env_number, fresh_vhost, two_thread_runtime,
};
use support::ServiceProcess;

const VHOST: &str = "god-bench-relay";
const CLIENTS: usize = 100;
const REPLAYED: u64 = 10_000;

fn main() {
    let rounds: usize = env_number("GOD_BENCH_ROUNDS", 3);
    let events: usize = env_number("GOD_BENCH_EVENTS", 2000);
    let rt = two_thread_runtime();
    rt.block_on(async move {
        let http = reqwest::Client::new();
        fresh_vhost(&http, VHOST).await;
        let amqp = format!("amqp://guest:guest@127.0.0.1:5672/{VHOST}");
        let _registry = applied_registry(&amqp, "version: \"1.0\"\nexchange: {name: bus, type: topic, durable: true}\nservices:\n  sink:\n    queue_name: sink\n    routing_keys: [\"nothing.#\"]\n    dead_letter: false\n");
        println!("god relay benchmark: {rounds} alternating rounds, {events} events to {CLIENTS} clients each, 2 cores, RabbitMQ 3.10\n");

        let without_stream = publish_rate(&amqp, 5000).await;
        let mut with_history = Vec::new();
        let mut without_history = Vec::new();
        for _ in 0..rounds {
            let relay = ServiceProcess::relay(&amqp, "bus", &[]);
            relay.await_status("/health", 200);
            with_history.push(fan_out_rate(&amqp, relay.port, events).await);
            drop(relay);
            let relay = ServiceProcess::relay(&amqp, "bus", &["--no-history"]);
            relay.await_status("/health", 200);
            without_history.push(fan_out_rate(&amqp, relay.port, events).await);
            drop(relay);
        }
        let (with, without) = (median(with_history.clone()), median(without_history.clone()));
        println!("| relay | deliveries/s (median) | rounds |");
        println!("|---|---|---|");
        println!("| with history | {with:.0} | {} |", rates(&with_history));
        println!("| without history | {without:.0} | {} |", rates(&without_history));
        println!("\nwith / without history: {:.2}", with / without);

        // The stream exists and is bound from here on: the publish path writes to it too.
        let with_stream = publish_rate(&amqp, 5000).await;
        println!(
            "\npublish path (5,000 confirmed publishes, one publisher): {with_stream:.0}/s with the history bound, {without_stream:.0}/s without: {:.2}",
            with_stream / without_stream
        );

        let relay = ServiceProcess::relay(&amqp, "bus", &[]);
        relay.await_status("/health", 200);
        let replay = replay_time(&amqp, relay.port).await;
        println!(
            "\nreconnect replaying {REPLAYED} events: {:.0} ms from connect to the recovery frame",
            replay.as_secs_f64() * 1000.0
        );
        drop(relay);
        delete_vhost(&http, VHOST).await;
    });
}

fn rates(values: &[f64]) -> String {
    values
        .iter()
        .map(|r| format!("{r:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Confirmed publishes per second to the exchange (`count` events, confirms awaited at the end).
async fn publish_rate(amqp: &str, count: usize) -> f64 {
    let (connection, channel) = confirming_channel(amqp).await;
    let started = Instant::now();
    publish(&channel, count).await;
    let rate = count as f64 / started.elapsed().as_secs_f64();
    let _ = connection.close(200, "done".into()).await;
    rate
}

async fn publish(channel: &lapin::Channel, count: usize) {
    let mut confirms = Vec::with_capacity(count);
    for i in 0..count {
        let body = format!(r#"{{"event_id":"{i}","event_type":"bench.relay","payload":{{}}}}"#);
        confirms.push(
            channel
                .basic_publish(
                    "bus".into(),
                    "bench.relay".into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    BasicProperties::default(),
                )
                .await
                .unwrap(),
        );
    }
    for c in confirms {
        c.await.unwrap();
    }
}

/// Deliveries per second to [`CLIENTS`] clients of the relay on `port`, `events` events.
async fn fan_out_rate(amqp: &str, port: u16, events: usize) -> f64 {
    let mut readers = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(CLIENTS);
    for _ in 0..CLIENTS {
        let url = format!("ws://127.0.0.1:{port}/");
        let ready = ready_tx.clone();
        readers.push(tokio::spawn(async move {
            let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            let _welcome = socket.next().await;
            ready.send(()).await.unwrap();
            let mut n = 0;
            while n < events {
                match tokio::time::timeout(Duration::from_secs(30), socket.next()).await {
                    Ok(Some(Ok(_))) => n += 1,
                    _ => break,
                }
            }
            n
        }));
    }
    for _ in 0..CLIENTS {
        ready_rx.recv().await.unwrap();
    }
    let (connection, channel) = confirming_channel(amqp).await;
    let started = Instant::now();
    publish(&channel, events).await;
    let mut delivered = 0;
    for r in readers {
        delivered += r.await.unwrap();
    }
    let elapsed = started.elapsed();
    let _ = connection.close(200, "done".into()).await;
    delivered as f64 / elapsed.as_secs_f64()
}

/// The time a client that saw the event before [`REPLAYED`] others takes from its connect to
/// the recovery frame that ends their replay.
async fn replay_time(amqp: &str, port: u16) -> Duration {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/"))
        .await
        .unwrap();
    let welcome = next_json(&mut socket).await;
    let epoch = welcome["epoch"].as_str().unwrap().to_string();
    let (connection, channel) = confirming_channel(amqp).await;
    publish(&channel, 1).await;
    let first = next_json(&mut socket).await;
    let since = first["offset"].as_u64().unwrap();
    drop(socket);
    publish(&channel, REPLAYED as usize).await;
    let _ = connection.close(200, "done".into()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    let (mut socket, _) = tokio_tungstenite::connect_async(format!(
        "ws://127.0.0.1:{port}/?since={since}&epoch={epoch}"
    ))
    .await
    .unwrap();
    let mut replayed = 0;
    loop {
        let frame = next_json(&mut socket).await;
        match frame["type"].as_str() {
            Some("recovery") => {
                assert_eq!(frame["recovered"], true, "{frame}");
                break;
            }
            Some("event") => replayed += 1,
            _ => {}
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(replayed, REPLAYED, "every missed event, once");
    elapsed
}

async fn next_json(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), socket.next()).await {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text)))) => {
                return serde_json::from_str(text.as_str()).unwrap();
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("the relay stopped: {other:?}"),
        }
    }
}
