//! `cargo bench --bench stack`: god's gateway as the stack runs it, on the project network
//! behind a port published on 127.0.0.1, against the same gateway on the host network (the
//! reference), in one run, on one broker: a RabbitMQ container of the same stack
//! (scripts/broker-image), which `god apply` starts first, as on an empty machine.
//!
//! Each row is GOD_BENCH_ROUNDS (default 5) rounds of GOD_BENCH_SECONDS (default 3) per
//! gateway, alternating (the machine's speed drifts; alternating puts each drift on both
//! sides). The ratio is the median of the rounds' ratios, with their range. GOD_BENCH_CLIENTS
//! (default `1,16`) chooses the concurrencies.

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use common::load::{EVENT, Sample, http_load, median, median_rate, percentiles};
use common::{env_number, two_thread_runtime};
use support::{broker_component, free_port, god, remove_project_containers};

const PROJECT: &str = "god-bench-stack";

fn main() {
    let seconds: u64 = env_number("GOD_BENCH_SECONDS", 3);
    let rounds: usize = env_number("GOD_BENCH_ROUNDS", 5);
    remove_project_containers(PROJECT);
    let (on_network, on_host) = (free_port(), free_port());
    let dir = stack(on_network, on_host);
    let started = std::time::Instant::now();
    let out = god()
        .current_dir(dir.path())
        .args(["--project", PROJECT, "apply", "--auto-approve"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "god apply from nothing (broker container, topology, two gateways): {:.1} s\n",
        started.elapsed().as_secs_f64()
    );
    println!(
        "{:>8} {:>14} {:>14} {:>22} {:>16} {:>16}",
        "clients", "host ev/s", "network ev/s", "network/host", "host p50/p99", "network p50/p99"
    );
    let rt = two_thread_runtime();
    for clients in concurrencies() {
        let (mut host, mut network, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let h = rt.block_on(http_load(on_host, EVENT, 202, clients, seconds));
            let n = rt.block_on(http_load(on_network, EVENT, 202, clients, seconds));
            ratios.push(n.rate() / h.rate());
            host.push(h);
            network.push(n);
        }
        print_row(clients, &host, &network, &ratios);
    }
    remove_project_containers(PROJECT);
}

fn concurrencies() -> Vec<usize> {
    std::env::var("GOD_BENCH_CLIENTS")
        .unwrap_or_else(|_| "1,16".to_string())
        .split(',')
        .map(|c| c.trim().parse().expect("GOD_BENCH_CLIENTS: numbers"))
        .collect()
}

fn print_row(clients: usize, host: &[Sample], network: &[Sample], ratios: &[f64]) {
    let (lo, hi) = ratios
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    let ((h50, h99), (n50, n99)) = (percentiles(host), percentiles(network));
    println!(
        "{clients:>8} {:>14.0} {:>14.0} {:>22} {:>16} {:>16}",
        median_rate(host),
        median_rate(network),
        format!("{:.2}x [{lo:.2}-{hi:.2}]", median(ratios.to_vec())),
        format!("{h50:.2}/{h99:.2} ms"),
        format!("{n50:.2}/{n99:.2} ms"),
    );
}

/// The stack in a temporary directory: the broker container on a project network, one gateway
/// beside it (alias bloodbank, port published on 127.0.0.1:`on_network`), one on the host
/// network at 127.0.0.1:`on_host`, reaching the broker by its published port. Events route to
/// one queue that keeps the last 1,000: what is measured is the path into the broker and its
/// confirm, not a growing queue.
fn stack(on_network: u16, on_host: u16) -> tempfile::TempDir {
    let (amqp, management) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("registry.yaml"),
        "version: \"1.0\"\nexchange: {name: bus, type: topic, durable: true}\nservices:\n  sink:\n    queue_name: sink\n    routing_keys: [\"#\"]\n    dead_letter: false\n    arguments: {x-max-length: 1000}\n",
    )
    .unwrap();
    let health = |port: u16| {
        format!(
            "http = \"http://127.0.0.1:{port}/health/ready\"\ninterval = \"500ms\"\nretries = 120\n"
        )
    };
    let components = format!(
        r#"[networks.bench]

{broker}[components.gateway]
builtin = "gateway"
networks = {{ bench = {{ aliases = ["bloodbank"] }} }}
ports = ["127.0.0.1:{on_network}:8682"]
depends_on = ["rabbitmq"]

[components.gateway.healthcheck]
{network_health}
[components.gateway-host]
builtin = "gateway"
network_mode = "host"
command = ["/god", "gateway", "--listen", "127.0.0.1:{on_host}"]
depends_on = ["rabbitmq"]

[components.gateway-host.healthcheck]
{host_health}"#,
        broker = broker_component(amqp, management, "bench", ""),
        network_health = health(on_network),
        host_health = health(on_host),
    );
    std::fs::write(dir.path().join("components.toml"), components).unwrap();
    dir
}
