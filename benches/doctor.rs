//! `cargo bench --bench doctor`: `god doctor` on a healthy stack of 20 services, against the
//! real broker and engine. Every check runs: 20 queues with their consumers and dead-letter
//! queues, the gateway and the relay (`god gateway`, `god relay`), two containers that also
//! serve the 20 services' health endpoints, and the config files.
//!
//! Reported: the median wall time of `god doctor` (process start to exit) over GOD_BENCH_REPEATS
//! runs (default 5), and, as a reference measured in the same run, `god plan` on the same
//! stack. Target: doctor under 2 s. Needs `scripts/bootstrap` (broker and engine).

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lapin::options::BasicConsumeOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};

const MANAGEMENT: &str = "http://127.0.0.1:15672/api";
const VHOST: &str = "god-bench-doctor";
const PROJECT: &str = "god-bench-doctor";
const SERVICES: usize = 20;

fn main() {
    let repeats: usize = std::env::var("GOD_BENCH_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        Command::new(root.join("scripts/test-image"))
            .status()
            .unwrap()
            .success()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    rt.block_on(fresh_vhost(&http));
    remove_containers();
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
    let gateway = Stopped(spawn_service("gateway", &amqp));
    let relay = Stopped(spawn_service("relay", &amqp));
    let urls = [gateway.url().to_string(), relay.url().to_string()];
    let args = [
        "doctor",
        "--gateway-url",
        urls[0].as_str(),
        "--relay-url",
        urls[1].as_str(),
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
    remove_containers();
    let delete = http
        .delete(format!("{MANAGEMENT}/vhosts/{VHOST}"))
        .basic_auth("guest", Some("guest"))
        .send();
    let _ = rt.block_on(delete);
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

/// A bundled service on a free loopback port, and its base URL.
fn spawn_service(service: &str, amqp: &str) -> (Child, String) {
    let port = free_port();
    let child = god()
        .args([
            service,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--exchange",
            "bus",
        ])
        .env("RABBITMQ_URL", amqp)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, format!("http://127.0.0.1:{port}"))
}

/// A child process killed when dropped, so a failing benchmark leaves no service behind.
struct Stopped((Child, String));

impl Stopped {
    fn url(&self) -> &str {
        &self.0.1
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.0.kill();
        let _ = self.0.0.wait();
    }
}

fn god() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_god"));
    cmd.env_remove("GOD_REGISTRY").env_remove("GOD_COMPONENTS");
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn remove_containers() {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=god.project={PROJECT}"),
        ])
        .output()
        .unwrap();
    let ids = String::from_utf8_lossy(&out.stdout);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let _ = Command::new("docker")
            .args(["rm", "-f"])
            .args(&ids)
            .output();
    }
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
