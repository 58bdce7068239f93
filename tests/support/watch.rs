//! `god watch` as a process of a test ([`WatchProcess`]): its JSON lines collected as they come,
//! its health and metrics on a free loopback port, stopped with SIGTERM.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{free_port, http_request};

/// A running `god watch`.
pub struct WatchProcess {
    child: Child,
    events: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
    /// The port of its /health and /metrics.
    pub port: u16,
}

impl WatchProcess {
    /// Runs `god watch` as `command` says (`god … watch --mode heal …`), serving its health
    /// on a free port.
    pub fn spawn(mut command: Command) -> Self {
        let port = free_port();
        let mut child = command
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let lines = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let event = serde_json::from_str(&line).unwrap_or_else(|e| {
                    panic!("god watch wrote a line that is not JSON ({e}): {line}")
                });
                lines.lock().unwrap().push(event);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let text = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                text.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Self {
            child,
            events,
            stderr,
            port,
        }
    }

    /// Every event written so far.
    pub fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    /// Waits up to `within` for an event `wanted` accepts, written after the first `skip`
    /// events; panics with everything written when none comes.
    pub fn await_event(
        &self,
        skip: usize,
        within: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            if let Some(found) = self.events().into_iter().skip(skip).find(|e| wanted(e)) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no such event within {within:?}; events: {:#?}\nstderr: {}",
                self.events(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until its first plan is done (its health no longer says "starting").
    pub fn await_first_tick(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.health().1["status"]
            .as_str()
            .is_none_or(|s| s == "starting")
        {
            assert!(
                Instant::now() < deadline,
                "no first tick: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What it wrote on stderr.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// `GET /health`: status code and body.
    pub fn health(&self) -> (u16, Value) {
        let (status, _, body) = http_request(
            "GET",
            &format!("http://127.0.0.1:{}/health", self.port),
            None,
            &[],
        );
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// `GET /metrics`: the exposition.
    pub fn metrics(&self) -> String {
        http_request(
            "GET",
            &format!("http://127.0.0.1:{}/metrics", self.port),
            None,
            &[],
        )
        .2
    }

    /// Sends SIGTERM and waits up to 30 s for the process to end.
    pub fn terminate(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "god watch did not stop on SIGTERM: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for WatchProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `event` is a `god.drift.<kind>` event naming the change `id`.
pub fn names_change(event: &Value, kind: &str, id: &str) -> bool {
    event["event"] == format!("god.drift.{kind}")
        && event["changes"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["id"] == id))
}
