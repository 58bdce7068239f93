//! `components.toml`: the platform's component manifest, read as the upstream writes it
//! (`{ path, kind, enabled }`, which plans nothing), plus god's extension: a component with an
//! `image` is a container, described with Docker Compose's key names.

mod build_context;
mod fields;
mod order;
mod spec;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::SourceFile;
use super::diagnostic::Diagnostic;
use super::document::PositionedDocument;
use super::document::escape_pointer;
use super::toml_doc;
use crate::model::containers::{Condition, interpolate};

pub use build_context::context_digest;
pub use fields::parse_port;
pub use spec::{default_project, is_host_path};

/// The file as written.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ComponentsFile {
    /// Components by name (mixed case allowed, as upstream).
    #[serde(default)]
    pub components: BTreeMap<String, Component>,
    /// The project's networks, by key.
    #[serde(default)]
    pub networks: BTreeMap<String, SharedObjectDecl>,
    /// The project's named volumes, by key.
    #[serde(default)]
    pub volumes: BTreeMap<String, SharedObjectDecl>,
}

/// A `[networks.NAME]` or `[volumes.NAME]` table.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SharedObjectDecl {
    /// The engine's name (default `<project>_<key>`).
    #[serde(default)]
    pub name: Option<String>,
    /// The driver.
    #[serde(default)]
    pub driver: Option<String>,
    /// Made outside god.
    #[serde(default)]
    pub external: bool,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// One component.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Component {
    /// Enabled (true when absent).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Image reference: makes the component a container.
    #[serde(default)]
    pub image: Option<String>,
    /// A local build context: a directory, or `{ context, dockerfile }`.
    #[serde(default)]
    pub build: Option<BuildDecl>,
    /// One of god's bundled services (`gateway`, `relay`), run from an image of god itself.
    #[serde(default)]
    pub builtin: Option<String>,
    /// Command.
    #[serde(default)]
    pub command: Vec<String>,
    /// Environment.
    #[serde(default)]
    pub env: BTreeMap<String, Value>,
    /// A `KEY=VALUE` file, relative to components.toml.
    #[serde(default)]
    pub env_file: Option<String>,
    /// Network mode.
    #[serde(default)]
    pub network_mode: Option<String>,
    /// Networks of `[networks]` it joins, with their aliases.
    #[serde(default)]
    pub networks: Attachments,
    /// It runs the broker god reconciles.
    #[serde(default)]
    pub broker: bool,
    /// Published ports.
    #[serde(default)]
    pub ports: Vec<String>,
    /// Mounts.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Restart policy.
    #[serde(default)]
    pub restart: Option<String>,
    /// Components started first, with what each must have reached.
    #[serde(default)]
    pub depends_on: Dependencies,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Health check.
    #[serde(default)]
    pub healthcheck: Option<HealthcheckDecl>,
    /// User.
    #[serde(default)]
    pub user: Option<String>,
    /// Working directory.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// The container's name (default `<project>-<component>`).
    #[serde(default)]
    pub container_name: Option<String>,
    /// Host name inside the container.
    #[serde(default)]
    pub hostname: Option<String>,
    /// `name:address` entries for its /etc/hosts.
    #[serde(default)]
    pub extra_hosts: Vec<String>,
    /// Memory limit (`512m`, `1g`, or bytes).
    #[serde(default)]
    pub mem_limit: Option<Value>,
    /// CPU limit (`0.5`).
    #[serde(default)]
    pub cpus: Option<Value>,
    /// Compose's `deploy.resources.limits`.
    #[serde(default)]
    pub deploy: Option<DeployDecl>,
    /// Resource limits: a number (soft and hard) or `{ soft, hard }`.
    #[serde(default)]
    pub ulimits: BTreeMap<String, UlimitDecl>,
    /// Time between the stop signal and the kill (`30s`).
    #[serde(default)]
    pub stop_grace_period: Option<String>,
    /// Profiles: the component runs only when one of them is active (`--profile NAME`).
    #[serde(default)]
    pub profiles: Vec<String>,
}

/// A component's `networks`: a list of keys, or keys with `{ aliases = [...] }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(from = "AttachmentsDecl")]
pub struct Attachments(pub Vec<(String, Vec<String>)>);

#[derive(Deserialize)]
#[serde(untagged)]
enum AttachmentsDecl {
    List(Vec<String>),
    Map(BTreeMap<String, Option<AliasesDecl>>),
}

#[derive(Deserialize)]
struct AliasesDecl {
    #[serde(default)]
    aliases: Vec<String>,
}

impl From<AttachmentsDecl> for Attachments {
    fn from(decl: AttachmentsDecl) -> Self {
        Attachments(match decl {
            AttachmentsDecl::List(keys) => keys.into_iter().map(|k| (k, Vec::new())).collect(),
            AttachmentsDecl::Map(map) => map
                .into_iter()
                .map(|(k, a)| (k, a.map(|a| a.aliases).unwrap_or_default()))
                .collect(),
        })
    }
}

/// A component's `depends_on`: a list (each healthy first), or names with a `condition`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(from = "DependenciesDecl")]
pub struct Dependencies {
    /// The components depended on, with their condition.
    pub entries: Vec<(String, Condition)>,
    /// Written as a table (its entries are located by name, not index).
    pub by_name: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DependenciesDecl {
    List(Vec<String>),
    Map(BTreeMap<String, DependencyDecl>),
}

#[derive(Deserialize)]
struct DependencyDecl {
    #[serde(default)]
    condition: Option<Condition>,
}

impl From<DependenciesDecl> for Dependencies {
    fn from(decl: DependenciesDecl) -> Self {
        match decl {
            DependenciesDecl::List(names) => Dependencies {
                entries: names
                    .into_iter()
                    .map(|n| (n, Condition::ServiceHealthy))
                    .collect(),
                by_name: false,
            },
            DependenciesDecl::Map(map) => Dependencies {
                entries: map
                    .into_iter()
                    .map(|(n, d)| (n, d.condition.unwrap_or(Condition::ServiceHealthy)))
                    .collect(),
                by_name: true,
            },
        }
    }
}

impl Dependencies {
    /// The names depended on.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.entries.iter().map(|(n, _)| n)
    }

    /// The JSON pointer suffix of the `i`th entry: `/depends_on/2` or `/depends_on/NAME`.
    pub fn pointer(&self, i: usize) -> String {
        match self.by_name {
            true => format!("/depends_on/{}", escape_pointer(&self.entries[i].0)),
            false => format!("/depends_on/{i}"),
        }
    }
}

/// Compose's `deploy` section, as far as god reads it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DeployDecl {
    /// `resources`.
    #[serde(default)]
    pub resources: Option<ResourcesDecl>,
}

/// `deploy.resources`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResourcesDecl {
    /// `limits`.
    #[serde(default)]
    pub limits: Option<LimitsDecl>,
}

/// `deploy.resources.limits`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LimitsDecl {
    /// Memory limit.
    #[serde(default)]
    pub memory: Option<Value>,
    /// CPU limit.
    #[serde(default)]
    pub cpus: Option<Value>,
}

/// One `ulimits` entry.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub enum UlimitDecl {
    /// The same soft and hard limit.
    Both(i64),
    /// Soft and hard limits.
    Pair {
        /// Soft limit.
        soft: i64,
        /// Hard limit.
        hard: i64,
    },
}

/// The `build` key.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum BuildDecl {
    /// Just the context directory.
    Context(String),
    /// Context and Dockerfile.
    Full {
        /// The context directory, relative to components.toml.
        context: String,
        /// The Dockerfile, relative to the context.
        #[serde(default)]
        dockerfile: Option<String>,
    },
}

/// The `healthcheck` table.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HealthcheckDecl {
    /// Command run by the engine.
    #[serde(default)]
    pub test: Option<Vec<String>>,
    /// URL requested by god from the host.
    #[serde(default)]
    pub http: Option<String>,
    /// Interval.
    #[serde(default)]
    pub interval: Option<String>,
    /// Timeout.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Retries.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Start period.
    #[serde(default)]
    pub start_period: Option<String>,
}

fn yes() -> bool {
    true
}

/// A components file that parsed and validated.
#[derive(Debug, Clone)]
pub struct LoadedComponents {
    /// The file.
    pub source: SourceFile,
    /// Its content.
    pub file: ComponentsFile,
    doc: PositionedDocument,
    /// Problems that do not stop god.
    pub warnings: Vec<Diagnostic>,
}

/// Parses and validates components.toml (syntax, schema, dependencies).
pub fn load_components(source: SourceFile) -> Result<LoadedComponents, Vec<Diagnostic>> {
    let doc = toml_doc::parse(&source.text).map_err(|e| {
        vec![Diagnostic::error(
            &source,
            e.position.line,
            e.position.col,
            format!("TOML syntax error: {}", e.message),
        )]
    })?;
    let problems = super::schema::components().problems(&source, &doc);
    if problems.iter().any(Diagnostic::is_error) {
        return Err(problems);
    }
    let file: ComponentsFile = serde_json::from_value(doc.value.clone()).map_err(|e| {
        vec![Diagnostic::error(
            &source,
            1,
            1,
            format!("cannot read the components: {e}"),
        )]
    })?;
    let mut loaded = LoadedComponents {
        source,
        file,
        doc,
        warnings: problems,
    };
    let errors = loaded.dependency_problems();
    let (errs, warns): (Vec<_>, Vec<_>) = errors.into_iter().partition(Diagnostic::is_error);
    loaded.warnings.extend(warns);
    if !errs.is_empty() {
        return Err(errs.into_iter().chain(loaded.warnings).collect());
    }
    Ok(loaded)
}

impl LoadedComponents {
    fn at(&self, pointer: &str, message: String, hint: &str) -> Diagnostic {
        let pos = self.doc.position_of(pointer);
        Diagnostic::error(&self.source, pos.line, pos.col, message).with_hint(hint)
    }

    /// A warning at the key of the node at a JSON pointer of this file.
    pub fn warning_at(&self, pointer: &str, message: String, hint: &str) -> Diagnostic {
        let pos = self.doc.key_position_of(pointer);
        Diagnostic::warning(&self.source, pos.line, pos.col, message).with_hint(hint)
    }

    /// Where god reaches the broker that components.toml runs (`broker = true`), from the
    /// ports it publishes for 5672 and 15672 and its `RABBITMQ_DEFAULT_USER`/`_PASS`
    /// (guest/guest by default): the AMQP and management URLs, when there is such a
    /// component, active under `profiles`, publishing both ports.
    pub fn broker_urls(
        &self,
        lookup: &(dyn Fn(&str) -> Option<String> + Sync),
        profiles: &[String],
    ) -> Option<(String, String)> {
        let (_, broker) = self.containers().find(|(_, c)| {
            c.broker && (c.profiles.is_empty() || c.profiles.iter().any(|p| profiles.contains(p)))
        })?;
        let published = |container_port: u16| {
            broker
                .ports
                .iter()
                .filter_map(|p| parse_port(p).ok())
                .find(|p| p.container_port == container_port && p.host_port.is_some())
                .map(|p| {
                    let host = match p.host_ip.as_str() {
                        "0.0.0.0" | "" => "127.0.0.1".to_string(),
                        "::" => "[::1]".to_string(),
                        ip if ip.contains(':') => format!("[{ip}]"),
                        ip => ip.to_string(),
                    };
                    format!("{host}:{}", p.host_port.unwrap_or_default())
                })
        };
        let (amqp, management) = (published(5672)?, published(15672)?);
        let variable = |name: &str, default: &str| match broker.env.get(name) {
            Some(Value::String(v)) => interpolate(v, lookup).ok().map(|(value, _)| value),
            Some(Value::Object(o)) => o.get("from_env").and_then(Value::as_str).and_then(lookup),
            Some(_) => None,
            None => Some(default.to_string()),
        };
        let mut url = url::Url::parse(&format!("amqp://{amqp}")).ok()?;
        url.set_username(&variable("RABBITMQ_DEFAULT_USER", "guest")?)
            .ok()?;
        url.set_password(Some(&variable("RABBITMQ_DEFAULT_PASS", "guest")?))
            .ok()?;
        Some((url.to_string(), format!("http://{management}")))
    }

    /// The components that are containers and enabled.
    pub fn containers(&self) -> impl Iterator<Item = (&String, &Component)> {
        self.file.components.iter().filter(|(_, c)| {
            c.enabled && (c.image.is_some() || c.build.is_some() || c.builtin.is_some())
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use indoc::indoc;

    pub(crate) fn load(text: &str) -> Result<LoadedComponents, Vec<Diagnostic>> {
        load_components(SourceFile {
            path: std::path::PathBuf::from("/p/components.toml"),
            text: text.to_string(),
        })
    }

    pub(crate) fn env(var: &str) -> Option<String> {
        (var == "API_TOKEN").then(|| "s3cret".to_string())
    }

    pub(crate) const WEB: &str = r#"
[components]
bloodbank = { path = "bloodbank", kind = "submodule", enabled = true }

[components.web]
enabled = true
image = "busybox:local"
command = ["httpd", "-f", "-p", "8080"]
env = { MODE = "demo", API_TOKEN = { secret = true, from_env = "API_TOKEN" } }
network_mode = "host"
restart = "unless-stopped"
depends_on = ["queue-worker"]
labels = { team = "infra" }

[components.web.healthcheck]
test = ["CMD", "/bin/busybox", "wget", "-q", "-O-", "http://127.0.0.1:8080/"]
interval = "2s"
timeout = "2s"
retries = 5
start_period = "1s"

[components.queue-worker]
image = "busybox:local"
ports = ["9000:9000", "0.0.0.0:9001:9001/udp"]
"#;

    #[test]
    fn schema_violations_are_located() {
        let errs = load(indoc! {r#"
            [components.a]
            image = "x"
            restart = "sometimes"
        "#})
        .unwrap_err();
        assert!(
            errs[0]
                .headline()
                .starts_with("/p/components.toml:3:11: /components/a/restart:"),
            "{errs:?}"
        );
    }
}
