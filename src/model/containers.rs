//! Containers as god wants them and finds them. A container's configuration is hashed into a
//! label, so a changed configuration is seen without reading the engine's defaults back.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Label naming the project a container belongs to.
pub const PROJECT_LABEL: &str = "god.project";
/// Label naming the component a container runs.
pub const COMPONENT_LABEL: &str = "god.component";
/// Label holding the hash of the desired configuration the container was created from.
pub const CONFIG_HASH_LABEL: &str = "god.config-hash";
/// Label holding that configuration, secrets masked, for readable diffs.
pub const CONFIG_LABEL: &str = "god.config";

/// Where an environment value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EnvSource {
    /// Written in components.toml.
    Value(String),
    /// Read from god's own environment when the container is created; never printed.
    Secret {
        /// The variable holding it.
        from_env: String,
    },
}

/// A published port: `host_ip:host_port:container_port/protocol`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortSpec {
    /// Host address (127.0.0.1 unless written).
    pub host_ip: String,
    /// Host port (None: the engine picks one).
    pub host_port: Option<u16>,
    /// Container port.
    pub container_port: u16,
    /// tcp or udp.
    pub protocol: String,
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.host_port.map(|p| p.to_string()).unwrap_or_default();
        write!(
            f,
            "{}:{host}:{}/{}",
            self.host_ip, self.container_port, self.protocol
        )
    }
}

/// How god decides a container is healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthProbe {
    /// The engine runs this command in the container (Docker's HEALTHCHECK).
    Command(Vec<String>),
    /// god requests this URL from the host until it answers 2xx.
    Http(String),
}

/// A health check with its timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthSpec {
    /// What is checked.
    pub probe: HealthProbe,
    /// Between two checks, in milliseconds.
    pub interval_ms: u64,
    /// One check's limit, in milliseconds.
    pub timeout_ms: u64,
    /// Failures in a row before unhealthy.
    pub retries: u32,
    /// Grace period after start, in milliseconds.
    pub start_period_ms: u64,
}

/// A local build context: the image is built from it when missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildSpec {
    /// The context directory (absolute).
    pub context: String,
    /// The Dockerfile, relative to the context.
    pub dockerfile: String,
}

/// One container of the platform, as components.toml describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// `<project>-<component>`.
    pub name: String,
    /// The component's key in components.toml.
    pub component: String,
    /// The project label.
    pub project: String,
    /// Image reference (for a build: a tag derived from the context's content).
    pub image: String,
    /// Where the image is built from, when it is built locally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildSpec>,
    /// One of god's own services (`gateway`, `relay`): the image is god's binary alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<String>,
    /// Command (empty: the image's).
    pub command: Vec<String>,
    /// Environment.
    pub env: BTreeMap<String, EnvSource>,
    /// `host`, `bridge`, or a network name.
    pub network_mode: Option<String>,
    /// Published ports.
    pub ports: Vec<PortSpec>,
    /// Mounts (`source:target[:ro]`, bind sources made absolute).
    pub volumes: Vec<String>,
    /// Restart policy.
    pub restart: String,
    /// Components that must be healthy first.
    pub depends_on: Vec<String>,
    /// User labels.
    pub labels: BTreeMap<String, String>,
    /// Health check.
    pub healthcheck: Option<HealthSpec>,
    /// User to run as.
    pub user: Option<String>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// Hash of all of the above, secret values included (so a rotated secret recreates).
    pub config_hash: String,
}

impl ContainerSpec {
    /// The configuration as `key: value` lines, secrets masked: what the `god.config` label
    /// holds and what recreate diffs compare.
    pub fn config_lines(&self) -> String {
        let mut v = serde_json::to_value(self).expect("container specs serialise");
        if let Some(map) = v.as_object_mut() {
            map.remove("config_hash");
            map.remove("name");
            map.remove("project");
        }
        let mut out = String::new();
        flatten("", &v, &mut out);
        out
    }

    /// Computes the configuration hash, resolving secrets with `lookup`.
    pub fn compute_hash(&self, lookup: impl Fn(&str) -> Option<String>) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.config_lines().as_bytes());
        for (key, source) in &self.env {
            if let EnvSource::Secret { from_env } = source {
                hasher.update(key.as_bytes());
                hasher.update([0]);
                hasher.update(lookup(from_env).unwrap_or_default().as_bytes());
                hasher.update([0]);
            }
        }
        hex::encode(&hasher.finalize()[..12])
    }
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if let Value::Object(inner) = v
                    && inner.contains_key("from_env")
                {
                    out.push_str(&format!(
                        "{key}: *** (secret, from ${})\n",
                        inner["from_env"].as_str().unwrap_or_default()
                    ));
                    continue;
                }
                flatten(&key, v, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), item, out);
            }
        }
        Value::Null => {}
        other => out.push_str(&format!("{prefix}: {other}\n")),
    }
}

/// A container god found, by its labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedContainer {
    /// Container name (without the leading slash).
    pub name: String,
    /// Engine id.
    pub id: String,
    /// The `god.component` label (None: not god's).
    pub component: Option<String>,
    /// The `god.config-hash` label.
    pub config_hash: Option<String>,
    /// The `god.config` label (masked configuration).
    pub config: Option<String>,
    /// Running (as opposed to created, exited, paused).
    pub running: bool,
}

/// The containers of one project as found on the engine, plus any other container whose name
/// god would use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedContainers {
    /// The project.
    pub project: String,
    /// God's containers of this project, by component.
    pub managed: BTreeMap<String, ObservedContainer>,
    /// Containers without god's labels, by name.
    pub foreign_names: BTreeMap<String, String>,
}
