//! A container project of its own per test: its components.toml in a temporary directory and
//! every container of it removed on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use super::{god, next_id};

/// The table of one of god's bundled services (`gateway`, `relay`, `retry`) on the host
/// network, listening on `port` of loopback, healthy when `health_path` answers; `extra` holds
/// more keys.
pub fn builtin_component(builtin: &str, port: u16, health_path: &str, extra: &str) -> String {
    format!(
        "[components.{builtin}]\nbuiltin = \"{builtin}\"\ncommand = [\"/god\", \"{builtin}\", \"--listen\", \"127.0.0.1:{port}\"]\nnetwork_mode = \"host\"\n{extra}\n[components.{builtin}.healthcheck]\nhttp = \"http://127.0.0.1:{port}{health_path}\"\ninterval = \"500ms\"\nretries = 60\n\n"
    )
}

/// The image `scripts/broker-image` builds (RabbitMQ from Debian's packages), built once per
/// process when missing: 3.10, or 4.0 when `GOD_TEST_BROKER_IMAGE=4.0` (scripts/test's second
/// pass).
pub fn broker_image() -> &'static str {
    static BUILT: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/broker-image");
        let (tag, args) = match std::env::var("GOD_TEST_BROKER_IMAGE").as_deref() {
            Ok("4.0") => ("god-local/rabbitmq:4.0-management", vec!["4.0"]),
            _ => ("god-local/rabbitmq:3-management", vec![]),
        };
        assert!(
            Command::new(script).args(args).status().unwrap().success(),
            "scripts/broker-image failed"
        );
        tag
    })
}

/// The table of the stack's broker (`broker = true`, the [`broker_image`]) on `network`,
/// publishing AMQP on 127.0.0.1:`amqp` and its management API on 127.0.0.1:`management`,
/// healthy once it answers a ping; `extra` holds more keys.
pub fn broker_component(amqp: u16, management: u16, network: &str, extra: &str) -> String {
    format!(
        "[components.rabbitmq]\nimage = \"{}\"\nbroker = true\nports = [\"127.0.0.1:{amqp}:5672\", \"127.0.0.1:{management}:15672\"]\nnetworks = [\"{network}\"]\n{extra}\n[components.rabbitmq.healthcheck]\ntest = [\"CMD\", \"rabbitmq-diagnostics\", \"-q\", \"ping\"]\ninterval = \"1s\"\ntimeout = \"10s\"\nretries = 90\n\n",
        broker_image()
    )
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
            name: format!("godtest-{tag}-{}-{}", super::process_tag(), next_id()),
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
        self.operate(&[args, &["--only", "docker"]].concat())
    }

    /// Runs one of the operator's commands (`ps`, `logs`, `restart`, `down`) on this project.
    pub fn operate(&self, args: &[&str]) -> Output {
        god()
            .arg("--components")
            .arg(self.dir.path().join("components.toml"))
            .args(["--project", &self.name])
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs god on the broker and this project's containers, with `registry` and the broker
    /// given by `--amqp-url` only (god hands the URL it resolved to its bundled services).
    pub fn run_with_broker(&self, registry: &Path, amqp_url: &str, args: &[&str]) -> Output {
        god()
            .arg("--registry")
            .arg(registry)
            .arg("--components")
            .arg(self.dir.path().join("components.toml"))
            .args(["--project", &self.name, "--amqp-url", amqp_url])
            .args(["--management-url", &super::management()])
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs god on the broker and this project's containers, with `registry` and no broker URL:
    /// god finds the broker by components.toml.
    pub fn run_stack(&self, registry: &Path, args: &[&str]) -> Output {
        god()
            .arg("--registry")
            .arg(registry)
            .arg("--components")
            .arg(self.dir.path().join("components.toml"))
            .args(["--project", &self.name])
            .args(args)
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

/// Removes every container, then every network and volume, labelled as belonging to
/// `project`.
pub fn remove_project_containers(project: &str) {
    for (list, remove) in [
        (vec!["ps", "-aq"], vec!["rm", "-f"]),
        (vec!["network", "ls", "-q"], vec!["network", "rm"]),
        (vec!["volume", "ls", "-q"], vec!["volume", "rm", "-f"]),
    ] {
        let out = Command::new("docker")
            .args(&list)
            .args(["--filter", &format!("label=god.project={project}")])
            .output()
            .unwrap();
        let ids = String::from_utf8_lossy(&out.stdout);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let _ = Command::new("docker").args(&remove).args(&ids).output();
        }
    }
}

/// Runs `docker` with `args`; its standard output, trimmed, when it succeeds.
pub fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker").args(args).output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}
