//! A private vhost per test on the real broker: created on start, deleted on drop, so tests
//! run in parallel without seeing each other; AMQP and management helpers bound to it.

use std::path::Path;
use std::process::{Command, Output};

use lapin::options::{BasicGetOptions, BasicPublishOptions, BasicRejectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{Value, json};

use super::{DEFAULT_MANAGEMENT, amqp_node, encode, god, management, next_id};

/// A vhost of its own for one test.
pub struct TestVhost {
    pub name: String,
    /// Management API base URLs: the test's own requests use the first.
    management: Vec<String>,
    /// AMQP `host:port` of each node: the test's own connections use the first.
    amqp_nodes: Vec<String>,
    /// The node the test's own requests and connections use (0-based).
    own: usize,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl TestVhost {
    /// Creates `god-test-<tag>-<pid>-<n>` on the default node and grants guest everything on it.
    pub fn new(tag: &str) -> Self {
        Self::on_nodes(tag, vec![management()], vec![amqp_node()])
    }

    /// Creates the vhost on a broker of several nodes, given by their management URLs and
    /// AMQP `host:port`s; god is given all of them, in this order.
    pub fn on_nodes(tag: &str, management: Vec<String>, amqp_nodes: Vec<String>) -> Self {
        let name = format!("god-test-{tag}-{}-{}", super::process_tag(), next_id());
        let vhost = Self::handle(name, management, amqp_nodes);
        vhost.grant();
        vhost
    }

    /// Creates `god-test-<tag>` afresh on the default node (deleting what a previous run left):
    /// for the CLI transcripts, whose commands name their vhost.
    pub fn named(tag: &str) -> Self {
        let vhost = Self::handle(
            format!("god-test-{tag}"),
            vec![management()],
            vec![amqp_node()],
        );
        let _ = vhost.try_api("DELETE", &format!("vhosts/{}", vhost.enc()), None);
        vhost.grant();
        vhost
    }

    /// The fixture of a vhost, not created yet.
    fn handle(name: String, management: Vec<String>, amqp_nodes: Vec<String>) -> Self {
        Self {
            name,
            management,
            amqp_nodes,
            own: 0,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            http: reqwest::Client::new(),
        }
    }

    /// Creates the vhost and gives guest every permission on it.
    fn grant(&self) {
        self.api("PUT", &format!("vhosts/{}", self.enc()), Some(json!({})));
        self.grant_guest(".*");
    }

    /// Sets guest's permissions on the vhost: what `configure` matches (a regular expression),
    /// and every write and read.
    pub fn grant_guest(&self, configure: &str) {
        self.api(
            "PUT",
            &format!("permissions/{}/guest", self.enc()),
            Some(json!({"configure": configure, "write": ".*", "read": ".*"})),
        );
    }

    fn enc(&self) -> String {
        encode(&self.name)
    }

    /// The AMQP URL of this vhost on the node the test uses.
    pub fn amqp_url(&self) -> String {
        self.amqp_url_at(self.own)
    }

    /// The AMQP URL of this vhost on node `i` (0-based).
    pub fn amqp_url_at(&self, i: usize) -> String {
        format!("amqp://guest:guest@{}/{}", self.amqp_nodes[i], self.enc())
    }

    /// The AMQP URLs of this vhost on every node, comma-separated, as god takes them.
    pub fn amqp_urls(&self) -> String {
        (0..self.amqp_nodes.len())
            .map(|i| self.amqp_url_at(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The management URLs, comma-separated, as god takes them.
    pub fn management_urls(&self) -> String {
        self.management.join(",")
    }

    /// Uses node `i` (0-based) for the test's own requests and connections from now on
    /// (when the first node is stopped); god is still given every node, in their order.
    pub fn use_node(&mut self, i: usize) {
        self.own = i;
    }

    /// Calls the management API; panics on an error status.
    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_api(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Calls the management API; returns the status and body on an error status.
    pub fn try_api(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}/api/{path}", self.management[self.own]);
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

    /// Whether a queue exists, with its definition. Only the broker's 404 means it does not:
    /// any other failure (a management API slow to answer on a loaded machine) is asked again,
    /// and after a few tries is the test's failure, never taken for a missing queue.
    pub fn queue(&self, name: &str) -> Option<Value> {
        let path = format!("queues/{}/{}", self.enc(), encode(name));
        let mut failure = String::new();
        for _ in 0..5 {
            match self.try_api("GET", &path, None) {
                Ok(queue) => return Some(queue),
                Err(e) if e.starts_with("404") => return None,
                Err(e) => failure = e,
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        panic!("GET {path} kept failing: {failure}")
    }

    /// The definition of god's policy that names a queue (a grouped `god.queues.*` one): what
    /// god gives the queue beyond its declaration; Null when there is none.
    pub fn god_policy(&self, queue: &str) -> Value {
        let policies = self.api("GET", &format!("policies/{}", self.enc()), None);
        policies
            .as_array()
            .unwrap()
            .iter()
            .find(|p| {
                let policy: god_core::model::PolicySpec = serde_json::from_value(json!({
                    "name": p["name"], "pattern": p["pattern"], "apply_to": p["apply-to"],
                    "priority": p["priority"], "definition": p["definition"],
                }))
                .unwrap();
                god_core::model::wiring::group_members(&policy)
                    .is_some_and(|members| members.iter().any(|m| m == queue))
            })
            .map(|p| p["definition"].clone())
            .unwrap_or(Value::Null)
    }

    /// The queue god's dead-letters exchange leads the dead letters of `queue` to.
    pub fn dead_letter_target(&self, queue: &str) -> Option<String> {
        let bindings = self.api("GET", &format!("bindings/{}", self.enc()), None);
        bindings.as_array().unwrap().iter().find_map(|b| {
            (b["source"] == "god.dead-letters" && b["arguments"]["x-first-death-queue"] == queue)
                .then(|| b["destination"].as_str().unwrap().to_string())
        })
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

    /// Gets every message of a queue on one connection (acknowledged), in order.
    pub fn drain(&self, queue: &str) -> Vec<String> {
        self.amqp(|ch| async move {
            let mut messages = Vec::new();
            while let Some(msg) = ch
                .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
            {
                messages.push(String::from_utf8_lossy(&msg.delivery.data).into_owned());
            }
            messages
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

    /// The major version of the broker's RabbitMQ (3 or 4).
    pub fn broker_major(&self) -> u32 {
        let overview = self.api("GET", "overview", None);
        let version = overview["rabbitmq_version"].as_str().unwrap_or_default();
        version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
    }

    /// A `god` command bound to this vhost (on every node) and to nothing from the environment.
    pub fn god(&self) -> Command {
        let mut cmd = god();
        cmd.env("RABBITMQ_URL", self.amqp_urls());
        if self.management != [DEFAULT_MANAGEMENT] {
            cmd.env("RABBITMQ_MANAGEMENT_URL", self.management_urls());
        }
        cmd
    }

    /// Applies `registry`, saves a `--prune` plan of `next` in `dir`, lets `meanwhile` change the
    /// broker, then applies the saved plan: returns that apply's output.
    pub fn apply_saved_prune_after(
        &self,
        registry: &Path,
        next: &Path,
        dir: &Path,
        meanwhile: impl FnOnce(),
    ) -> Output {
        let applied = self.run(registry, &["apply", "--auto-approve"]);
        assert!(applied.status.success(), "{applied:?}");
        let saved = dir.join("prune.json");
        let planned = self.run(next, &["plan", "--prune", "--out", saved.to_str().unwrap()]);
        assert!(planned.status.success(), "{planned:?}");
        meanwhile();
        self.god()
            .args(["apply", saved.to_str().unwrap()])
            .output()
            .unwrap()
    }

    /// Runs god with a registry and arguments, given node `i` (0-based) alone.
    pub fn run_on_node(&self, i: usize, registry: &Path, args: &[&str]) -> Output {
        self.god()
            .env("RABBITMQ_URL", self.amqp_url_at(i))
            .env("RABBITMQ_MANAGEMENT_URL", &self.management[i])
            .arg("--registry")
            .arg(registry)
            .args(args)
            .output()
            .unwrap()
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
