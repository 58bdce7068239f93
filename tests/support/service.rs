//! god's bundled services (`god gateway`, `god relay`, `god retry`) as background processes on free loopback
//! ports, and the CPU they use.

use std::process::Command;

use super::{free_port, god};

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
        Self::spawn("gateway", amqp_url, &["--exchange", exchange], env)
    }

    /// Starts a relay reading `exchange` through `amqp_url`, with extra arguments.
    pub fn relay(amqp_url: &str, exchange: &str, args: &[&str]) -> Self {
        let mut all = vec!["--exchange", exchange];
        all.extend_from_slice(args);
        Self::spawn("relay", amqp_url, &all, &[])
    }

    /// Starts a relay on the nodes `amqp_urls`, whose management API is at `management_urls`.
    pub fn relay_at(amqp_urls: &str, management_urls: &str, exchange: &str) -> Self {
        let env = [("RABBITMQ_MANAGEMENT_URL", management_urls)];
        Self::spawn("relay", amqp_urls, &["--exchange", exchange], &env)
    }

    /// Starts the retry mover for the services of `registry` with `retry`.
    pub fn retry(amqp_url: &str, registry: &std::path::Path) -> Self {
        let registry = registry.to_str().unwrap();
        Self::spawn("retry", amqp_url, &["--registry", registry], &[])
    }

    /// Kills the process (SIGKILL) and waits until it is gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn spawn(service: &str, amqp_url: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = god()
            .args([service, "--listen", &listen])
            .args(args)
            .env("RABBITMQ_URL", amqp_url)
            .env("RABBITMQ_MANAGEMENT_URL", super::management())
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
        panic!("{path} never answered {status}; stderr:\n{}", self.stderr());
    }

    /// Sends a request with curl; returns the status, the headers and the body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        headers: &[&str],
    ) -> (u16, String, String) {
        http_request(method, &format!("{}{path}", self.url), body, headers)
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

/// Sends a request to `url` with curl; returns the status, the headers and the body.
pub fn http_request(
    method: &str,
    url: &str,
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
    let out = cmd.arg(url).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let status = text
        .get(text.len().saturating_sub(3)..)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = std::fs::read_to_string(dir.path().join("body")).unwrap_or_default();
    (status, text, body)
}

/// Posts `body` as an event of `event_type` to a gateway on the loopback `port`; its status.
pub fn post_event(port: u16, event_type: &str, body: &str) -> u16 {
    let url = format!("http://127.0.0.1:{port}/events/{event_type}");
    http_request("POST", &url, Some(body.as_bytes()), &[]).0
}
