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
//! Then the scale curve (one node): god apply from empty and the converged god plan, their
//! time per service and god's peak memory (its maximum resident set, from wait4), at each
//! size of GOD_BENCH_CURVE (default 1000,5000,20000; `0` skips it), with the definitions
//! import of the same objects beside each.
//!
//! Needs the broker of `scripts/bootstrap`, or the one GOD_TEST_AMQP and GOD_TEST_MANAGEMENT
//! name as for the tests: `eval "$(scripts/rabbitmq4 urls)"` after `scripts/rabbitmq4 up`
//! measures RabbitMQ 4.0. Environment: GOD_BENCH_SERVICES (default 5000), GOD_BENCH_REPEATS
//! (default 3).
//!
//! With GOD_BENCH_CLUSTER=1 the same measurements run on the local 3-node cluster
//! (`scripts/cluster up`, started here when it is not running) with quorum queues: the
//! registry says `defaults: { queue_type: quorum }`, so every service queue and every
//! dead-letter queue is a quorum queue; god is given all three nodes. Default services: 1000.

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::env_number;

/// Where the benchmark runs.
struct Target {
    /// The management API (`http://…/api`) the references use.
    api: String,
    /// What god is given: AMQP `host:port` of each node, and the management URLs.
    amqp_nodes: Vec<String>,
    management_urls: String,
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
                management_urls: (1..=support::cluster::NODES)
                    .map(support::cluster::management_url)
                    .collect::<Vec<_>>()
                    .join(","),
                quorum: true,
            }
        } else {
            Self {
                api: format!("{}/api", support::management()),
                amqp_nodes: vec![support::amqp_node()],
                management_urls: support::management(),
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
    let kind = if target.quorum {
        format!("quorum queues on {} nodes", target.amqp_nodes.len())
    } else {
        "classic queues on one node".to_string()
    };
    println!(
        "god topology benchmark: {services} services ({kind}), RabbitMQ {}, median of {repeats} runs\n",
        http.version()
    );
    let rounds: Vec<Round> = (0..repeats)
        .map(|run| Round::measure(&target, &http, &registry, &format!("{run}")))
        .collect();
    let median_of = |f: fn(&Round) -> Duration| median(rounds.iter().map(f).collect());
    let (pe, ap, pc, ex, im) = (
        median_of(|r| r.plan_empty),
        median_of(|r| r.apply),
        median_of(|r| r.plan_converged),
        median_of(|r| r.export),
        median_of(|r| r.import),
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
        "| god plan, converged vhost | {} | export {} | {} | ≤ 0.8x |",
        secs(pc),
        reference_secs(ex),
        ratio_text(pc, ex)
    );
    let _ = writeln!(
        table,
        "| god apply, from empty | {} | import {} | {} | ≤ 0.5x |",
        secs(ap),
        reference_secs(im),
        ratio_text(ap, im)
    );
    let _ = writeln!(
        table,
        "| definitions export (GET) | {} | | | |",
        reference_secs(ex)
    );
    let _ = writeln!(
        table,
        "| definitions import (POST) | {} | | | |",
        reference_secs(im)
    );
    println!("{table}");
    if !target.quorum {
        scale_curve(&target, &http, dir.path());
    }
}

/// One round on fresh vhosts: god plan (empty), god apply, god plan (converged), the export
/// of what god made and its import into another fresh vhost (which god then finds converged).
struct Round {
    plan_empty: Duration,
    apply: Duration,
    plan_converged: Duration,
    export: Duration,
    import: Duration,
    /// god's peak memory in the apply and the converged plan, KiB.
    apply_peak: u64,
    plan_peak: u64,
}

impl Round {
    fn measure(target: &Target, http: &Http, registry: &Path, tag: &str) -> Self {
        let vhost = http.fresh_vhost(&format!("god-bench-apply-{tag}"));
        let (plan_empty, _) = god(target, registry, &vhost, &["plan"], 0);
        let (apply, apply_peak) = god(target, registry, &vhost, &["apply", "--auto-approve"], 0);
        let (plan_converged, plan_peak) = god(
            target,
            registry,
            &vhost,
            &["plan", "--detailed-exitcode"],
            0,
        );
        let mut document = None;
        let export = time(|| document = http.export(&vhost));
        let copy = http.fresh_vhost(&format!("god-bench-import-{tag}"));
        // An export the broker cannot finish (at 20,000 services RabbitMQ 3.10 closes the
        // connection) or an import it refuses leaves no reference: zero, printed as "none".
        let (export, import) = match &document {
            Some(document) => {
                let mut imported = false;
                let import = time(|| imported = http.import(&copy, document));
                if imported {
                    god(target, registry, &copy, &["plan", "--detailed-exitcode"], 0);
                }
                (export, if imported { import } else { Duration::ZERO })
            }
            None => (Duration::ZERO, Duration::ZERO),
        };
        http.delete_vhost(&vhost);
        http.delete_vhost(&copy);
        Self {
            plan_empty,
            apply,
            plan_converged,
            export,
            import,
            apply_peak,
            plan_peak,
        }
    }
}

/// Apply and converged plan at each size of GOD_BENCH_CURVE, one round each: time per
/// service, god's peak memory, and the import beside them; then how the time per service grew
/// from the smallest size to the largest.
fn scale_curve(target: &Target, http: &Http, dir: &Path) {
    let sizes: Vec<usize> = std::env::var("GOD_BENCH_CURVE")
        .unwrap_or_else(|_| "1000,5000,20000".to_string())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|n| *n > 0)
        .collect();
    if sizes.is_empty() {
        return;
    }
    println!("Scale curve (one round per size):\n");
    println!(
        "| services | apply | per service | peak memory | import | apply/import | converged plan | per service | peak memory | export | plan/export |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut per_service = Vec::new();
    for size in &sizes {
        let registry = dir.join(format!("registry-{size}.yaml"));
        std::fs::write(&registry, generated_registry(*size, false)).unwrap();
        let r = Round::measure(target, http, &registry, &format!("curve-{size}"));
        let each = |d: Duration| d.as_secs_f64() * 1000.0 / *size as f64;
        println!(
            "| {size} | {} | {:.2} ms | {} MiB | {} | {} | {} | {:.3} ms | {} MiB | {} | {} |",
            secs(r.apply),
            each(r.apply),
            r.apply_peak / 1024,
            reference_secs(r.import),
            ratio_text(r.apply, r.import),
            secs(r.plan_converged),
            each(r.plan_converged),
            r.plan_peak / 1024,
            reference_secs(r.export),
            ratio_text(r.plan_converged, r.export),
        );
        per_service.push((each(r.apply), each(r.plan_converged)));
    }
    if let (Some(first), Some(last)) = (per_service.first(), per_service.last()) {
        println!(
            "\nTime per service, {} → {} services: apply {:.2}x, converged plan {:.2}x (target ≤ 1.2x)",
            sizes[0],
            sizes[sizes.len() - 1],
            last.0 / first.0,
            last.1 / first.1
        );
    }
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

/// Runs god on `vhost`; returns how long it took and its peak memory (KiB, from wait4).
fn god(
    target: &Target,
    registry: &Path,
    vhost: &str,
    args: &[&str],
    expected: i32,
) -> (Duration, u64) {
    let urls: Vec<String> = target
        .amqp_nodes
        .iter()
        .map(|node| format!("amqp://guest:guest@{node}/{vhost}"))
        .collect();
    let errors = tempfile::tempfile().unwrap();
    let mut command = support::god();
    command
        .arg("--registry")
        .arg(registry)
        .args(args)
        .env("RABBITMQ_URL", urls.join(","))
        .stdout(Stdio::null())
        .stderr(errors.try_clone().unwrap())
        .env("RABBITMQ_MANAGEMENT_URL", &target.management_urls);
    let start = Instant::now();
    // wait4 reaps it: std's wait cannot give the peak memory.
    #[allow(clippy::zombie_processes)]
    let child = command.spawn().unwrap();
    let (status, peak) = wait_with_peak_memory(child.id());
    let took = start.elapsed();
    if status.code() != Some(expected) {
        let mut shown = String::new();
        let mut errors = errors;
        use std::io::{Read, Seek};
        errors.rewind().unwrap();
        errors.read_to_string(&mut shown).unwrap();
        panic!("god {args:?} exited {status}: {shown}");
    }
    (took, peak)
}

/// Waits for a child and returns its exit status and maximum resident set (KiB).
fn wait_with_peak_memory(pid: u32) -> (std::process::ExitStatus, u64) {
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid, and wait4 only writes into the two locals.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid as libc::pid_t, "wait4 failed");
    (
        std::process::ExitStatus::from_raw(status),
        u64::try_from(usage.ru_maxrss).unwrap_or(0),
    )
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

/// A reference's time, or "none" when the broker gave none (zero).
fn reference_secs(d: Duration) -> String {
    if d.is_zero() { "none".into() } else { secs(d) }
}

/// god's time against a reference, or "-" when there is no reference.
fn ratio_text(a: Duration, b: Duration) -> String {
    if b.is_zero() {
        "-".into()
    } else {
        format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64())
    }
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

    /// The broker's version, from its overview.
    fn version(&self) -> String {
        let overview: serde_json::Value =
            serde_json::from_str(&self.call(reqwest::Method::GET, "overview", None)).unwrap();
        overview["rabbitmq_version"]
            .as_str()
            .unwrap_or("?")
            .to_string()
    }

    /// The vhost's definitions, or None when the broker breaks off the answer.
    fn export(&self, vhost: &str) -> Option<String> {
        self.rt.block_on(async {
            let response = self
                .client
                .get(format!("{}/definitions/{vhost}", self.api))
                .basic_auth("guest", Some("guest"))
                .send()
                .await
                .ok()?
                .error_for_status()
                .ok()?;
            match response.text().await {
                Ok(text) => Some(text),
                Err(e) => {
                    println!("(the export of {vhost} failed: {e})");
                    None
                }
            }
        })
    }

    /// Imports a document; false when the broker refuses it (past its request body limit,
    /// `management.http.max_body_size`, 20 MB by default).
    fn import(&self, vhost: &str, document: &str) -> bool {
        self.rt.block_on(async {
            let response = self
                .client
                .post(format!("{}/definitions/{vhost}", self.api))
                .basic_auth("guest", Some("guest"))
                .header("content-type", "application/json")
                .body(document.to_string())
                .send()
                .await
                .unwrap();
            let status = response.status();
            if !status.is_success() {
                println!(
                    "(the import into {vhost} was refused: {status} {})",
                    response.text().await.unwrap_or_default()
                );
            }
            status.is_success()
        })
    }
}
