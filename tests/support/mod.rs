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
        self.amqp(|ch| async move {
            let msg = ch
                .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()?;
            Some(String::from_utf8_lossy(&msg.delivery.data).into_owned())
        })
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
    for var in ["RABBITMQ_URL", "RABBITMQ_MANAGEMENT_URL", "GOD_REGISTRY"] {
        cmd.env_remove(var);
    }
    cmd.stdin(std::process::Stdio::null());
    cmd
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

/// A registry with the usual header and the given services block.
pub fn registry_with(services: &str) -> (tempfile::TempDir, PathBuf) {
    registry(&format!(
        "version: \"1.0\"\nexchange:\n  name: bus\n  type: topic\n  durable: true\nservices:\n{services}"
    ))
}

/// One of the upstream registries in ../shared/upstream.
pub fn upstream(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/upstream")
        .join(name)
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

/// A TCP proxy on 127.0.0.1 in front of a local port, that a test can cut: every open
/// connection is shut and new ones are refused, as when the broker goes away mid-operation.
pub struct Proxy {
    pub port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    streams: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Starts forwarding a free port to `target`.
    pub fn start(target: u16) -> Self {
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let streams = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (cut2, streams2) = (cut.clone(), streams.clone());
        let accept = std::thread::spawn(move || {
            for client in listener.incoming() {
                if cut2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let mut all = streams2.lock().unwrap();
                all.push(client.try_clone().unwrap());
                all.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self {
            port,
            cut,
            streams,
            accept: Some(accept),
        }
    }

    /// Shuts every connection and stops accepting new ones.
    pub fn cut(&mut self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.streams.lock().unwrap().iter() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}
