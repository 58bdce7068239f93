//! A consumer of the platform's own clients (FastStream, aio-pika, pika, from the .venv that
//! `scripts/bootstrap` makes), running tests/clients/consumer.py or a consumer `god new
//! service` wrote, in the background; its output lines are read as they come, and it is
//! killed on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// The repository's .venv, where `scripts/bootstrap` installs the platform's clients.
pub fn venv() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv");
    assert!(
        venv.join("bin/python").is_file(),
        "no {}: run scripts/bootstrap, which installs the platform's Python clients there",
        venv.display()
    );
    venv
}

/// A consumer process and the lines it printed.
pub struct ConsumerProcess {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl ConsumerProcess {
    /// Starts tests/clients/consumer.py with `client` (faststream runs through `faststream
    /// run`, as the platform runs it), on `queue` of `exchange` bound by `key`, declaring the
    /// `arguments` given (a JSON object).
    pub fn client(
        client: &str,
        amqp_url: &str,
        exchange: &str,
        queue: &str,
        key: &str,
        arguments: &str,
    ) -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients");
        let mut command = match client {
            "faststream" => Self::faststream(&dir),
            _ => Self::python(&dir, "consumer.py"),
        };
        command
            .env("RABBITMQ_URL", amqp_url)
            .env("EXCHANGE", exchange)
            .env("QUEUE", queue)
            .env("ROUTING_KEY", key)
            .env("ARGUMENTS", arguments)
            .env("CLIENT", client);
        Self::spawn(command)
    }

    /// `faststream run consumer:app` in `dir`.
    pub fn faststream(dir: &Path) -> Command {
        let mut command = Command::new(venv().join("bin/faststream"));
        command.args(["run", "consumer:app"]).current_dir(dir);
        command
    }

    /// `python SCRIPT` in `dir`, with the .venv's Python.
    pub fn python(dir: &Path, script: &str) -> Command {
        let mut command = Command::new(venv().join("bin/python"));
        command.arg(script).current_dir(dir);
        command
    }

    /// Starts `command` (stdout and stderr read line by line).
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .env("PYTHONUNBUFFERED", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (send, lines) = channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let send = send.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if send.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits up to `limit` for a line containing `text`; panics with everything it printed
    /// when none comes (or the process ends first).
    pub fn await_line(&mut self, text: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        if self.seen.iter().any(|l| l.contains(text)) {
            return;
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(text);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => panic!(
                    "no line with {text:?} within {limit:?}; the consumer printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

impl Drop for ConsumerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
