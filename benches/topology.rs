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
//!
//! With GOD_BENCH_CLUSTER=1 the same measurements run on the local 3-node cluster
//! (`scripts/cluster up`, started here when it is not running) with quorum queues: the
//! registry says `defaults: { queue_type: quorum }`, so every service queue and every
//! dead-letter queue is a quorum queue; god is given all three nodes. Default services: 1000.

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{MANAGEMENT, env_number};

/// Where the benchmark runs.
struct Target {
    /// The management API (`http://…/api`) the references use.
    api: String,
    /// What god is given: AMQP `host:port` of each node, and the management URLs.
    amqp_nodes: Vec<String>,
    management_urls: Option<String>,
    /// Quorum queues (the cluster) or classic ones (one node).
    quorum: bool,
}

impl Target {
    fn from_env() -> Self {
        if std::env::var("GOD_BENCH_CLUSTER").is_ok_and(|v| v == "1") {
            let up = std::process::Command::new(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster"),
            )
            .arg("up")
            .status()
            .unwrap();
            assert!(up.success(), "scripts/cluster up failed");
            Self {
                api: format!("{}/api", support::cluster::management_url(1)),
                amqp_nodes: (1..=support::cluster::NODES)
                    .map(|i| format!("127.0.0.1:{}", support::cluster::amqp_port(i)))
                    .collect(),
                management_urls: Some(
                    (1..=support::cluster::NODES)
                        .map(support::cluster::management_url)
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                quorum: true,
            }
        } else {
            Self {
                api: MANAGEMENT.to_string(),
                amqp_nodes: vec!["127.0.0.1:5672".to_string()],
                management_urls: None,
                quorum: false,
            }
        }
    }
}

fn main() {
    let target = Target::from_env();
    let services: usize = env_number(
        "GOD_BENCH_SERVICES",
        if target.quorum { 1000 } else { 5000 },
    );
    let repeats: usize = env_number("GOD_BENCH_REPEATS", 3);
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.yaml");
    std::fs::write(&registry, generated_registry(services, target.quorum)).unwrap();
    let http = Http::new(&target.api);
    let god = |registry: &Path, vhost: &str, args: &[&str], expected: i32| {
        god(&target, registry, vhost, args, expected)
    };
    let kind = if target.quorum {
        format!("quorum queues on {} nodes", target.amqp_nodes.len())
    } else {
        "classic queues on one node".to_string()
    };
    println!("god topology benchmark: {services} services ({kind}), median of {repeats} runs\n");

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
/// (one exact, one wildcard), dead-lettering on (the default); `quorum`: every queue a quorum
/// queue, by the registry's default.
fn generated_registry(services: usize, quorum: bool) -> String {
    let mut out = String::from(
        "version: \"1.0\"\nexchange:\n  name: bloodbank.events.v1\n  type: topic\n  durable: true\n",
    );
    if quorum {
        out.push_str("defaults:\n  queue_type: quorum\n");
    }
    out.push_str("services:\n");
    for i in 0..services {
        let _ = write!(
            out,
            "  svc-{i:05}:\n    name: svc-{i:05}\n    type: event-consumer\n    queue_name: services.bench.svc_{i:05}\n    routing_keys:\n      - \"bench.svc{i}.requested\"\n      - \"bench.domain{}.#\"\n    status: active\n",
            i % 50
        );
    }
    out
}

fn god(target: &Target, registry: &Path, vhost: &str, args: &[&str], expected: i32) {
    let urls: Vec<String> = target
        .amqp_nodes
        .iter()
        .map(|node| format!("amqp://guest:guest@{node}/{vhost}"))
        .collect();
    let mut command = support::god();
    command
        .arg("--registry")
        .arg(registry)
        .args(args)
        .env("RABBITMQ_URL", urls.join(","));
    if let Some(management) = &target.management_urls {
        command.env("RABBITMQ_MANAGEMENT_URL", management);
    }
    let out = command.output().unwrap();
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
    api: String,
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Http {
    fn new(api: &str) -> Self {
        Self {
            api: api.to_string(),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(3600))
                // A node closes idle connections while god runs between two calls: no reuse.
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<String>) -> String {
        self.rt.block_on(async {
            let mut req = self
                .client
                .request(method, format!("{}/{path}", self.api))
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
        self.rt
            .block_on(common::fresh_vhost_at(&self.client, &self.api, name));
        name.to_string()
    }

    fn delete_vhost(&self, name: &str) {
        self.rt
            .block_on(common::delete_vhost_at(&self.client, &self.api, name));
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
