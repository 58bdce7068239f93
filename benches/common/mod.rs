//! What the benchmarks share: god's binary, free loopback ports, fresh vhosts, and bundled
//! services run in the background. Each benchmark uses a part of it.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};

/// The management API of the broker `scripts/bootstrap` starts.
pub const MANAGEMENT: &str = "http://127.0.0.1:15672/api";

/// The god binary under test, with no registry or components from the environment.
pub fn god() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_god"));
    cmd.env_remove("GOD_REGISTRY")
        .env_remove("GOD_COMPONENTS")
        .current_dir(std::env::temp_dir());
    cmd
}

/// A free TCP port on the loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Deletes `vhost` if it exists, creates it, and grants guest everything on it.
pub async fn fresh_vhost(http: &reqwest::Client, vhost: &str) {
    delete_vhost(http, vhost).await;
    let auth = |r: reqwest::RequestBuilder| r.basic_auth("guest", Some("guest"));
    auth(http.put(format!("{MANAGEMENT}/vhosts/{vhost}")))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    auth(http.put(format!("{MANAGEMENT}/permissions/{vhost}/guest")))
        .json(&serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"}))
        .send()
        .await
        .unwrap();
}

/// Deletes `vhost` (a missing one is fine).
pub async fn delete_vhost(http: &reqwest::Client, vhost: &str) {
    let _ = http
        .delete(format!("{MANAGEMENT}/vhosts/{vhost}"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await;
}

/// `god gateway` or `god relay` on a free loopback port, killed when dropped (so a failing
/// benchmark leaves no service behind).
pub struct Service {
    child: Child,
    /// Its base URL.
    pub url: String,
    /// Its port.
    pub port: u16,
}

impl Service {
    /// Starts `god <service>` on `exchange` through `amqp`.
    pub fn spawn(service: &str, amqp: &str, exchange: &str) -> Self {
        let port = free_port();
        let child = god()
            .args([
                service,
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--exchange",
                exchange,
            ])
            .env("RABBITMQ_URL", amqp)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            port,
        }
    }
}

impl Service {
    /// CPU time the process has used so far (user + system), from /proc.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
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
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
