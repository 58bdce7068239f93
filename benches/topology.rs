//! `cargo bench --bench topology`: god against RabbitMQ's own definitions export and import on
//! a generated registry of 5,000 services (10,000 queues with their dead-letter queues).
//!
//! Reported in one run, each the median of REPEATS:
//! - god plan against an empty vhost, and against a converged one;
//! - god apply from empty;
//! - the references: GET /api/definitions/VHOST of the converged vhost (export), and POST of
//!   that same document into an empty vhost (import). The document holds exactly what god
//!   created, god's record bindings included.
//!
//! Needs the broker of `scripts/bootstrap`. Environment: GOD_BENCH_SERVICES (default 5000),
//! GOD_BENCH_REPEATS (default 3).

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{MANAGEMENT, env_number};

fn main() {
    let services: usize = env_number("GOD_BENCH_SERVICES", 5000);
    let repeats: usize = env_number("GOD_BENCH_REPEATS", 3);
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.yaml");
    std::fs::write(&registry, generated_registry(services)).unwrap();
    let http = Http::new();
    println!("god topology benchmark: {services} services, median of {repeats} runs\n");

    let mut plan_empty = Vec::new();
    let mut apply = Vec::new();
    let mut plan_converged = Vec::new();
    let mut export = Vec::new();
    let mut import = Vec::new();
    for run in 0..repeats {
        let vhost = http.fresh_vhost(&format!("god-bench-apply-{run}"));
        plan_empty.push(time(|| god(&registry, &vhost, &["plan"], 0)));
        apply.push(time(|| {
            god(&registry, &vhost, &["apply", "--auto-approve"], 0)
        }));
        plan_converged.push(time(|| {
            god(&registry, &vhost, &["plan", "--detailed-exitcode"], 0)
        }));
        let mut document = String::new();
        export.push(time(|| document = http.export(&vhost)));
        let target = http.fresh_vhost(&format!("god-bench-import-{run}"));
        import.push(time(|| http.import(&target, &document)));
        god(&registry, &target, &["plan", "--detailed-exitcode"], 0);
        http.delete_vhost(&vhost);
        http.delete_vhost(&target);
    }
    let (pe, ap, pc, ex, im) = (
        median(plan_empty),
        median(apply),
        median(plan_converged),
        median(export),
        median(import),
    );
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| measurement | median | reference | ratio | target |"
    );
    let _ = writeln!(table, "|---|---|---|---|---|");
    let _ = writeln!(table, "| god plan, empty vhost | {} | | | |", secs(pe));
    let _ = writeln!(
        table,
        "| god plan, converged vhost | {} | export {} | {:.2}x | ≤ 1.5x |",
        secs(pc),
        secs(ex),
        ratio(pc, ex)
    );
    let _ = writeln!(
        table,
        "| god apply, from empty | {} | import {} | {:.2}x | ≤ 1.0x |",
        secs(ap),
        secs(im),
        ratio(ap, im)
    );
    let _ = writeln!(table, "| definitions export (GET) | {} | | | |", secs(ex));
    let _ = writeln!(table, "| definitions import (POST) | {} | | | |", secs(im));
    println!("{table}");
}

/// A registry like the platform's, scaled: every service consumes one queue with two keys
/// (one exact, one wildcard), dead-lettering on (the default).
fn generated_registry(services: usize) -> String {
    let mut out = String::from(
        "version: \"1.0\"\nexchange:\n  name: bloodbank.events.v1\n  type: topic\n  durable: true\nservices:\n",
    );
    for i in 0..services {
        let _ = write!(
            out,
            "  svc-{i:05}:\n    name: svc-{i:05}\n    type: event-consumer\n    queue_name: services.bench.svc_{i:05}\n    routing_keys:\n      - \"bench.svc{i}.requested\"\n      - \"bench.domain{}.#\"\n    status: active\n",
            i % 50
        );
    }
    out
}

fn god(registry: &Path, vhost: &str, args: &[&str], expected: i32) {
    let out = support::god()
        .arg("--registry")
        .arg(registry)
        .args(args)
        .env(
            "RABBITMQ_URL",
            format!("amqp://guest:guest@127.0.0.1:5672/{vhost}"),
        )
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(expected),
        "god {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

/// Blocking calls to the management API.
struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Http {
    fn new() -> Self {
        Self {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(3600))
                .build()
                .unwrap(),
        }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<String>) -> String {
        self.rt.block_on(async {
            let mut req = self
                .client
                .request(method, format!("{MANAGEMENT}/{path}"))
                .basic_auth("guest", Some("guest"));
            if let Some(b) = body {
                req = req.header("content-type", "application/json").body(b);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let text = resp.text().await.unwrap();
            assert!(
                status.is_success() || status == 404,
                "{path}: {status} {text}"
            );
            text
        })
    }

    fn fresh_vhost(&self, name: &str) -> String {
        self.rt.block_on(common::fresh_vhost(&self.client, name));
        name.to_string()
    }

    fn delete_vhost(&self, name: &str) {
        self.rt.block_on(common::delete_vhost(&self.client, name));
    }

    fn export(&self, vhost: &str) -> String {
        self.call(reqwest::Method::GET, &format!("definitions/{vhost}"), None)
    }

    fn import(&self, vhost: &str, document: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("definitions/{vhost}"),
            Some(document.to_string()),
        );
    }
}
