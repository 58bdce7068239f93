//! `topology/*.yaml`: the broker objects a service registry cannot express (exchanges of any
//! type, standalone queues, exchange-to-exchange and header bindings, policies, operator
//! policies, vhost limits), read from every file of the folder in name order, each checked
//! against `schemas/topology.schema.json` at its `file:line:col`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::SourceFile;
use super::diagnostic::Diagnostic;
use super::document::PositionedDocument;
use super::{schema, yaml};
use crate::error::{GodError, Result};
use crate::model::desired::DesiredState;
use crate::model::duration::millis_of;
use crate::model::queue_type::{QueueSettings, QueueType};
use crate::model::{
    ApplyTo, Arguments, BindingSpec, DLK_ARG, DLX_ARG, DestinationType, ExchangeKind, ExchangeSpec,
    PolicySpec, QueueSpec, normalize_arguments,
};

/// The folder of topology files, beside the registry.
pub const TOPOLOGY_DIR: &str = "topology";

/// One topology file as written.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TopologyFile {
    /// Exchanges by name.
    #[serde(default)]
    pub exchanges: BTreeMap<String, ExchangeDecl>,
    /// Standalone queues by name.
    #[serde(default)]
    pub queues: BTreeMap<String, QueueDecl>,
    /// Bindings to queues or exchanges.
    #[serde(default)]
    pub bindings: Vec<BindingDecl>,
    /// Policies by name.
    #[serde(default)]
    pub policies: BTreeMap<String, PolicyDecl>,
    /// Operator policies by name.
    #[serde(default)]
    pub operator_policies: BTreeMap<String, PolicyDecl>,
    /// Limits of the vhost.
    #[serde(default)]
    pub limits: LimitsDecl,
}

/// An exchange of a topology file.
#[derive(Debug, Clone, Deserialize)]
pub struct ExchangeDecl {
    /// topic (the default), direct, fanout or headers.
    #[serde(rename = "type", default = "topic")]
    pub kind: ExchangeKind,
    /// Survives a restart (the default).
    #[serde(default = "yes")]
    pub durable: bool,
    /// Deleted with its last binding.
    #[serde(default)]
    pub auto_delete: bool,
    /// Only other exchanges publish to it.
    #[serde(default)]
    pub internal: bool,
    /// Where messages no binding routes go.
    #[serde(default)]
    pub alternate_exchange: Option<String>,
    /// Other arguments.
    #[serde(default)]
    pub arguments: Arguments,
}

/// A standalone queue of a topology file.
#[derive(Debug, Clone, Deserialize)]
pub struct QueueDecl {
    /// Survives a restart (the default).
    #[serde(default = "yes")]
    pub durable: bool,
    /// Deleted with its last consumer.
    #[serde(default)]
    pub auto_delete: bool,
    /// Its type and quorum options, named as in the registry.
    #[serde(flatten)]
    pub settings: QueueSettings,
    /// How long a message may wait (`x-message-ttl`).
    #[serde(default)]
    pub message_ttl: Option<Value>,
    /// How long the queue may stay unused (`x-expires`).
    #[serde(default)]
    pub expires: Option<Value>,
    /// Most messages held (`x-max-length`).
    #[serde(default)]
    pub max_length: Option<u64>,
    /// Most bytes held (`x-max-length-bytes`).
    #[serde(default)]
    pub max_length_bytes: Option<u64>,
    /// What happens when full (`x-overflow`).
    #[serde(default)]
    pub overflow: Option<String>,
    /// Where dead letters go (`x-dead-letter-exchange`).
    #[serde(default)]
    pub dead_letter_exchange: Option<String>,
    /// Their routing key (`x-dead-letter-routing-key`).
    #[serde(default)]
    pub dead_letter_routing_key: Option<String>,
    /// Other arguments.
    #[serde(default)]
    pub arguments: Arguments,
    /// Where the queue is bound, beside the top-level `bindings`.
    #[serde(default)]
    pub bindings: Vec<QueueBindingDecl>,
}

/// A binding listed under its queue.
#[derive(Debug, Clone, Deserialize)]
pub struct QueueBindingDecl {
    /// The source exchange.
    pub exchange: String,
    /// The binding key.
    #[serde(default)]
    pub routing_key: String,
    /// Binding arguments (`x-match` and the headers of a headers exchange).
    #[serde(default)]
    pub arguments: Arguments,
}

/// A binding of the top-level `bindings` list.
#[derive(Debug, Clone, Deserialize)]
pub struct BindingDecl {
    /// The source exchange.
    pub source: String,
    /// The queue or exchange bound.
    pub destination: String,
    /// Queue (the default) or exchange.
    #[serde(default = "queue_destination")]
    pub destination_type: DestinationType,
    /// The binding key.
    #[serde(default)]
    pub routing_key: String,
    /// Binding arguments.
    #[serde(default)]
    pub arguments: Arguments,
}

/// A policy or operator policy.
#[derive(Debug, Clone, Deserialize)]
pub struct PolicyDecl {
    /// Regular expression over names.
    pub pattern: String,
    /// queues, exchanges or all (the default).
    #[serde(default = "all")]
    pub apply_to: ApplyTo,
    /// Higher wins.
    #[serde(default)]
    pub priority: i64,
    /// The keys it sets.
    pub definition: Arguments,
}

/// The vhost's limits.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LimitsDecl {
    /// Most queues.
    #[serde(default)]
    pub max_queues: Option<i64>,
    /// Most client connections.
    #[serde(default)]
    pub max_connections: Option<i64>,
}

impl LimitsDecl {
    /// The limits set, by RabbitMQ's names.
    pub fn set(&self) -> Vec<(&'static str, i64)> {
        [
            ("max-queues", self.max_queues),
            ("max-connections", self.max_connections),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect()
    }
}

fn topic() -> ExchangeKind {
    ExchangeKind::Topic
}

fn yes() -> bool {
    true
}

fn all() -> ApplyTo {
    ApplyTo::All
}

fn queue_destination() -> DestinationType {
    DestinationType::Queue
}

/// A topology file that parsed and matches the schema, with its document for positions.
#[derive(Debug, Clone)]
pub struct LoadedTopologyFile {
    /// The file.
    pub source: SourceFile,
    /// Its document, for the place of each name.
    pub doc: PositionedDocument,
    /// Its content.
    pub file: TopologyFile,
}

/// The topology files of a folder (`*.yaml` and `*.yml`, in name order); none when the folder
/// does not exist.
pub fn read_dir(dir: &Path) -> Result<Vec<SourceFile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(GodError::InputUnreadable {
                path: dir.to_path_buf(),
                hint: "god reads every *.yaml of the topology folder; pass another with --topology DIR".to_string(),
                source,
            });
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    paths.sort();
    paths.iter().map(|p| SourceFile::read(p)).collect()
}

/// A topology file that is YAML but breaks the schema: its names still count (a duplicate of
/// one, a binding to one), its objects are not used.
#[derive(Debug, Clone)]
pub struct InvalidTopologyFile {
    /// The file.
    pub source: SourceFile,
    /// Its document.
    pub doc: PositionedDocument,
}

/// The topology files parsed: those that passed, those that are YAML but break the schema,
/// every problem found, and whether every file was at least YAML.
#[derive(Debug, Clone, Default)]
pub struct ParsedTopology {
    /// Files that passed.
    pub loaded: Vec<LoadedTopologyFile>,
    /// Files that are YAML but break the schema.
    pub invalid: Vec<InvalidTopologyFile>,
    /// Their problems.
    pub problems: Vec<Diagnostic>,
    /// Whether every file was at least YAML (else some names are unknown).
    pub complete: bool,
}

/// Parses each file and checks it against the schema.
pub fn parse(sources: Vec<SourceFile>) -> ParsedTopology {
    let mut parsed = ParsedTopology {
        complete: true,
        ..ParsedTopology::default()
    };
    for source in sources {
        let doc = match yaml::parse(&source.text) {
            Ok(doc) => doc,
            Err(e) => {
                parsed.problems.push(yaml::syntax_problem(&source, &e));
                parsed.complete = false;
                continue;
            }
        };
        let found = schema::topology().problems(&source, &doc);
        let file = match serde_json::from_value(doc.value.clone()) {
            Ok(file) if found.is_empty() => file,
            _ => {
                parsed.problems.extend(found);
                parsed.invalid.push(InvalidTopologyFile { source, doc });
                continue;
            }
        };
        parsed.loaded.push(LoadedTopologyFile { source, doc, file });
    }
    parsed
}

impl LoadedTopologyFile {
    /// Adds the file's objects to the desired state, each with this file as its source.
    pub fn add_to(&self, state: &mut DesiredState) {
        let source = self.source.path.display().to_string();
        let file = &self.file;
        let note = |state: &mut DesiredState, id: String| {
            state.sources.insert(id, source.clone());
        };
        for (name, e) in &file.exchanges {
            let exchange = exchange_spec(name, e);
            note(state, format!("exchange/{name}"));
            state.topology.exchanges.insert(name.clone(), exchange);
        }
        for (name, q) in &file.queues {
            note(state, format!("queue/{name}"));
            state
                .topology
                .queues
                .insert(name.clone(), queue_spec(name, q));
            for b in &q.bindings {
                let binding = BindingSpec {
                    source: b.exchange.clone(),
                    destination: name.clone(),
                    destination_type: DestinationType::Queue,
                    routing_key: b.routing_key.clone(),
                    arguments: normalize_arguments(&b.arguments),
                };
                note(state, crate::plan::binding_id(&binding));
                state.topology.bindings.insert(binding);
            }
        }
        for b in &file.bindings {
            let binding = BindingSpec {
                source: b.source.clone(),
                destination: b.destination.clone(),
                destination_type: b.destination_type,
                routing_key: b.routing_key.clone(),
                arguments: normalize_arguments(&b.arguments),
            };
            note(state, crate::plan::binding_id(&binding));
            state.topology.bindings.insert(binding);
        }
        for (name, p) in &file.policies {
            note(state, format!("policy/{name}"));
            state
                .topology
                .policies
                .insert(name.clone(), policy_spec(name, p));
        }
        for (name, p) in &file.operator_policies {
            note(state, format!("operator_policy/{name}"));
            state
                .topology
                .operator_policies
                .insert(name.clone(), policy_spec(name, p));
        }
        for (name, value) in file.limits.set() {
            note(state, format!("limit/{name}"));
            state.topology.limits.insert(name.to_string(), value);
        }
    }
}

fn exchange_spec(name: &str, e: &ExchangeDecl) -> ExchangeSpec {
    let mut arguments = e.arguments.clone();
    if let Some(alternate) = &e.alternate_exchange {
        arguments.insert("alternate-exchange".into(), Value::from(alternate.as_str()));
    }
    ExchangeSpec {
        name: name.to_string(),
        kind: e.kind.clone(),
        durable: e.durable,
        auto_delete: e.auto_delete,
        internal: e.internal,
        arguments: normalize_arguments(&arguments),
    }
}

/// The queue's arguments: its type and quorum options, the named settings, then `arguments`
/// for anything else.
fn queue_spec(name: &str, q: &QueueDecl) -> QueueSpec {
    let queue_type = q.settings.queue_type.unwrap_or(QueueType::Classic);
    let mut arguments = q.arguments.clone();
    arguments.extend(q.settings.queue_arguments(queue_type));
    let named = [
        (
            "x-message-ttl",
            q.message_ttl.as_ref().and_then(millis_of).map(Value::from),
        ),
        (
            "x-expires",
            q.expires.as_ref().and_then(millis_of).map(Value::from),
        ),
        ("x-max-length", q.max_length.map(Value::from)),
        ("x-max-length-bytes", q.max_length_bytes.map(Value::from)),
        ("x-overflow", q.overflow.clone().map(Value::from)),
        (DLX_ARG, q.dead_letter_exchange.clone().map(Value::from)),
        (DLK_ARG, q.dead_letter_routing_key.clone().map(Value::from)),
    ];
    for (key, value) in named {
        if let Some(value) = value {
            arguments.insert(key.to_string(), value);
        }
    }
    QueueSpec {
        name: name.to_string(),
        durable: q.durable,
        auto_delete: q.auto_delete,
        arguments: normalize_arguments(&arguments),
    }
}

fn policy_spec(name: &str, p: &PolicyDecl) -> PolicySpec {
    PolicySpec {
        name: name.to_string(),
        pattern: p.pattern.clone(),
        apply_to: p.apply_to.clone(),
        priority: p.priority,
        definition: p.definition.clone(),
    }
}
