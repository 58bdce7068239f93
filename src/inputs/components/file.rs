//! components.toml as written: the upstream's `{ path, kind, enabled }` and god's container
//! keys (Docker Compose's names), deserialised as they are, before any of it is resolved.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::inputs::document::escape_pointer;
use crate::model::containers::Condition;

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
    /// The engine's driver (`bridge`, `local`); the engine's default when absent.
    #[serde(default)]
    pub driver: Option<String>,
    /// Made outside god.
    #[serde(default)]
    pub external: bool,
    /// Labels god adds to its own (`god.project`, …), for the operator's tools.
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
    /// The gateway's Holyfields schema tree on the host, mounted read-only at
    /// [`crate::services::builtin::SCHEMA_MOUNT`].
    #[serde(default)]
    pub schemas: Option<String>,
    /// What the container runs instead of its image's command.
    #[serde(default)]
    pub command: Vec<String>,
    /// Environment.
    #[serde(default)]
    pub env: BTreeMap<String, Value>,
    /// A `KEY=VALUE` file, relative to components.toml.
    #[serde(default)]
    pub env_file: Option<String>,
    /// `host`, `none` or `container:NAME`, instead of the project's networks.
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
    /// Labels set on the container beside god's own.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Health check.
    #[serde(default)]
    pub healthcheck: Option<HealthcheckDecl>,
    /// The user (and group) the container's process runs as.
    #[serde(default)]
    pub user: Option<String>,
    /// Working directory.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// The container's name (default `<project>-<component>`).
    #[serde(default)]
    pub container_name: Option<String>,
    /// The names this component had before: their containers are replaced by its own.
    #[serde(default)]
    pub renamed_from: Vec<String>,
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
    /// Compose's `resources`: the limits of the container.
    #[serde(default)]
    pub resources: Option<ResourcesDecl>,
}

/// `deploy.resources`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResourcesDecl {
    /// Compose's `limits`: memory and CPUs at most.
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
    /// How often the health check runs (a duration).
    #[serde(default)]
    pub interval: Option<String>,
    /// How long one check may take before it counts as failed.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Failures in a row before the container is unhealthy.
    #[serde(default)]
    pub retries: Option<u32>,
    /// How long after the start failures do not count.
    #[serde(default)]
    pub start_period: Option<String>,
}

fn yes() -> bool {
    true
}
