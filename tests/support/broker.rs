//! A RabbitMQ node of its own (Debian's rabbitmq-server, management plugin on) on free
//! loopback ports, for tests that stop the broker while the shared one keeps serving the others.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{assert_exit, free_ports, god, next_id};

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
        let n = next_id();
        let host =
            String::from_utf8(Command::new("hostname").arg("-s").output().unwrap().stdout).unwrap();
        let node = format!("god-test-{}-{n}@{}", super::process_tag(), host.trim());
        let [amqp_port, management_port, dist_port] = free_ports();
        let dir = std::env::temp_dir().join(format!("god-test-node-{}-{n}", super::process_tag()));
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

    /// Where its management API answers, for god's --management-url.
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
