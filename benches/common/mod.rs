//! What the benchmarks share beyond the test support (`tests/support`): vhosts with fixed
//! names, made fresh for a run, from inside the benchmark's async runtime, and their settings
//! from the environment. Each benchmark uses a part of it.

#![allow(dead_code)]

pub mod load;

/// The management API of the broker `scripts/bootstrap` starts.
pub const MANAGEMENT: &str = "http://127.0.0.1:15672/api";

/// Deletes `vhost` if it exists, creates it, and grants guest everything on it.
pub async fn fresh_vhost(http: &reqwest::Client, vhost: &str) {
    fresh_vhost_at(http, MANAGEMENT, vhost).await;
}

/// [`fresh_vhost`] on the broker whose management API is at `api` (`http://…/api`).
pub async fn fresh_vhost_at(http: &reqwest::Client, api: &str, vhost: &str) {
    delete_vhost_at(http, api, vhost).await;
    as_guest(http.put(format!("{api}/vhosts/{vhost}")))
        .json(&serde_json::json!({}))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap();
    as_guest(http.put(format!("{api}/permissions/{vhost}/guest")))
        .json(&serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"}))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap();
}

/// Deletes `vhost` (a missing one is fine; a deletion the API does not confirm is asked for
/// again until the vhost is gone, so that no benchmark leaves its queues in the broker).
pub async fn delete_vhost(http: &reqwest::Client, vhost: &str) {
    delete_vhost_at(http, MANAGEMENT, vhost).await;
}

/// [`delete_vhost`] on the broker whose management API is at `api`.
///
/// Deleting tens of thousands of queues outlasts the management API's request, and RabbitMQ
/// stops deleting when the request is cut off (it abandoned 19,795 of 40,000 queues that way),
/// so each round asks again: every request deletes more, until the vhost is gone.
pub async fn delete_vhost_at(http: &reqwest::Client, api: &str, vhost: &str) {
    let url = format!("{api}/vhosts/{vhost}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1800);
    loop {
        let deleted = status_as_guest(http.delete(&url)).await;
        if matches!(deleted, Ok(status) if status.is_success() || status == reqwest::StatusCode::NOT_FOUND)
            || matches!(
                status_as_guest(http.get(&url)).await,
                Ok(reqwest::StatusCode::NOT_FOUND)
            )
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "vhost {vhost} is still there 30 minutes after its deletion was first asked for"
        );
        eprintln!("deleting vhost {vhost}: {deleted:?}; asking again");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// `request` with the guest credentials of the benchmarks' brokers.
fn as_guest(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    request.basic_auth("guest", Some("guest"))
}

/// The status `request` is answered with, sent as guest.
async fn status_as_guest(request: reqwest::RequestBuilder) -> reqwest::Result<reqwest::StatusCode> {
    as_guest(request)
        .send()
        .await
        .map(|response| response.status())
}

/// A number from the environment (`GOD_BENCH_*`), or `default` when it is not set; a value that
/// is not a number stops the benchmark.
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}: {v:?} is not a number")),
        Err(_) => default,
    }
}

/// The two-thread runtime the service benchmarks run in (the machine has two cores).
pub fn two_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Writes `text` as a registry in a temporary directory and applies it with god to the vhost
/// of `amqp`; the directory lives as long as the returned value.
pub fn applied_registry(amqp: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.yaml");
    std::fs::write(&registry, text).unwrap();
    let out = crate::support::god()
        .arg("--registry")
        .arg(&registry)
        .args(["apply", "--auto-approve"])
        .env("RABBITMQ_URL", amqp)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, registry)
}

/// A connection and a channel in confirm mode, for publishing with confirms.
pub async fn confirming_channel(amqp: &str) -> (lapin::Connection, lapin::Channel) {
    let connection = lapin::Connection::connect(amqp, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .unwrap();
    (connection, channel)
}

/// The messages of a queue now (a passive declare).
pub async fn depth(channel: &lapin::Channel, queue: &str) -> u32 {
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    channel
        .queue_declare(queue.into(), passive, lapin::types::FieldTable::default())
        .await
        .unwrap()
        .message_count()
}

/// Empties a queue.
pub async fn purge(channel: &lapin::Channel, queue: &str) {
    channel
        .queue_purge(queue.into(), Default::default())
        .await
        .unwrap();
}

/// Prints the median of the rounds' ratios with their range.
pub fn print_median_ratio(what: &str, mut ratios: Vec<f64>) {
    ratios.sort_by(f64::total_cmp);
    println!(
        "\n{what}, median of {} rounds: {:.2} (range {:.2}–{:.2})",
        ratios.len(),
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1]
    );
}

/// The table of a benchmark that times a god mover against a raw lapin mover, round by round,
/// and ends with the median of the rounds' ratios.
pub struct MoverRounds {
    ratios: Vec<f64>,
}

impl MoverRounds {
    /// Prints the table's header; `god` names god's column.
    pub fn start(god: &str) -> Self {
        println!("| round | {god} msgs/s | raw lapin mover msgs/s | god / raw |");
        println!("|---|---|---|---|");
        Self { ratios: Vec::new() }
    }

    /// Prints a round's row from the two movers' rates (messages per second).
    pub fn row(&mut self, god_rate: f64, raw_rate: f64) {
        let ratio = god_rate / raw_rate;
        self.ratios.push(ratio);
        let round = self.ratios.len();
        println!("| {round} | {god_rate:.0} | {raw_rate:.0} | {ratio:.2} |");
    }

    /// Prints the median ratio.
    pub fn finish(self) {
        print_median_ratio("god / raw", self.ratios);
    }
}

/// Messages per second of `messages` moved since `started`.
pub fn rate(messages: u32, started: std::time::Instant) -> f64 {
    f64::from(messages) / started.elapsed().as_secs_f64()
}

/// A consumer that takes every message off a benchmark's queue as it arrives.
pub struct Drain {
    connection: lapin::Connection,
    task: tokio::task::JoinHandle<()>,
}

impl Drain {
    pub async fn start(amqp: &str, queue: &str) -> Self {
        let connection = lapin::Connection::connect(amqp, lapin::ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let options = lapin::options::BasicConsumeOptions {
            no_ack: true,
            ..lapin::options::BasicConsumeOptions::default()
        };
        let mut consumer = channel
            .basic_consume(
                queue.into(),
                "drain".into(),
                options,
                lapin::types::FieldTable::default(),
            )
            .await
            .unwrap();
        let task = tokio::spawn(async move {
            while futures::StreamExt::next(&mut consumer).await.is_some() {}
        });
        Self { connection, task }
    }

    pub async fn stop(self) {
        let _ = self.connection.close(200, "done".into()).await;
        let _ = self.task.await;
    }
}

/// Publishes `count` small events to exchange `bus` (key `bench.relay`) and waits for their
/// confirms.
pub async fn publish_events(channel: &lapin::Channel, count: usize) {
    let mut confirms = Vec::with_capacity(count);
    for i in 0..count {
        let body = format!(r#"{{"event_id":"{i}","event_type":"bench.relay","payload":{{}}}}"#);
        confirms.push(
            channel
                .basic_publish(
                    "bus".into(),
                    "bench.relay".into(),
                    lapin::options::BasicPublishOptions::default(),
                    body.as_bytes(),
                    lapin::BasicProperties::default(),
                )
                .await
                .unwrap(),
        );
    }
    for c in confirms {
        c.await.unwrap();
    }
}

/// Deliveries per second to [`clients`] clients of the relay on `port`, `events` events.
/// Deliveries per second of `events` events to `clients` WebSocket clients of the relay on
/// `port` (published to `bus` through `amqp`).
pub async fn relay_deliveries(amqp: &str, port: u16, clients: usize, events: usize) -> f64 {
    let mut readers = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(clients);
    for _ in 0..clients {
        let url = format!("ws://127.0.0.1:{port}/");
        let ready = ready_tx.clone();
        readers.push(tokio::spawn(async move {
            let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            let _welcome = futures::StreamExt::next(&mut socket).await;
            ready.send(()).await.unwrap();
            let mut n = 0;
            while n < events {
                match tokio::time::timeout(
                    std::time::Duration::from_secs(30),
                    futures::StreamExt::next(&mut socket),
                )
                .await
                {
                    Ok(Some(Ok(_))) => n += 1,
                    _ => break,
                }
            }
            n
        }));
    }
    for _ in 0..clients {
        ready_rx.recv().await.unwrap();
    }
    let (connection, channel) = confirming_channel(amqp).await;
    let started = std::time::Instant::now();
    publish_events(&channel, events).await;
    let mut delivered = 0;
    for r in readers {
        delivered += r.await.unwrap();
    }
    let elapsed = started.elapsed();
    let _ = connection.close(200, "done".into()).await;
    delivered as f64 / elapsed.as_secs_f64()
}
