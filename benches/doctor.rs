//! `cargo bench --bench doctor`: `god doctor` on a healthy stack of 20 services, against the
//! real broker and engine. Every check runs: 20 queues with their consumers and dead-letter
//! queues, the gateway and the relay (`god gateway`, `god relay`), two containers that also
//! serve the 20 services' health endpoints, and the config files.
//!
//! Reported: the median wall time of `god doctor` (process start to exit) over GOD_BENCH_REPEATS
//! runs (default 5), and, as a reference measured in the same run, `god plan` on the same
//! stack. Target: doctor under 2 s. Needs `scripts/bootstrap` (broker and engine).

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use lapin::options::BasicConsumeOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};

use common::{delete_vhost, env_number, fresh_vhost};
use support::{ServiceProcess, free_port, god, remove_project_containers};

const VHOST: &str = "god-bench-doctor";
const PROJECT: &str = "god-bench-doctor";
const SERVICES: usize = 20;

fn main() {
    let repeats: usize = env_number("GOD_BENCH_REPEATS", 5);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        Command::new(root.join("scripts/test-image"))
            .status()
            .unwrap()
            .success()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    rt.block_on(fresh_vhost(&http, VHOST));
    remove_project_containers(PROJECT);
    let amqp = format!("amqp://guest:guest@127.0.0.1:5672/{VHOST}");
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port()];
    std::fs::write(dir.path().join("registry.yaml"), registry(&ports)).unwrap();
    std::fs::write(dir.path().join("components.toml"), components(&ports)).unwrap();
    let god_in = |args: &[&str]| -> Output {
        god()
            .current_dir(dir.path())
            .env("RABBITMQ_URL", &amqp)
            .args(["--project", PROJECT])
            .args(args)
            .output()
            .unwrap()
    };
    let applied = god_in(&["apply", "--auto-approve"]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );

    let _consumers = rt.block_on(consume_every_queue(&amqp));
    let gateway = ServiceProcess::start(&amqp, "bus", &[]);
    let relay = ServiceProcess::relay(&amqp, "bus", &[]);
    let args = [
        "doctor",
        "--gateway-url",
        gateway.url.as_str(),
        "--relay-url",
        relay.url.as_str(),
    ];
    let report = await_healthy(|| god_in(&args));

    let doctor = median_seconds(repeats, || {
        let out = god_in(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    });
    let plan = median_seconds(repeats, || {
        assert!(god_in(&["plan"]).status.success());
    });
    println!("god doctor benchmark: {SERVICES} services, median of {repeats} runs, 2 cores\n");
    println!("| measurement | median | reference (god plan) | ratio | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| god doctor, healthy stack | {doctor:.2} s | {plan:.2} s | {:.2}x | < 2 s |",
        doctor / plan
    );
    println!("\nthe report of the first passing run:\n\n{report}");
    drop(gateway);
    drop(relay);
    remove_project_containers(PROJECT);
    rt.block_on(delete_vhost(&http, VHOST));
}

/// 20 services, each with a queue, a routing key, a produced event type that the next service
/// consumes, and a health endpoint served by one of the two containers.
fn registry(ports: &[u16; 2]) -> String {
    let mut text = String::from(
        "version: \"1.0\"\nexchange: {name: bus, type: topic, durable: true}\nservices:\n",
    );
    for i in 0..SERVICES {
        let next = (i + 1) % SERVICES;
        let port = ports[i % 2];
        text.push_str(&format!(
            "  svc{i}:\n    queue_name: svc{i}.inbox\n    routing_keys: [\"work.{i}.#\"]\n    produces: [work.{next}.done]\n    endpoints: {{health: \"http://127.0.0.1:{port}/index.html\"}}\n"
        ));
    }
    text
}

fn components(ports: &[u16; 2]) -> String {
    ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            format!(
                "[components.web{i}]\nimage = \"busybox:local\"\ncommand = [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"127.0.0.1:{port}\", \"-h\", \"/www\"]\nnetwork_mode = \"host\"\n\n[components.web{i}.healthcheck]\nhttp = \"http://127.0.0.1:{port}/index.html\"\ninterval = \"1s\"\ntimeout = \"2s\"\nretries = 10\n\n"
            )
        })
        .collect()
}

/// Keeps a consumer on every service queue for as long as the returned values live.
async fn consume_every_queue(amqp: &str) -> (Connection, Vec<lapin::Consumer>) {
    let connection = Connection::connect(amqp, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let mut consumers = Vec::new();
    for i in 0..SERVICES {
        let queue = format!("svc{i}.inbox");
        let tag = format!("bench-{i}");
        consumers.push(
            channel
                .basic_consume(
                    queue.as_str().into(),
                    tag.as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap(),
        );
    }
    (connection, consumers)
}

/// Waits (up to 30 s) until doctor passes (the relay's consumer shows in the broker's consumer
/// list a moment after it starts); returns its report.
fn await_healthy(doctor: impl Fn() -> Output) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = doctor();
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the stack never became healthy:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn median_seconds(repeats: usize, run: impl Fn()) -> f64 {
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
