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
/// Label naming the components.toml key of a network god created.
pub const NETWORK_LABEL: &str = "god.network";
/// Label naming the components.toml key of a volume god created.
pub const VOLUME_LABEL: &str = "god.volume";

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
        /// The value with its password masked, when it is a URL (so a plan can say where it
        /// points); None for other secrets, which are never shown at all.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shown: Option<String>,
    },
    /// The broker URL god itself resolved (`--amqp-url`, `RABBITMQ_URL` or the default): what
    /// god's bundled services are given unless their component sets it.
    BrokerUrl {
        /// The URL with its password masked.
        broker_url: String,
    },
    /// A value interpolating variables of god's environment as Compose does
    /// (`amqp://${USER}:${PASS}@rabbitmq:5672/`), one of them secret: shown as written,
    /// interpolated when the container is created.
    Template {
        /// The value as written.
        template: String,
    },
}

/// Words in a variable's name that make its value a secret (never shown).
pub const SECRET_WORDS: [&str; 5] = ["PASS", "SECRET", "TOKEN", "KEY", "CREDENTIAL"];

/// Whether a variable's name says it holds a secret (`RABBITMQ_PASS`, `API_TOKEN`).
pub fn looks_secret(variable: &str) -> bool {
    let upper = variable.to_uppercase();
    SECRET_WORDS.iter().any(|w| upper.contains(w))
}

/// Interpolates a value as Compose does: `${VAR}` and `$VAR` (an error when unset),
/// `${VAR:-default}` (default when unset or empty), `${VAR-default}` (when unset),
/// `${VAR:?message}` / `${VAR?message}` (an error with that message), `$$` for `$`.
/// Returns the value and the variables it read.
pub fn interpolate(
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Vec<String>), String> {
    let mut out = String::new();
    let mut read = Vec::new();
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(more) = after.strip_prefix('$') {
            out.push('$');
            rest = more;
            continue;
        }
        let (expression, next) = match after.strip_prefix('{') {
            Some(braced) => {
                let end = braced
                    .find('}')
                    .ok_or_else(|| format!("unclosed ${{ in {template:?}"))?;
                (&braced[..end], &braced[end + 1..])
            }
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        let name_end = expression
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(expression.len());
        let (name, modifier) = expression.split_at(name_end);
        if name.is_empty() {
            return Err(format!(
                "a lone $ in {template:?} (write $$ for a dollar sign)"
            ));
        }
        let value = lookup(name);
        read.push(name.to_string());
        let resolved = match (modifier, value) {
            ("", Some(v)) => v,
            ("", None) => return Err(format!("${name} is not set")),
            (m, v) if m.starts_with(":-") => {
                v.filter(|v| !v.is_empty()).unwrap_or(m[2..].to_string())
            }
            (m, v) if m.starts_with('-') => v.unwrap_or(m[1..].to_string()),
            (m, v) if m.starts_with(":?") => v
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("${name}: {}", &m[2..]))?,
            (m, v) if m.starts_with('?') => v.ok_or_else(|| format!("${name}: {}", &m[1..]))?,
            (m, _) => return Err(format!("${{{name}{m}}} is not an interpolation god knows")),
        };
        out.push_str(&resolved);
        rest = next;
    }
    out.push_str(rest);
    Ok((out, read))
}

impl EnvSource {
    /// A URL-valued secret as it may be shown (password masked); None for other values.
    pub fn shown_url(&self) -> Option<&str> {
        match self {
            EnvSource::Secret { shown, .. } => shown.as_deref(),
            EnvSource::BrokerUrl { broker_url } => Some(broker_url),
            EnvSource::Value(_) | EnvSource::Template { .. } => None,
        }
    }
}

/// The secret values of containers' environments: hashing and creating a container need them,
/// nothing else ever sees them.
pub struct SecretValues<'a> {
    /// god's own environment.
    pub env: &'a (dyn Fn(&str) -> Option<String> + Sync),
    /// The broker URL god resolved, password included (None where god has not resolved one).
    pub broker_url: Option<&'a str>,
}

impl SecretValues<'_> {
    /// The value an environment entry takes in the container.
    pub fn resolve(&self, source: &EnvSource) -> Option<String> {
        match source {
            EnvSource::Value(v) => Some(v.clone()),
            EnvSource::Secret { from_env, .. } => (self.env)(from_env),
            EnvSource::Template { template } => interpolate(template, &|v| (self.env)(v))
                .ok()
                .map(|(v, _)| v),
            EnvSource::BrokerUrl { broker_url } => self.broker_url.map(|real| {
                if url_moves(real, broker_url).is_empty() {
                    real.to_string()
                } else {
                    with_passwords(broker_url, real)
                }
            }),
        }
    }
}

/// The broker URL a container is given when it reaches the broker elsewhere than god does
/// (by the broker container's name on a project network): `shown` (masked) with the
/// passwords of `real`, node by node (the last of `real` for any further node).
fn with_passwords(shown: &str, real: &str) -> String {
    let reals: Vec<&str> = real.split(',').map(str::trim).collect();
    shown
        .split(',')
        .enumerate()
        .map(|(i, item)| {
            let source = reals[i.min(reals.len() - 1)];
            let (Ok(mut url), Ok(real)) = (url::Url::parse(item.trim()), url::Url::parse(source))
            else {
                return item.trim().to_string();
            };
            let _ = url.set_password(real.password());
            url.to_string()
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A value with its passwords masked when it is a URL with a host (`amqp://u:***@h/v`), or a
/// comma-separated list of them (the nodes of a cluster); None when it is not.
pub fn masked_url(value: &str) -> Option<String> {
    let masked: Option<Vec<String>> = value.split(',').map(|item| mask_one(item.trim())).collect();
    masked.map(|items| items.join(","))
}

fn mask_one(value: &str) -> Option<String> {
    let mut url = url::Url::parse(value).ok().filter(url::Url::has_host)?;
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    Some(url.to_string())
}

/// The parts that differ between two URLs (`scheme`, `user`, `host`, `port`, `vhost` for AMQP
/// URLs, else `path`), or between two lists of them node by node (`nodes` when their number
/// changed): what moved when a URL-valued secret changed. Empty when the URLs do not parse or
/// nothing but the passwords differ.
pub fn url_moves(before: &str, after: &str) -> Vec<&'static str> {
    let (before, after): (Vec<&str>, Vec<&str>) =
        (before.split(',').collect(), after.split(',').collect());
    if before.len() != after.len() {
        return vec!["nodes"];
    }
    let mut moves: Vec<&'static str> = Vec::new();
    for (a, b) in before.iter().zip(&after) {
        for part in one_url_moves(a.trim(), b.trim()) {
            if !moves.contains(&part) {
                moves.push(part);
            }
        }
    }
    moves
}

fn one_url_moves(before: &str, after: &str) -> Vec<&'static str> {
    let (Ok(a), Ok(b)) = (url::Url::parse(before), url::Url::parse(after)) else {
        return Vec::new();
    };
    let path = if b.scheme().starts_with("amqp") {
        "vhost"
    } else {
        "path"
    };
    [
        ("scheme", a.scheme() != b.scheme()),
        ("user", a.username() != b.username()),
        ("host", a.host_str() != b.host_str()),
        (
            "port",
            a.port_or_known_default() != b.port_or_known_default(),
        ),
        (path, a.path() != b.path()),
    ]
    .into_iter()
    .filter(|(_, moved)| *moved)
    .map(|(part, _)| part)
    .collect()
}

/// A published port: `host_ip:host_port:container_port/protocol`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortSpec {
    /// Host address (127.0.0.1 unless written).
    pub host_ip: String,
    /// Host port (None: the engine picks one).
    pub host_port: Option<u16>,
    /// The port inside the container the host port leads to.
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
    /// `host`, `bridge`, `none` or `container:NAME`; None when it joins `networks`.
    pub network_mode: Option<String>,
    /// The project networks it joins (engine names), each with its aliases there; the first is
    /// the one it is created on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Vec<String>>,
    /// Published ports.
    pub ports: Vec<PortSpec>,
    /// Mounts (`source:target[:ro]`, bind sources made absolute).
    pub volumes: Vec<String>,
    /// Restart policy.
    pub restart: String,
    /// Components that must be healthy first.
    pub depends_on: Vec<String>,
    /// Dependencies that need less or more than healthy (`service_started`,
    /// `service_completed_successfully`), by component; the others must be healthy.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub conditions: BTreeMap<String, Condition>,
    /// A one-shot container: done when it exits 0 (another component depends on it with
    /// `service_completed_successfully`), not a service kept running.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub run_once: bool,
    /// The broker god reconciles runs in this container (`broker = true`): it starts before the
    /// topology is applied.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub broker: bool,
    /// User labels.
    pub labels: BTreeMap<String, String>,
    /// Health check.
    pub healthcheck: Option<HealthSpec>,
    /// User to run as.
    pub user: Option<String>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// Limits, host name and stop settings (absent keys leave older hashes unchanged).
    #[serde(flatten)]
    pub runtime: RuntimeSpec,
    /// Hash of all of the above, secret values included (so a rotated secret recreates).
    pub config_hash: String,
}

/// What a container may use, what it is called inside, and how it is stopped: Compose's
/// `mem_limit`/`cpus` (or `deploy.resources.limits`), `hostname`, `extra_hosts`, `ulimits` and
/// `stop_grace_period`. Only the keys set are serialised, so the hash of a container that sets
/// none is what it was before they existed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeSpec {
    /// The container's name when components.toml gives one (`container_name`), instead of
    /// `<project>-<component>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// Host name inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `name:address` entries added to its /etc/hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// Memory limit in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<i64>,
    /// CPU limit in billionths of a CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nano_cpus: Option<i64>,
    /// Resource limits by name (`nofile`), soft and hard.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    /// Seconds between the stop signal and the kill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period_s: Option<i64>,
}

/// What a component waits for in a dependency before it starts (Compose's `condition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Started is enough.
    ServiceStarted,
    /// Healthy (its health check passes; running when it has none). The default.
    ServiceHealthy,
    /// Ran to completion with exit code 0.
    ServiceCompletedSuccessfully,
}

/// A network of the project (`[networks.NAME]` of components.toml).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// The engine's name: `name` when given, else `<project>_<key>`.
    pub name: String,
    /// Its key in components.toml.
    pub key: String,
    /// The project label.
    pub project: String,
    /// The driver (`bridge` unless given).
    pub driver: String,
    /// Made by someone else (`external = true`): god uses it, never creates or removes it.
    pub external: bool,
}

/// A named volume of the project (`[volumes.NAME]` of components.toml).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSpec {
    /// The engine's name: `name` when given, else `<project>_<key>`.
    pub name: String,
    /// Its key in components.toml.
    pub key: String,
    /// The project label.
    pub project: String,
    /// The driver (`local` unless given).
    pub driver: String,
    /// Made by someone else (`external = true`): god uses it, never creates or removes it.
    pub external: bool,
}

/// A soft and a hard resource limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// Soft limit.
    pub soft: i64,
    /// Hard limit.
    pub hard: i64,
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

    /// Computes the configuration hash, secret values included.
    pub fn compute_hash(&self, secrets: &SecretValues) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.config_lines().as_bytes());
        for (key, source) in &self.env {
            if !matches!(source, EnvSource::Value(_)) {
                hasher.update(key.as_bytes());
                hasher.update([0]);
                hasher.update(secrets.resolve(source).unwrap_or_default().as_bytes());
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
                    && let Some(line) = secret_line(inner)
                {
                    out.push_str(&format!("{key}: {line}\n"));
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

/// How a secret environment entry (a serialised [`EnvSource`]) is listed: never its value,
/// at most its URL with the password masked.
fn secret_line(entry: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    let text = |key: &str| entry.get(key).and_then(|v| v.as_str());
    if let Some(url) = text("broker_url") {
        return Some(format!("{url} (secret: god's broker URL)"));
    }
    if let Some(template) = text("template") {
        return Some(format!("{template} (secret, interpolated)"));
    }
    let var = text("from_env")?;
    Some(format!(
        "{} (secret, from ${var})",
        text("shown").unwrap_or("***")
    ))
}

/// The containers god wants for one project, dependencies first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredContainers {
    /// The project label.
    pub project: String,
    /// Containers in dependency order.
    pub containers: Vec<ContainerSpec>,
    /// Components left out because none of their profiles is active, with their profiles: god
    /// neither starts nor removes their containers.
    pub inactive: BTreeMap<String, Vec<String>>,
    /// The project's networks.
    pub networks: Vec<NetworkSpec>,
    /// The project's named volumes.
    pub volumes: Vec<VolumeSpec>,
    /// The names components had before (`renamed_from`), by component: the containers of
    /// those names are replaced by the component's.
    pub renamed_from: BTreeMap<String, Vec<String>>,
}

impl DesiredContainers {
    /// The container running the broker, when components.toml has one.
    pub fn broker(&self) -> Option<&ContainerSpec> {
        self.containers.iter().find(|c| c.broker)
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
    /// Exited with code 0 (a one-shot container that is done).
    #[serde(default)]
    pub completed: bool,
    /// Running while the engine's health check reports it unhealthy (the engine never
    /// restarts such a container itself, whatever its restart policy).
    #[serde(default)]
    pub unhealthy: bool,
}

/// A network found on the engine with a name god wants, or with god's label for the project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedNetwork {
    /// The project label (None: not made by god).
    pub project: Option<String>,
    /// The containers attached to it, by name.
    pub containers: Vec<String>,
}

/// A volume found on the engine with a name god wants, or with god's label for the project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedVolume {
    /// The project label (None: not made by god).
    pub project: Option<String>,
    /// The components.toml key it was made for (god's label).
    pub key: Option<String>,
    /// Its size in bytes, when the engine says.
    pub size_bytes: Option<i64>,
    /// The containers that mount it, by name.
    pub containers: Vec<String>,
}

/// The containers of one project as found on the engine, plus any other container whose name
/// god would use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedContainers {
    /// The container project it was read for: only this project's objects are god's.
    pub project: String,
    /// God's containers of this project, by component.
    pub managed: BTreeMap<String, ObservedContainer>,
    /// Containers without god's labels, by name.
    pub foreign_names: BTreeMap<String, String>,
    /// Networks by engine name: the ones god wants and the project's.
    #[serde(default)]
    pub networks: BTreeMap<String, ObservedNetwork>,
    /// Volumes by engine name: the ones god wants and the project's.
    #[serde(default)]
    pub volumes: BTreeMap<String, ObservedVolume>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_password_of_a_list_of_nodes_is_masked() {
        let list = "amqp://ops:s3cret@10.0.0.1:5672/v, amqp://ops:s3cret@10.0.0.2:5672/v";
        assert_eq!(
            masked_url(list).as_deref(),
            Some("amqp://ops:***@10.0.0.1:5672/v,amqp://ops:***@10.0.0.2:5672/v")
        );
        assert_eq!(masked_url("amqp://ops:s3cret@10.0.0.1/v,not a url"), None);
        assert_eq!(masked_url("plain"), None);
    }

    #[test]
    fn values_are_interpolated_as_compose_does() {
        let env = |v: &str| match v {
            "USER" => Some("ops".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let run = |t: &str| interpolate(t, &env).map(|(v, _)| v);
        assert_eq!(run("amqp://${USER}:$USER@h/").unwrap(), "amqp://ops:ops@h/");
        assert_eq!(run("${NOPE:-d} ${EMPTY:-d} ${EMPTY-d}").unwrap(), "d d ");
        assert_eq!(run("$$HOME").unwrap(), "$HOME");
        assert_eq!(run("${NOPE}").unwrap_err(), "$NOPE is not set");
        assert_eq!(run("${NOPE:?give it}").unwrap_err(), "$NOPE: give it");
        assert!(run("${USER").unwrap_err().contains("unclosed"));
    }

    #[test]
    fn a_broker_url_reached_by_another_name_keeps_gods_password() {
        let secrets = SecretValues {
            env: &|_| None,
            broker_url: Some("amqp://ops:s3cret@127.0.0.1:5690/%2f"),
        };
        let inside = EnvSource::BrokerUrl {
            broker_url: "amqp://ops:***@rabbitmq:5672/%2f".into(),
        };
        assert_eq!(
            secrets.resolve(&inside).as_deref(),
            Some("amqp://ops:s3cret@rabbitmq:5672/%2f")
        );
        let same = EnvSource::BrokerUrl {
            broker_url: "amqp://ops:***@127.0.0.1:5690/%2f".into(),
        };
        assert_eq!(
            secrets.resolve(&same).as_deref(),
            Some("amqp://ops:s3cret@127.0.0.1:5690/%2f")
        );
    }

    #[test]
    fn lists_of_nodes_move_node_by_node() {
        let one = "amqp://u:p@a:5672/v,amqp://u:p@b:5672/v";
        assert!(url_moves(one, "amqp://u:other@a:5672/v,amqp://u:p@b:5672/v").is_empty());
        assert_eq!(
            url_moves(one, "amqp://u:p@a:5672/v,amqp://u:p@c:5672/w"),
            ["host", "vhost"]
        );
        assert_eq!(url_moves(one, "amqp://u:p@a:5672/v"), ["nodes"]);
    }
}
