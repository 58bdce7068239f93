//! Test support: a private vhost per test on the real broker (created on start, deleted on
//! drop, so tests run in parallel without seeing each other), and a `god` command bound to it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use lapin::options::{BasicGetOptions, BasicPublishOptions, BasicRejectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{Value, json};

/// The management API of the broker `scripts/bootstrap` starts.
pub const MANAGEMENT: &str = "http://127.0.0.1:15672";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A vhost of its own for one test.
pub struct TestVhost {
    pub name: String,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl TestVhost {
    /// Creates `god-test-<tag>-<pid>-<n>` and grants guest everything on it.
    pub fn new(tag: &str) -> Self {
        let name = format!(
            "god-test-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let vhost = Self {
            name,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            http: reqwest::Client::new(),
        };
        vhost.api("PUT", &format!("vhosts/{}", vhost.enc()), Some(json!({})));
        vhost.api(
            "PUT",
            &format!("permissions/{}/guest", vhost.enc()),
            Some(json!({"configure": ".*", "write": ".*", "read": ".*"})),
        );
        vhost
    }

    fn enc(&self) -> String {
        encode(&self.name)
    }

    /// The AMQP URL of this vhost.
    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:5672/{}", self.enc())
    }

    /// Calls the management API; panics on an error status.
    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_api(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Calls the management API; returns the status and body on an error status.
    pub fn try_api(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{MANAGEMENT}/api/{path}");
        self.rt.block_on(async {
            let mut req = self
                .http
                .request(method.parse().unwrap(), url)
                .basic_auth("guest", Some("guest"));
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req.send().await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            if !status.is_success() {
                return Err(format!("{status}: {text}"));
            }
            Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
        })
    }

    /// Declares a queue through the management API.
    pub fn put_queue(&self, name: &str, arguments: Value) {
        self.api(
            "PUT",
            &format!("queues/{}/{}", self.enc(), encode(name)),
            Some(json!({"durable": true, "auto_delete": false, "arguments": arguments})),
        );
    }

    /// Whether a queue exists, with its definition.
    pub fn queue(&self, name: &str) -> Option<Value> {
        self.try_api(
            "GET",
            &format!("queues/{}/{}", self.enc(), encode(name)),
            None,
        )
        .ok()
    }

    /// The bindings of the vhost as (source, destination, routing key).
    pub fn bindings(&self) -> Vec<(String, String, String)> {
        let all = self.api("GET", &format!("bindings/{}", self.enc()), None);
        all.as_array()
            .unwrap()
            .iter()
            .filter(|b| b["source"] != "")
            .map(|b| {
                (
                    b["source"].as_str().unwrap().to_string(),
                    b["destination"].as_str().unwrap().to_string(),
                    b["routing_key"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// Runs an async block against this vhost over AMQP.
    pub fn amqp<F, T>(&self, f: impl FnOnce(lapin::Channel) -> F) -> T
    where
        F: std::future::Future<Output = T>,
    {
        self.rt.block_on(async {
            let conn = Connection::connect(&self.amqp_url(), ConnectionProperties::default())
                .await
                .unwrap();
            let channel = conn.create_channel().await.unwrap();
            let out = f(channel).await;
            let _ = conn.close(200, "done".into()).await;
            out
        })
    }

    /// Publishes a persistent message (with confirms); returns once the broker has it.
    pub fn publish(&self, exchange: &str, routing_key: &str, body: &str) {
        self.amqp(|ch| async move {
            ch.confirm_select(Default::default()).await.unwrap();
            ch.basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        })
    }

    /// Gets one message from a queue and acknowledges it; None when the queue is empty.
    pub fn get(&self, queue: &str) -> Option<String> {
        self.get_with_properties(queue).map(|(body, _)| body)
    }

    /// Gets one message with its AMQP properties and acknowledges it.
    pub fn get_with_properties(&self, queue: &str) -> Option<(String, BasicProperties)> {
        self.amqp(|ch| async move {
            let msg = ch
                .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()?;
            let body = String::from_utf8_lossy(&msg.delivery.data).into_owned();
            Some((body, msg.delivery.properties))
        })
    }

    /// Publishes `n` persistent messages on one channel, then waits for all the confirms.
    pub fn publish_many(&self, exchange: &str, routing_key: &str, body: &[u8], n: usize) {
        self.amqp(|ch| async move {
            ch.confirm_select(Default::default()).await.unwrap();
            let mut confirms = Vec::with_capacity(n);
            for _ in 0..n {
                confirms.push(
                    ch.basic_publish(
                        exchange.into(),
                        routing_key.into(),
                        BasicPublishOptions::default(),
                        body,
                        BasicProperties::default().with_delivery_mode(2),
                    )
                    .await
                    .unwrap(),
                );
            }
            for c in confirms {
                c.await.unwrap();
            }
        })
    }

    /// Gets one message from a queue, waiting up to 10 s for it (dead-lettering is asynchronous).
    pub fn await_message(&self, queue: &str) -> Option<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Some(m) = self.get(queue) {
                return Some(m);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Gets one message from a queue and rejects it without requeueing (a consumer giving up).
    pub fn reject_one(&self, queue: &str) -> bool {
        self.amqp(|ch| async move {
            match ch
                .basic_get(queue.into(), BasicGetOptions::default())
                .await
                .unwrap()
            {
                Some(msg) => {
                    msg.delivery
                        .reject(BasicRejectOptions { requeue: false })
                        .await
                        .unwrap();
                    // A reject has no reply: a synchronous call on the same channel proves the
                    // broker has processed it before the connection closes (an unprocessed
                    // reject would be undone by the close, requeueing the message).
                    ch.basic_qos(1, Default::default()).await.unwrap();
                    true
                }
                None => false,
            }
        })
    }

    /// Exact depth of a queue, through a passive declare (no statistics delay).
    pub fn depth(&self, queue: &str) -> u32 {
        self.amqp(|ch| async move {
            let q = ch
                .queue_declare(
                    queue.into(),
                    lapin::options::QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .unwrap();
            q.message_count()
        })
    }

    /// Waits until the management API's statistics show at least `n` messages in a queue.
    pub fn await_stats(&self, queue: &str, n: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if self
                .queue(queue)
                .is_some_and(|q| q["messages"].as_u64().unwrap_or(0) >= n)
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("the statistics of {queue} never showed {n} messages");
    }

    /// A `god` command bound to this vhost and to nothing from the environment.
    pub fn god(&self) -> Command {
        let mut cmd = god();
        cmd.env("RABBITMQ_URL", self.amqp_url());
        cmd
    }

    /// Runs god with a registry and arguments.
    pub fn run(&self, registry: &Path, args: &[&str]) -> Output {
        self.god()
            .arg("--registry")
            .arg(registry)
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        let _ = self.try_api("DELETE", &format!("vhosts/{}", self.enc()), None);
    }
}

/// The god binary with a clean environment.
pub fn god() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_god"));
    for var in [
        "RABBITMQ_URL",
        "RABBITMQ_MANAGEMENT_URL",
        "GOD_REGISTRY",
        "GOD_COMPONENTS",
        "GOD_PROJECT",
        "DOCKER_HOST",
    ] {
        cmd.env_remove(var);
    }
    // Away from the repository, whose components.toml would add its containers to every run.
    cmd.current_dir(std::env::temp_dir());
    cmd.stdin(std::process::Stdio::null());
    cmd
}

/// Runs `god validate` on a registry file.
pub fn validate(registry: &Path) -> Output {
    god()
        .arg("--registry")
        .arg(registry)
        .arg("validate")
        .output()
        .unwrap()
}

/// Percent-encodes a path segment.
pub fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A registry file in a temporary directory.
pub fn registry(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.yaml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// A registry with the usual header (exchange `bus`) and the given services, written
/// unindented (`svc:\n  queue_name: q`): they are indented under `services:` here.
pub fn registry_with(services: &str) -> (tempfile::TempDir, PathBuf) {
    let indented: String = services.lines().map(|l| format!("  {l}\n")).collect();
    registry(&format!(
        "version: \"1.0\"\nexchange:\n  name: bus\n  type: topic\n  durable: true\nservices:\n{indented}"
    ))
}

/// One of the upstream registries in ../shared/upstream.
pub fn upstream(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/upstream")
        .join(name)
}

/// Asserts that a `plan --json` document follows schemas/plan.schema.json.
#[track_caller]
pub fn assert_plan_schema(plan: &Value) {
    assert_matches_schema(
        plan,
        include_str!("../../schemas/plan.schema.json"),
        "plan --json",
    );
}

/// Asserts that a document follows a JSON schema (given as text); `what` names the document.
#[track_caller]
pub fn assert_matches_schema(document: &Value, schema: &str, what: &str) {
    let schema: Value = serde_json::from_str(schema).expect("the schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(document)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match its schema: {errors:?}"
    );
}

/// stdout and stderr together, for assertions.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts an exit code, printing the output when it differs.
#[track_caller]
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "unexpected exit; output:\n{}",
        text(out)
    );
}

/// A container project of its own for one test: a components.toml in a temporary directory, a
/// unique project label, and every container of that project removed on drop.
pub struct TestProject {
    pub name: String,
    pub dir: tempfile::TempDir,
}

impl TestProject {
    /// A project named `godtest-<tag>-<pid>-<n>`; the test image is built if missing.
    pub fn new(tag: &str) -> Self {
        static IMAGE: std::sync::Once = std::sync::Once::new();
        IMAGE.call_once(|| {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test-image");
            assert!(
                Command::new(script).status().unwrap().success(),
                "scripts/test-image failed"
            );
        });
        Self {
            name: format!(
                "godtest-{tag}-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::SeqCst)
            ),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Writes components.toml.
    pub fn write(&self, components: &str) -> PathBuf {
        let path = self.dir.path().join("components.toml");
        std::fs::write(&path, components).unwrap();
        path
    }

    /// Runs god on the containers only, for this project.
    pub fn run(&self, args: &[&str]) -> Output {
        god()
            .arg("--components")
            .arg(self.dir.path().join("components.toml"))
            .args(["--project", &self.name])
            .args(args)
            .args(["--only", "docker"])
            .output()
            .unwrap()
    }

    /// `docker inspect` of one of this project's containers, when it exists.
    pub fn inspect(&self, component: &str) -> Option<Value> {
        let out = Command::new("docker")
            .args(["inspect", &format!("{}-{component}", self.name)])
            .output()
            .unwrap();
        let all: Value = serde_json::from_slice(&out.stdout).ok()?;
        all.as_array()?.first().cloned()
    }
}

impl Drop for TestProject {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(god::apply::lock::project_lock_path(&self.name));
        remove_project_containers(&self.name);
    }
}

/// Removes every container labelled as belonging to `project`.
pub fn remove_project_containers(project: &str) {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=god.project={project}"),
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

/// A free TCP port on the loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A bundled service (`god gateway`, `god relay`) running in the background on a free
/// loopback port, killed on drop.
pub struct ServiceProcess {
    pub url: String,
    pub port: u16,
    child: std::process::Child,
    log: tempfile::NamedTempFile,
}

/// The gateway, as the gateway tests call it.
pub type GatewayProcess = ServiceProcess;

impl ServiceProcess {
    /// Starts a gateway publishing to `exchange` through `amqp_url`, with extra environment.
    pub fn start(amqp_url: &str, exchange: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn("gateway", amqp_url, exchange, &[], env)
    }

    /// Starts a relay reading `exchange` through `amqp_url`, with extra arguments.
    pub fn relay(amqp_url: &str, exchange: &str, args: &[&str]) -> Self {
        Self::spawn("relay", amqp_url, exchange, args, &[])
    }

    fn spawn(
        service: &str,
        amqp_url: &str,
        exchange: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = god()
            .args([service, "--listen", &listen, "--exchange", exchange])
            .args(args)
            .env("RABBITMQ_URL", amqp_url)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        Self {
            url: format!("http://{listen}"),
            port,
            child,
            log,
        }
    }

    /// What the service wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Waits until `GET path` answers `status`.
    pub fn await_status(&self, path: &str, status: u16) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if self.request("GET", path, None, &[]).0 == status {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("{path} never answered {status}");
    }

    /// Sends a request with curl; returns the status, the headers and the body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        headers: &[&str],
    ) -> (u16, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-X", method, "-D", "-", "-o"])
            .arg(dir.path().join("body"))
            .args(["-w", "%{http_code}"]);
        for h in headers {
            cmd.args(["-H", h]);
        }
        if let Some(b) = body {
            let file = dir.path().join("request");
            std::fs::write(&file, b).unwrap();
            cmd.args(["-H", "content-type: application/json", "--data-binary"])
                .arg(format!("@{}", file.display()));
        }
        let out = cmd.arg(format!("{}{path}", self.url)).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let status = text
            .get(text.len().saturating_sub(3)..)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = std::fs::read_to_string(dir.path().join("body")).unwrap_or_default();
        (status, text, body)
    }

    /// CPU time the process has used so far (user + system), from /proc.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(self.child.id())
    }
}

/// CPU time process `pid` has used so far (user + system), from /proc.
pub fn cpu_seconds_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses): utime and stime are the
    // 12th and 13th of them, in clock ticks (100 per second on Linux).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A RabbitMQ node of its own (Debian's rabbitmq-server, management plugin on), on free
/// loopback ports, for tests that stop the broker: the shared one keeps serving the others.
pub struct DedicatedBroker {
    pub node: String,
    pub amqp_port: u16,
    pub management_port: u16,
    dist_port: u16,
    dir: PathBuf,
    process: std::process::Child,
    running: bool,
}

impl DedicatedBroker {
    /// Starts a node and waits until its management API answers.
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// Starts a node with extra lines in its rabbitmq.conf.
    pub fn start_with(extra_config: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let host =
            String::from_utf8(Command::new("hostname").arg("-s").output().unwrap().stdout).unwrap();
        let node = format!("god-test-{}-{n}@{}", std::process::id(), host.trim());
        let [amqp_port, management_port, dist_port] = free_ports();
        let dir = std::env::temp_dir().join(format!("god-test-node-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.default = 127.0.0.1:{amqp_port}\nmanagement.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {management_port}\n{extra_config}"),
        )
        .unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[rabbitmq_management].").unwrap();
        assert!(
            Command::new("chown")
                .args(["-R", "rabbitmq:rabbitmq"])
                .arg(&dir)
                .status()
                .unwrap()
                .success()
        );
        let process = Self::launch(&node, dist_port, &dir);
        let broker = Self {
            node,
            amqp_port,
            management_port,
            dist_port,
            dir,
            process,
            running: true,
        };
        broker.await_ready();
        broker
    }

    /// Starts the node's server process (its data directory survives a stop).
    fn launch(node: &str, dist_port: u16, dir: &Path) -> std::process::Child {
        let d = dir.display();
        // Debian's wrapper drops RABBITMQ_* variables when it switches to the rabbitmq user,
        // so the server script is started as that user directly.
        let script = format!(
            "cd /var/lib/rabbitmq && exec env RABBITMQ_NODENAME={node} RABBITMQ_DIST_PORT={dist_port} \
             RABBITMQ_MNESIA_BASE={d}/mnesia RABBITMQ_LOG_BASE={d}/log RABBITMQ_PID_FILE={d}/pid \
             RABBITMQ_CONFIG_FILE={d}/rabbitmq.conf RABBITMQ_ENABLED_PLUGINS_FILE={d}/enabled_plugins \
             /usr/lib/rabbitmq/bin/rabbitmq-server"
        );
        Command::new("setsid")
            .args(["su", "rabbitmq", "-s", "/bin/sh", "-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(dir.join("out.txt")).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    /// Starts the node again after [`Self::stop`], with its data, and waits until it answers.
    pub fn restart(&mut self) {
        let _ = self.process.wait();
        self.process = Self::launch(&self.node, self.dist_port, &self.dir);
        self.running = true;
        self.await_ready();
    }

    fn await_ready(&self) {
        let url = format!("http://127.0.0.1:{}/api/overview", self.management_port);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while std::time::Instant::now() < deadline {
            let ok = Command::new("curl")
                .args(["-sf", "-o", "/dev/null", "-u", "guest:guest", &url])
                .status()
                .unwrap()
                .success();
            if ok {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!(
            "the dedicated node {} did not start: {}",
            self.node,
            std::fs::read_to_string(self.dir.join("out.txt")).unwrap_or_default()
        );
    }

    /// The management URL.
    pub fn management_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.management_port)
    }

    /// The AMQP URL of its default vhost.
    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.amqp_port)
    }

    /// Applies a registry to the node's default vhost; asserts that it succeeded.
    pub fn apply(&self, registry: &Path) {
        let out = god()
            .arg("--registry")
            .arg(registry)
            .args([
                "apply",
                "--auto-approve",
                "--amqp-url",
                &self.amqp_url(),
                "--management-url",
                &self.management_url(),
            ])
            .output()
            .unwrap();
        assert_exit(&out, 0);
    }

    /// Stops the node at once, as a crash or an out-of-memory kill would: its Erlang VM is
    /// killed, every connection drops, and new ones are refused.
    pub fn stop(&mut self) {
        if self.running {
            let pid = std::fs::read_to_string(self.dir.join("pid")).unwrap_or_default();
            let _ = Command::new("kill").args(["-9", pid.trim()]).status();
            self.running = false;
        }
    }
}

impl Drop for DedicatedBroker {
    fn drop(&mut self) {
        self.stop();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three distinct free TCP ports on the loopback.
fn free_ports() -> [u16; 3] {
    let listeners: Vec<std::net::TcpListener> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    [ports[0], ports[1], ports[2]]
}
