//! `cargo bench --bench gateway`: the bundled services under load, against the real broker.
//!
//! Reported in one run:
//! - the gateway's events/s and p50/p99 latency (HTTP keep-alive, publisher confirms) at 1, 16
//!   and 64 concurrent clients, and side by side a raw lapin publisher with confirms at the same
//!   concurrency on the same broker: the ceiling;
//! - the relay's deliveries/s to 100 WebSocket clients.
//!
//! Needs the broker of `scripts/bootstrap`. GOD_BENCH_SECONDS (default 5) per measurement.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};

const MANAGEMENT: &str = "http://127.0.0.1:15672/api";
const VHOST: &str = "god-bench-gateway";
const RELAY_CLIENTS: usize = 100;
const RELAY_EVENTS: usize = 2000;

fn main() {
    let seconds: u64 = std::env::var("GOD_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let http = reqwest::Client::new();
        fresh_vhost(&http).await;
        let amqp = format!("amqp://guest:guest@127.0.0.1:5672/{VHOST}");
        let dir = tempfile::tempdir().unwrap();
        let registry = dir.path().join("registry.yaml");
        std::fs::write(&registry, "version: \"1.0\"\nexchange: {name: bus, type: topic, durable: true}\nservices:\n  sink:\n    queue_name: sink\n    routing_keys: [\"#\"]\n    dead_letter: false\n").unwrap();
        let status = god().arg("--registry").arg(&registry).args(["apply", "--auto-approve"]).env("RABBITMQ_URL", &amqp).output().unwrap();
        assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));

        let gateway_port = free_port();
        let mut gateway = god()
            .args(["gateway", "--listen", &format!("127.0.0.1:{gateway_port}"), "--exchange", "bus"])
            .env("RABBITMQ_URL", &amqp)
            .spawn()
            .unwrap();
        await_ok(&http, &format!("http://127.0.0.1:{gateway_port}/health/ready")).await;

        println!("god gateway benchmark: {seconds} s per measurement, 2 cores, RabbitMQ 3.10\n");
        println!("| clients | gateway events/s | p50 | p99 | raw lapin events/s | p50 | p99 | gateway / raw |");
        println!("|---|---|---|---|---|---|---|---|");
        for clients in [1usize, 16, 64] {
            purge(&http).await;
            let g = gateway_load(&http, gateway_port, clients, seconds).await;
            purge(&http).await;
            let r = raw_load(&amqp, clients, seconds).await;
            println!(
                "| {clients} | {:.0} | {:.2} ms | {:.2} ms | {:.0} | {:.2} ms | {:.2} ms | {:.0}% |",
                g.rate, g.p50, g.p99, r.rate, r.p50, r.p99, 100.0 * g.rate / r.rate
            );
        }
        purge(&http).await;
        let _ = gateway.kill();
        let _ = gateway.wait();

        let relay_port = free_port();
        let mut relay = god()
            .args(["relay", "--listen", &format!("127.0.0.1:{relay_port}"), "--exchange", "bus"])
            .env("RABBITMQ_URL", &amqp)
            .spawn()
            .unwrap();
        await_ok(&http, &format!("http://127.0.0.1:{relay_port}/health")).await;
        let rate = relay_load(&amqp, relay_port).await;
        println!("\nrelay: {RELAY_EVENTS} events to {RELAY_CLIENTS} clients: {rate:.0} deliveries/s");
        let _ = relay.kill();
        let _ = relay.wait();
        purge(&http).await;
        let _ = http.delete(format!("{MANAGEMENT}/vhosts/{VHOST}")).basic_auth("guest", Some("guest")).send().await;
    });
}

struct Load {
    rate: f64,
    p50: f64,
    p99: f64,
}

fn summarise(mut latencies: Vec<Duration>, elapsed: Duration) -> Load {
    latencies.sort();
    let at =
        |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1000.0;
    Load {
        rate: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    }
}

/// `clients` tasks, each sending one request after the other for `seconds`; the latency of
/// every request is kept.
async fn closed_loop<F, Fut>(clients: usize, seconds: u64, request: F) -> Load
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    request().await;
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    summarise(all, started.elapsed())
}

async fn gateway_load(http: &reqwest::Client, port: u16, clients: usize, seconds: u64) -> Load {
    let url = Arc::new(format!("http://127.0.0.1:{port}/events/bench.load"));
    let http = http.clone();
    closed_loop(clients, seconds, move || {
        let (http, url) = (http.clone(), Arc::clone(&url));
        async move {
            let response = http
                .post(url.as_str())
                .body(r#"{"n": 1, "text": "benchmark"}"#)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 202);
        }
    })
    .await
}

async fn raw_load(amqp: &str, clients: usize, seconds: u64) -> Load {
    let connection = Connection::connect(amqp, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let channel = Arc::new(channel);
    let load = closed_loop(clients, seconds, move || {
        let channel = Arc::clone(&channel);
        async move {
            let body = br#"{"event_id":"00000000-0000-4000-8000-000000000000","event_type":"bench.load","payload":{"n":1,"text":"benchmark"}}"#;
            let options = BasicPublishOptions { mandatory: true, ..Default::default() };
            let properties = BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into());
            channel.basic_publish("bus".into(), "bench.load".into(), options, body, properties).await.unwrap().await.unwrap();
        }
    })
    .await;
    let _ = connection.close(200, "done".into()).await;
    load
}

async fn relay_load(amqp: &str, port: u16) -> f64 {
    let mut readers = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(RELAY_CLIENTS);
    for _ in 0..RELAY_CLIENTS {
        let url = format!("ws://127.0.0.1:{port}/");
        let ready = ready_tx.clone();
        readers.push(tokio::spawn(async move {
            let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            let _welcome = socket.next().await;
            ready.send(()).await.unwrap();
            let mut n = 0;
            while n < RELAY_EVENTS {
                match socket.next().await {
                    Some(Ok(_)) => n += 1,
                    _ => break,
                }
            }
            n
        }));
    }
    for _ in 0..RELAY_CLIENTS {
        ready_rx.recv().await.unwrap();
    }
    let connection = Connection::connect(amqp, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let started = Instant::now();
    let mut confirms = Vec::new();
    for i in 0..RELAY_EVENTS {
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
    let mut delivered = 0;
    for r in readers {
        delivered += r.await.unwrap();
    }
    let elapsed = started.elapsed();
    let _ = connection.close(200, "done".into()).await;
    delivered as f64 / elapsed.as_secs_f64()
}

fn god() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_god"));
    cmd.env_remove("GOD_REGISTRY")
        .env_remove("GOD_COMPONENTS")
        .current_dir(std::env::temp_dir());
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn fresh_vhost(http: &reqwest::Client) {
    let auth = |r: reqwest::RequestBuilder| r.basic_auth("guest", Some("guest"));
    let _ = auth(http.delete(format!("{MANAGEMENT}/vhosts/{VHOST}")))
        .send()
        .await;
    auth(http.put(format!("{MANAGEMENT}/vhosts/{VHOST}")))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    auth(http.put(format!("{MANAGEMENT}/permissions/{VHOST}/guest")))
        .json(&serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"}))
        .send()
        .await
        .unwrap();
}

async fn purge(http: &reqwest::Client) {
    let _ = http
        .delete(format!("{MANAGEMENT}/queues/{VHOST}/sink/contents"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await;
}

async fn await_ok(http: &reqwest::Client, url: &str) {
    for _ in 0..300 {
        if http
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never answered");
}
