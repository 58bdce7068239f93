//! `cargo bench --bench relay`: the relay with its history against the relay without it, in
//! the same run, on the real broker.
//!
//! Reported:
//! - deliveries/s to 100 live WebSocket clients (GOD_BENCH_EVENTS events, default 2,000), the
//!   relay with history and with `--no-history`, alternating, GOD_BENCH_ROUNDS rounds (default
//!   3), median and ratio;
//! - a reconnect that replays 10,000 events: from the WebSocket connect to the recovery frame;
//! - the cost of history on the publish path: confirmed publishes/s of one publisher to the
//!   exchange while the relay runs, with its history (a stream) against without it (its own
//!   exclusive queue), in the same rounds.
//!
//! Needs the broker of `scripts/bootstrap`.

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use common::load::median;
use common::{
    applied_registry, confirming_channel, delete_vhost, env_number, fresh_vhost, publish_events,
    relay_deliveries, two_thread_runtime,
};
use support::ServiceProcess;

const VHOST: &str = "god-bench-relay";
const CLIENTS: usize = 100;
const REPLAYED: u64 = 10_000;
/// Confirmed publishes of a publish-path round.
const PUBLISHED: usize = 5000;

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

        let (mut fan_with, mut fan_without) = (Vec::new(), Vec::new());
        let (mut publish_with, mut publish_without) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            for (history, fan, publish) in [
                (true, &mut fan_with, &mut publish_with),
                (false, &mut fan_without, &mut publish_without),
            ] {
                let args: &[&str] = if history { &[] } else { &["--no-history"] };
                let relay = ServiceProcess::relay(&amqp, "bus", args);
                relay.await_status("/health", 200);
                fan.push(relay_deliveries(&amqp, relay.port, CLIENTS, events).await);
                publish.push(publish_rate(&amqp, PUBLISHED).await);
                drop(relay);
            }
        }
        println!("| relay | deliveries/s to {CLIENTS} clients (median) | rounds | confirmed publishes/s, one publisher (median) | rounds |");
        println!("|---|---|---|---|---|");
        println!("| with history | {:.0} | {} | {:.0} | {} |", median(fan_with.clone()), rates(&fan_with), median(publish_with.clone()), rates(&publish_with));
        println!("| without history | {:.0} | {} | {:.0} | {} |", median(fan_without.clone()), rates(&fan_without), median(publish_without.clone()), rates(&publish_without));
        println!(
            "\nwith / without history: deliveries {:.2}, publish path {:.2}",
            median(fan_with) / median(fan_without),
            median(publish_with) / median(publish_without)
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
    publish_events(&channel, count).await;
    let rate = count as f64 / started.elapsed().as_secs_f64();
    let _ = connection.close(200, "done".into()).await;
    rate
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
    publish_events(&channel, 1).await;
    let first = next_json(&mut socket).await;
    let since = first["offset"].as_u64().unwrap();
    drop(socket);
    publish_events(&channel, REPLAYED as usize).await;
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
