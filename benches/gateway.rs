//! `cargo bench --bench gateway`: the bundled services under load, against the real broker.
//!
//! Reported in one run:
//! - the gateway's events/s and p50/p99 latency (HTTP keep-alive, publisher confirms) at 1, 16
//!   and 64 concurrent clients, and side by side a raw lapin publisher with confirms at the same
//!   concurrency on the same broker: the ceiling. Twice: with a consumer draining the queue (the
//!   bus at work: the broker confirms messages it delivered without waiting for the disk), and
//!   with nobody consuming (a consumer is down: every message is written to disk first);
//! - the gateway's publisher alone (god's `Publisher` in this process: amqprs, no HTTP, no
//!   JSON) against the same raw lapin publisher: what the AMQP client costs per event;
//! - the relay's deliveries/s to 100 WebSocket clients.
//!
//! Each row is GOD_BENCH_ROUNDS (default 5) rounds of GOD_BENCH_SECONDS (default 3): the gateway,
//! then the raw publisher. The ratio is the median of the rounds' ratios (with their range): the
//! speed of this shared machine drifts by tens of percent within a minute, and alternating puts
//! each drift on both sides of a ratio. The gateway's CPU time per event (user + system, from
//! /proc) is the figure that does not depend on how the two cores are shared.
//!
//! Needs the broker of `scripts/bootstrap`. GOD_BENCH_CLIENTS (default `1,16,64`) chooses the
//! concurrencies measured.

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable};

use common::load::{
    EVENT, LIVENESS, Sample, closed_loop, http_load, median, median_rate, percentiles,
};
use common::{
    Drain, MANAGEMENT, applied_registry, confirming_channel, delete_vhost, env_number, fresh_vhost,
    relay_deliveries, two_thread_runtime,
};
use god::rabbit::endpoints::BrokerEndpoints;
use god::services::gateway::publisher::{Outgoing, Publisher};
use support::{ServiceProcess, cpu_seconds_of};

const VHOST: &str = "god-bench-gateway";
const RELAY_CLIENTS: usize = 100;
const RELAY_EVENTS: usize = 2000;

fn main() {
    let seconds: u64 = env_number("GOD_BENCH_SECONDS", 3);
    let rt = two_thread_runtime();
    rt.block_on(async move {
        let http = reqwest::Client::new();
        fresh_vhost(&http, VHOST).await;
        let amqp = format!("amqp://guest:guest@127.0.0.1:5672/{VHOST}");
        let _registry = applied_registry(&amqp, "version: \"1.0\"\nexchange: {name: bus, type: topic, durable: true}\nservices:\n  sink:\n    queue_name: sink\n    routing_keys: [\"#\"]\n    dead_letter: false\n");

        let gateway = ServiceProcess::start(&amqp, "bus", &[]);
        gateway.await_status("/health/ready", 200);

        let rounds: u32 = env_number("GOD_BENCH_ROUNDS", 5);
        println!("god gateway benchmark: {rounds} alternating rounds of {seconds} s (gateway, then raw) per row, 2 cores, RabbitMQ 3.10\n");
        println!("| queue | clients | gateway events/s | p50 | p99 | of which confirm wait (mean) | gateway CPU per event | raw lapin events/s | p50 | p99 | gateway / raw (median, range) |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        let meters = Meters { broker: broker_pid(), gateway: &gateway };
        let concurrencies = concurrencies();
        let mut accounts = Vec::new();
        let mut publisher_rows = Vec::new();
        for consumed in [true, false] {
            let drain = if consumed { Some(Drain::start(&amqp, "sink").await) } else { None };
            let queue = if consumed { "consumed" } else { "not consumed" };
            for &clients in &concurrencies {
                let mut row = Row::default();
                for _ in 0..rounds {
                    row.gateway_round(&http, &meters, clients, seconds).await;
                    row.raw_round(&http, &meters, &amqp, clients, seconds).await;
                }
                row.print(queue, clients);
                accounts.push(row.account(queue, clients));
                if consumed {
                    publisher_rows.push(publisher_alone(&http, &meters, &amqp, clients, seconds, rounds).await);
                }
            }
            if let Some(drain) = drain {
                drain.stop().await;
            }
        }
        println!("\nWhere the two cores went, in CPU µs per event (RabbitMQ; god gateway; the benchmark process: HTTP load generator or raw publisher, and the drain):\n");
        println!("| queue | clients | gateway side: RabbitMQ | gateway | load generator + drain | total | raw side: RabbitMQ | publisher + drain | total |");
        println!("|---|---|---|---|---|---|---|---|---|");
        for line in accounts {
            println!("{line}");
        }
        println!("\nThe gateway's publisher alone (amqprs, in the benchmark process, no HTTP, no JSON) against raw lapin, queue consumed; CPU µs per event:\n");
        println!("| clients | god publisher events/s | raw lapin events/s | god / raw (median, range) | god side: RabbitMQ | publisher + drain | raw side: RabbitMQ | publisher + drain |");
        println!("|---|---|---|---|---|---|---|---|");
        for line in publisher_rows {
            println!("{line}");
        }
        println!("\nHTTP alone: `GET /health` on the gateway with the same load generator (no JSON, no broker), CPU µs per request:\n");
        println!("| clients | requests/s | gateway | load generator | total |");
        println!("|---|---|---|---|---|");
        for &clients in &concurrencies {
            http_floor(&meters, clients, seconds).await;
        }
        purge(&http).await;
        drop(gateway);

        let relay = ServiceProcess::relay(&amqp, "bus", &[]);
        relay.await_status("/health", 200);
        let rate = relay_deliveries(&amqp, relay.port, RELAY_CLIENTS, RELAY_EVENTS).await;
        println!("\nrelay: {RELAY_EVENTS} events to {RELAY_CLIENTS} clients: {rate:.0} deliveries/s");
        drop(relay);
        purge(&http).await;
        delete_vhost(&http, VHOST).await;
    });
}

fn concurrencies() -> Vec<usize> {
    std::env::var("GOD_BENCH_CLIENTS")
        .unwrap_or_else(|_| "1,16,64".to_string())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("GOD_BENCH_CLIENTS: comma-separated numbers")
        })
        .collect()
}

/// CPU time of the processes sharing the machine during a benchmark.
struct Meters<'a> {
    broker: u32,
    gateway: &'a ServiceProcess,
}

/// CPU seconds used by RabbitMQ, the gateway and this benchmark process.
#[derive(Default, Clone, Copy)]
struct Cpu {
    broker: f64,
    gateway: f64,
    bench: f64,
}

impl Meters<'_> {
    fn now(&self) -> Cpu {
        Cpu {
            broker: cpu_seconds_of(self.broker),
            gateway: self.gateway.cpu_seconds(),
            bench: cpu_seconds_of(std::process::id()),
        }
    }
}

impl Cpu {
    /// Adds what was used between `before` and `after`.
    fn add_span(&mut self, before: Cpu, after: Cpu) {
        self.broker += after.broker - before.broker;
        self.gateway += after.gateway - before.gateway;
        self.bench += after.bench - before.bench;
    }

    /// Microseconds per event: RabbitMQ, gateway, benchmark process, total.
    fn per_event(&self, events: f64) -> [f64; 4] {
        let total = self.broker + self.gateway + self.bench;
        [self.broker, self.gateway, self.bench, total].map(|s| 1e6 * s / events)
    }
}

/// The pid of the local RabbitMQ node (its Erlang VM).
fn broker_pid() -> u32 {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "beam.smp")
        })
        .expect("a running RabbitMQ node (scripts/bootstrap)")
}

/// Prints what an HTTP round trip alone costs at `clients`: the part of the gateway's price that
/// no work inside it can remove.
async fn http_floor(meters: &Meters<'_>, clients: usize, seconds: u64) {
    let before = meters.now();
    let sample = http_load(meters.gateway.port, LIVENESS, 200, clients, seconds).await;
    let mut cpu = Cpu::default();
    cpu.add_span(before, meters.now());
    let [_, gateway, bench, _] = cpu.per_event(sample.latencies.len() as f64);
    println!(
        "| {clients} | {:.0} | {gateway:.0} | {bench:.0} | {:.0} |",
        sample.rate(),
        gateway + bench
    );
}

/// The rounds of one table row. Gateway and raw alternate, so a slow spell of the shared machine
/// falls on both sides of a round's ratio instead of on one side of the whole comparison.
#[derive(Default)]
struct Row {
    gateway: Vec<Sample>,
    raw: Vec<Sample>,
    gateway_cpu: Cpu,
    raw_cpu: Cpu,
    confirm_seconds: f64,
    confirmed: f64,
}

impl Row {
    async fn gateway_round(
        &mut self,
        http: &reqwest::Client,
        meters: &Meters<'_>,
        clients: usize,
        seconds: u64,
    ) {
        let port = meters.gateway.port;
        let confirms_before = confirm_totals(http, port).await;
        let load = http_load(port, EVENT, 202, clients, seconds);
        let sample = metered(http, meters, &mut self.gateway_cpu, load).await;
        let confirms_after = confirm_totals(http, port).await;
        self.confirm_seconds += confirms_after.0 - confirms_before.0;
        self.confirmed += confirms_after.1 - confirms_before.1;
        self.gateway.push(sample);
    }

    async fn raw_round(
        &mut self,
        http: &reqwest::Client,
        meters: &Meters<'_>,
        amqp: &str,
        clients: usize,
        seconds: u64,
    ) {
        let load = raw_load(amqp, clients, seconds);
        let sample = metered(http, meters, &mut self.raw_cpu, load).await;
        self.raw.push(sample);
    }

    /// A round of god's publisher alone, counted on the gateway side of the row.
    async fn publisher_round(
        &mut self,
        http: &reqwest::Client,
        meters: &Meters<'_>,
        publisher: &Arc<Publisher>,
        clients: usize,
        seconds: u64,
    ) {
        let load = publisher_load(publisher, clients, seconds);
        let sample = metered(http, meters, &mut self.gateway_cpu, load).await;
        self.confirmed += sample.latencies.len() as f64;
        self.gateway.push(sample);
    }

    fn print(&self, queue: &str, clients: usize) {
        let (g50, g99) = percentiles(&self.gateway);
        let (r50, r99) = percentiles(&self.raw);
        println!(
            "| {queue} | {clients} | {:.0} | {g50:.2} ms | {g99:.2} ms | {:.2} ms | {:.0} µs | {:.0} | {r50:.2} ms | {r99:.2} ms | {} |",
            median_rate(&self.gateway),
            1000.0 * self.confirm_seconds / self.confirmed,
            1e6 * self.gateway_cpu.gateway / self.confirmed,
            median_rate(&self.raw),
            self.ratio(),
        );
    }

    /// The median of the rounds' ratios, gateway side over raw side, with their range.
    fn ratio(&self) -> String {
        let ratios: Vec<f64> = self
            .gateway
            .iter()
            .zip(&self.raw)
            .map(|(g, r)| 100.0 * g.rate() / r.rate())
            .collect();
        let (lowest, highest) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        format!("{:.0}% ({lowest:.0}–{highest:.0}%)", median(ratios))
    }

    /// CPU µs per event of each process ([`Cpu::per_event`]), gateway side and raw side.
    fn per_event(&self) -> ([f64; 4], [f64; 4]) {
        let raw_events: usize = self.raw.iter().map(|s| s.latencies.len()).sum();
        (
            self.gateway_cpu.per_event(self.confirmed),
            self.raw_cpu.per_event(raw_events as f64),
        )
    }

    /// The row of the CPU account: µs per event of each process, gateway side and raw side.
    fn account(&self, queue: &str, clients: usize) -> String {
        let ([gb, gg, gl, gt], [rb, _, rp, rt]) = self.per_event();
        format!(
            "| {queue} | {clients} | {gb:.0} | {gg:.0} | {gl:.0} | {gt:.0} | {rb:.0} | {rp:.0} | {rt:.0} |"
        )
    }
}

/// The gateway's publisher alone against raw lapin at `clients`, alternating rounds: the table
/// line of what each AMQP client costs per event.
async fn publisher_alone(
    http: &reqwest::Client,
    meters: &Meters<'_>,
    amqp: &str,
    clients: usize,
    seconds: u64,
    rounds: u32,
) -> String {
    let endpoints = BrokerEndpoints::resolve(Some(amqp), None).unwrap();
    let addresses = endpoints.amqp_endpoints().map(|e| e.address()).collect();
    let publisher = Publisher::new(addresses, "bus");
    publisher.keep_connected();
    while !publisher.connected().await {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut row = Row::default();
    for _ in 0..rounds {
        row.publisher_round(http, meters, &publisher, clients, seconds)
            .await;
        row.raw_round(http, meters, amqp, clients, seconds).await;
    }
    let ([gb, _, gp, _], [rb, _, rp, _]) = row.per_event();
    format!(
        "| {clients} | {:.0} | {:.0} | {} | {gb:.0} | {gp:.0} | {rb:.0} | {rp:.0} |",
        median_rate(&row.gateway),
        median_rate(&row.raw),
        row.ratio(),
    )
}

/// Runs one round's load on an empty queue and adds the CPU every process spent on it to `cpu`.
async fn metered(
    http: &reqwest::Client,
    meters: &Meters<'_>,
    cpu: &mut Cpu,
    load: impl std::future::Future<Output = Sample>,
) -> Sample {
    purge(http).await;
    let before = meters.now();
    let sample = load.await;
    cpu.add_span(before, meters.now());
    sample
}

/// The gateway's confirm-latency sum (seconds) and count, from its /metrics.
async fn confirm_totals(http: &reqwest::Client, port: u16) -> (f64, f64) {
    let text = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().parse::<f64>().unwrap())
            .unwrap()
    };
    (
        value("god_gateway_confirm_seconds_sum "),
        value("god_gateway_confirm_seconds_count "),
    )
}

/// The message the gateway publishes for the benchmark's request: the same envelope (fresh id
/// and timestamp) and the same properties, so the raw reference asks the broker for the same work.
fn same_event_as_the_gateway_publishes() -> (Vec<u8>, BasicProperties) {
    let id = uuid::Uuid::new_v4().to_string();
    let envelope = serde_json::json!({
        "event_type": "bench.load",
        "source": {"host": "bench", "type": "webhook", "app": "god-gateway"},
        "agent_context": null,
        "payload": {"n": 1, "text": "benchmark"},
        "event_id": id,
        "timestamp": "2026-11-23T13:00:00.000000000Z",
        "version": "1.0.0",
        "correlation_ids": [],
    });
    let mut headers = FieldTable::default();
    headers.insert(
        "event_type".into(),
        AMQPValue::LongString("bench.load".into()),
    );
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_message_id(id.as_str().into())
        .with_headers(headers);
    (serde_json::to_vec(&envelope).unwrap(), properties)
}

async fn raw_load(amqp: &str, clients: usize, seconds: u64) -> Sample {
    let (connection, channel) = confirming_channel(amqp).await;
    let channel = Arc::new(channel);
    let load = closed_loop(clients, seconds, |deadline| {
        let channel = Arc::clone(&channel);
        async move {
            let options = BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            };
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let (body, properties) = same_event_as_the_gateway_publishes();
                channel
                    .basic_publish(
                        "bus".into(),
                        "bench.load".into(),
                        options,
                        &body,
                        properties,
                    )
                    .await
                    .unwrap()
                    .await
                    .unwrap();
                latencies.push(t.elapsed());
            }
            latencies
        }
    })
    .await;
    let _ = connection.close(200, "done".into()).await;
    load
}

/// `clients` tasks publishing the benchmark's message through god's publisher, each waiting for
/// its confirm before the next.
async fn publisher_load(publisher: &Arc<Publisher>, clients: usize, seconds: u64) -> Sample {
    closed_loop(clients, seconds, |deadline| {
        let publisher = Arc::clone(publisher);
        async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let (body, properties) = same_event_as_the_gateway_publishes();
                let message_id = properties.message_id().clone().unwrap();
                let event = Outgoing {
                    routing_key: "bench.load",
                    body,
                    message_id: message_id.as_str(),
                    correlation_id: None,
                };
                publisher.publish(event).await.unwrap();
                latencies.push(t.elapsed());
            }
            latencies
        }
    })
    .await
}

async fn purge(http: &reqwest::Client) {
    let _ = http
        .delete(format!("{MANAGEMENT}/queues/{VHOST}/sink/contents"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await;
}
