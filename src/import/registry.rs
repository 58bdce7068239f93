//! `god import registry`: a registry written from a live vhost, in the upstream registry's
//! layout, with a topology file for what a registry cannot say.
//!
//! The rules, also in the README:
//! - the **bus exchange** is `--exchange`, else the topic exchange most queues are bound to;
//! - **one service per queue** bound to it, its routing keys from those bindings;
//! - a queue that dead-letters through the default exchange into a queue of its own (and no
//!   other queue does) has that queue as its **`dead_letter`**;
//! - queues named `services.<group>.<name>` that are each bound by exactly one routing key,
//!   with the same settings and dead-lettering, form **one service `<group>` with
//!   `queue_names`**, unless the broker shows them consumed by different connections;
//! - server-named, exclusive, auto-delete and unavailable queues, and god's own objects, are
//!   **left out** and listed;
//! - every other exchange, queue, binding and policy goes to `topology/imported.yaml`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::inputs::SourceFile;
use crate::inputs::diagnostic::Diagnostic;
use crate::inputs::topology::TOPOLOGY_DIR;
use crate::inputs::validate::load_inputs;

use crate::model::duration::format_millis;
use crate::model::queue_type::{
    DECLARATION_ONLY_ARGUMENTS, QUEUE_TYPE_ARG, QueueSettings, QueueType,
};
use crate::model::{
    Arguments, BindingSpec, DLK_ARG, DLX_ARG, DestinationType, ExchangeKind, ExchangeSpec,
    ObservedState, POLICY_PREFIX, PolicySpec, QueueSpec,
};
use crate::plan::diff::{PlanOptions, plan};
use crate::plan::{Action, MIGRATION_HOLDING_SUFFIX};

/// The file of `topology/` the objects a registry cannot express are written to.
pub const IMPORTED_TOPOLOGY_FILE: &str = "imported.yaml";

/// The prefix of the queue names that are grouped into one service (`services.<group>.<name>`).
const GROUP_PREFIX: &str = "services.";

/// What the importer reads of a live vhost.
#[derive(Debug, Clone, Default)]
pub struct LiveVhost {
    /// Its objects, as `god plan` observes them.
    pub state: ObservedState,
    /// Its exclusive queues (the definitions leave them out).
    pub exclusive: Vec<String>,
    /// The consumers of each queue: their connections and prefetch limits.
    pub consumers: BTreeMap<String, Vec<Consumer>>,
}

/// One consumer of a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    /// The broker's name of its connection.
    pub connection: String,
    /// Its prefetch limit (0: none).
    pub prefetch: u64,
}

/// A registry (and topology file) written from a live vhost.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The bus exchange.
    pub exchange: String,
    /// The registry's text.
    pub registry: String,
    /// The text of `topology/imported.yaml`, when a registry cannot say everything.
    pub topology: Option<String>,
    /// Services written.
    pub services: usize,
    /// Queues written as dead-letter queues.
    pub dead_letter_queues: usize,
    /// Objects left out, each with why.
    pub left_out: Vec<(String, String)>,
    /// What was written another way than usual, each with why.
    pub notes: Vec<(String, String)>,
}

/// Writes a registry from a live vhost. `exchange`: the bus exchange, else the topic exchange
/// most queues are bound to. Errs with what to do when there is no bus exchange to take.
pub fn import(live: &LiveVhost, exchange: Option<&str>) -> Result<Imported, String> {
    let bus = bus_exchange(&live.state, exchange)?;
    let mut scan = Scan::new(live, &bus);
    let services = scan.services();
    let topology = scan.topology(&services);
    Ok(Imported {
        registry: registry_text(&bus, &live.state, &services),
        topology: (!topology.is_empty()).then(|| {
            let header = format!(
                "# Written by `god import registry` from vhost {:?}: its objects a registry cannot say.\n\n",
                live.state.vhost
            );
            header + &topology_text(&Value::Object(topology))
        }),
        services: services.len(),
        dead_letter_queues: scan.dead_letter_queues.len(),
        left_out: scan.left_out,
        notes: scan.notes,
        exchange: bus,
    })
}

/// Where the topology file of a registry written to `registry_path` goes.
pub fn topology_path(registry_path: &Path) -> PathBuf {
    let dir = registry_path.parent().unwrap_or(Path::new(""));
    dir.join(TOPOLOGY_DIR).join(IMPORTED_TOPOLOGY_FILE)
}

/// What `god plan` would do with the imported files besides adopting what exists, a line per
/// change: nothing when the import says everything the vhost holds. Errs with every problem
/// when the files do not validate (a bug of the importer).
pub fn differences(
    imported: &Imported,
    registry_path: &Path,
    live: &LiveVhost,
) -> Result<Vec<String>, Vec<Diagnostic>> {
    let registry = SourceFile {
        path: registry_path.to_path_buf(),
        text: imported.registry.clone(),
    };
    let topology = imported
        .topology
        .iter()
        .map(|text| SourceFile {
            path: topology_path(registry_path),
            text: text.clone(),
        })
        .collect();
    let desired = load_inputs(registry, topology)?.desired_state();
    let planned = plan(&desired, &live.state, PlanOptions::default());
    Ok(planned
        .changes
        .iter()
        .filter(|c| c.action != Action::Adopt)
        .map(|c| format!("{} {}: {}", c.action.symbol(), c.id, c.cause))
        .collect())
}

/// The bus exchange: the one named (which must exist), else the topic exchange most queues
/// are bound to.
fn bus_exchange(state: &ObservedState, named: Option<&str>) -> Result<String, String> {
    let exchanges = &state.topology.exchanges;
    if let Some(name) = named {
        return match exchanges.get(name) {
            Some(_) => Ok(name.to_string()),
            None => Err(format!(
                "exchange {name:?} does not exist in vhost {:?}\nhint: {}",
                state.vhost,
                candidates_hint(state)
            )),
        };
    }
    let bound = |name: &str| {
        state
            .topology
            .bindings
            .iter()
            .filter(|b| b.source == name && b.destination_type == DestinationType::Queue)
            .map(|b| &b.destination)
            .collect::<BTreeSet<_>>()
            .len()
    };
    let mut topics: Vec<(usize, &String)> = exchanges
        .values()
        .filter(|e| e.kind == ExchangeKind::Topic && !is_builtin_or_own_exchange(&e.name))
        .map(|e| (bound(&e.name), &e.name))
        .filter(|(n, _)| *n > 0)
        .collect();
    topics.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    match topics.as_slice() {
        [] => Err(format!(
            "vhost {:?} has no topic exchange with queues bound to it\nhint: {}",
            state.vhost,
            candidates_hint(state)
        )),
        [(n, _), (m, _), ..] if n == m => Err(format!(
            "topic exchanges {} and {} have as many queues bound ({n}): god cannot tell which is the bus\nhint: name it with --exchange",
            topics[0].1, topics[1].1
        )),
        [(_, name), ..] => Ok((*name).clone()),
    }
}

fn candidates_hint(state: &ObservedState) -> String {
    let names: Vec<&str> = state
        .topology
        .exchanges
        .keys()
        .map(String::as_str)
        .filter(|n| !is_builtin_or_own_exchange(n))
        .collect();
    if names.is_empty() {
        "the vhost has no exchange of its own: is RABBITMQ_URL's vhost the right one?".to_string()
    } else {
        format!(
            "name the bus exchange with --exchange (exchanges here: {})",
            names.join(", ")
        )
    }
}

/// The default exchange, RabbitMQ's `amq.*` and god's `god.*`.
fn is_builtin_or_own_exchange(name: &str) -> bool {
    name.is_empty() || name.starts_with("amq.") || name.starts_with(POLICY_PREFIX)
}

/// Why a queue is left out, if it is.
fn left_out_queue(queue: &QueueSpec, retry_queues: &BTreeSet<String>) -> Option<&'static str> {
    let name = queue.name.as_str();
    if name.starts_with("amq.gen-") {
        Some("server-named: a client's own queue, declared again at each connection")
    } else if name.starts_with(POLICY_PREFIX) || name.ends_with(MIGRATION_HOLDING_SUFFIX) {
        Some("god's own")
    } else if retry_queues.contains(name) {
        Some("god's retry queue: written as its service's retry")
    } else if queue.auto_delete {
        Some("auto-delete: a client's temporary queue, gone with its last consumer")
    } else {
        None
    }
}

/// A service queue as it is written.
#[derive(Debug, Clone, PartialEq)]
struct ServiceQueue {
    name: String,
    keys: Vec<String>,
    settings: QueueSettings,
    arguments: Arguments,
    dead_letter: DeadLetter,
    retry: Vec<String>,
}

/// How a service queue dead-letters, as the registry says it.
#[derive(Debug, Clone, PartialEq)]
enum DeadLetter {
    /// Into `<queue>_dlq` (the registry's default), of this type when it differs.
    Default(Option<QueueType>),
    /// Into the queue named, of this type when it differs.
    Named(String, Option<QueueType>),
    /// Not at all (`dead_letter: false`): any dead-letter arguments stay in `arguments`.
    Off,
}

impl ServiceQueue {
    /// The service queue without its name and keys: what queues grouped into one service share.
    fn shape(&self) -> (QueueSettings, Arguments, DeadLetter, Vec<String>) {
        let dead_letter = match &self.dead_letter {
            DeadLetter::Named(_, t) => DeadLetter::Named(String::new(), *t),
            other => other.clone(),
        };
        (
            self.settings.clone(),
            self.arguments.clone(),
            dead_letter,
            self.retry.clone(),
        )
    }
}

/// One service of the written registry.
#[derive(Debug, Clone)]
struct ServiceOut {
    id: String,
    queues: Vec<ServiceQueue>,
    prefetch: Option<u64>,
}

/// The vhost sorted out: what is left out, which queues are dead-letter queues of which.
struct Scan<'a> {
    live: &'a LiveVhost,
    bus: &'a str,
    /// Queues that may be written (not left out).
    queues: BTreeMap<&'a str, &'a QueueSpec>,
    /// The keys of each queue's plain bindings from the bus exchange (no arguments).
    bus_keys: BTreeMap<&'a str, Vec<String>>,
    /// Dead-letter queue → the one queue dead-lettering into it.
    dead_letter_queues: BTreeMap<String, String>,
    /// Service queue → its retry delays, for the queues god's retry serves.
    retries: BTreeMap<String, Vec<String>>,
    left_out: Vec<(String, String)>,
    notes: Vec<(String, String)>,
}

impl<'a> Scan<'a> {
    fn new(live: &'a LiveVhost, bus: &'a str) -> Self {
        let state = &live.state;
        let (retries, retry_queues) = retries(state);
        let mut left_out: Vec<(String, String)> = live
            .exclusive
            .iter()
            .map(|q| {
                let why = "exclusive: it lives and dies with its connection";
                (format!("queue/{q}"), why.to_string())
            })
            .collect();
        let mut queues = BTreeMap::new();
        for (name, queue) in &state.topology.queues {
            if let Some(why) = state.unavailable.get(name) {
                left_out.push((
                    format!("queue/{name}"),
                    format!("unavailable ({why}): import again once its node is back"),
                ));
            } else if let Some(why) = left_out_queue(queue, &retry_queues) {
                left_out.push((format!("queue/{name}"), why.to_string()));
            } else {
                queues.insert(name.as_str(), queue);
            }
        }
        let own = |kind: &str, name: &String| {
            name.starts_with(POLICY_PREFIX)
                .then(|| (format!("{kind}/{name}"), "god's own".to_string()))
        };
        let topology = &state.topology;
        left_out.extend(topology.exchanges.keys().filter_map(|n| own("exchange", n)));
        left_out.extend(topology.policies.keys().filter_map(|n| own("policy", n)));
        let mut bus_keys: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for b in topology
            .bindings
            .iter()
            .filter(|b| is_plain_bus_binding(b, bus))
        {
            let keys = bus_keys.entry(b.destination.as_str()).or_default();
            keys.push(b.routing_key.clone());
        }
        let mut scan = Scan {
            live,
            bus,
            queues,
            bus_keys,
            dead_letter_queues: BTreeMap::new(),
            retries,
            left_out,
            notes: Vec::new(),
        };
        scan.dead_letter_queues = scan.find_dead_letter_queues();
        scan
    }

    /// The keys of a queue's plain bindings from the bus exchange (no arguments).
    fn bus_keys(&self, queue: &str) -> Vec<String> {
        self.bus_keys.get(queue).cloned().unwrap_or_default()
    }

    /// Dead-letter queues: queues that exactly one queue bound to the bus dead-letters into
    /// through the default exchange, that are not bound to the bus themselves, do not
    /// dead-letter further, and have no arguments but their type (what the registry gives a
    /// dead-letter queue).
    fn find_dead_letter_queues(&self) -> BTreeMap<String, String> {
        let mut senders: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, queue) in &self.queues {
            let retried = self.retries.contains_key(*name);
            let target = if retried {
                Some(format!("{name}_dlq"))
            } else {
                let topology = &self.live.state.topology;
                topology.dead_letter_queue_of(queue).map(str::to_string)
            };
            if let Some(target) = target {
                senders.entry(target).or_default().push(name.to_string());
            }
        }
        senders
            .into_iter()
            .filter_map(|(dlq, from)| match from.as_slice() {
                [one] if self.is_dead_letter_queue_shape(&dlq, one) => Some((dlq, one.clone())),
                _ => None,
            })
            .collect()
    }

    fn is_dead_letter_queue_shape(&self, dlq: &str, of: &str) -> bool {
        let Some(queue) = self.queues.get(dlq) else {
            return false;
        };
        let mut extra = queue.identity_arguments();
        extra.remove(QUEUE_TYPE_ARG);
        for argument in DECLARATION_ONLY_ARGUMENTS {
            extra.remove(argument);
        }
        dlq != of
            && !self.bus_keys(of).is_empty()
            && self.bus_keys(dlq).is_empty()
            && queue.durable
            && queue.dead_letter_arguments().is_empty()
            && extra.is_empty()
    }

    /// The queues bound to the bus that are not dead-letter queues, as services.
    fn services(&self) -> Vec<ServiceOut> {
        let service_queues: Vec<ServiceQueue> = self
            .queues
            .values()
            .filter(|q| q.durable && !self.dead_letter_queues.contains_key(&q.name))
            .filter_map(|q| self.service_queue(q))
            .collect();
        let mut grouped: BTreeMap<String, Vec<ServiceQueue>> = BTreeMap::new();
        let mut alone = Vec::new();
        for queue in service_queues {
            match group_of(&queue) {
                Some(group) => grouped.entry(group.to_string()).or_default().push(queue),
                None => alone.push(vec![queue]),
            }
        }
        for (_, members) in grouped {
            if members.len() > 1 && self.may_group(&members) {
                alone.push(members);
            } else {
                alone.extend(members.into_iter().map(|q| vec![q]));
            }
        }
        let mut taken = BTreeSet::new();
        let mut services: Vec<ServiceOut> = alone
            .into_iter()
            .map(|queues| {
                let id = unique_id(service_id(&queues, self.bus), &mut taken);
                let prefetch = self.prefetch_of(&queues);
                ServiceOut {
                    id,
                    queues,
                    prefetch,
                }
            })
            .collect();
        services.sort_by(|a, b| a.id.cmp(&b.id));
        services
    }

    /// A queue bound to the bus as a service queue: its keys, settings by name, other
    /// arguments, dead-lettering and retry.
    fn service_queue(&self, queue: &QueueSpec) -> Option<ServiceQueue> {
        let keys = self.bus_keys(&queue.name);
        if keys.is_empty() {
            return None;
        }
        let (settings, mut arguments) = QueueSettings::from_arguments(&queue.arguments);
        let own_type = queue.queue_type();
        let dlq = self
            .dead_letter_queues
            .iter()
            .find(|(_, of)| **of == queue.name)
            .map(|(dlq, _)| dlq.clone());
        let dead_letter = match dlq {
            Some(dlq) => {
                arguments.remove(DLX_ARG);
                arguments.remove(DLK_ARG);
                let dlq_type = self.queues[dlq.as_str()].queue_type();
                let other_type = (dlq_type != own_type).then_some(dlq_type);
                if dlq == format!("{}_dlq", queue.name) {
                    DeadLetter::Default(other_type)
                } else {
                    DeadLetter::Named(dlq, other_type)
                }
            }
            None => DeadLetter::Off,
        };
        let retry = self.retries.get(&queue.name).cloned().unwrap_or_default();
        Some(ServiceQueue {
            name: queue.name.clone(),
            keys,
            settings,
            arguments,
            dead_letter,
            retry,
        })
    }

    /// Whether queues of one naming group may be one service: each bound by one key, all of one
    /// shape, and no two of them consumed only by different connections.
    fn may_group(&self, members: &[ServiceQueue]) -> bool {
        let one_key = members.iter().all(|q| q.keys.len() == 1);
        let first = members[0].shape();
        let one_shape = members.iter().all(|q| q.shape() == first);
        let named_dlq = matches!(first.2, DeadLetter::Named(..));
        let connections: Vec<BTreeSet<&str>> = members
            .iter()
            .map(|q| self.connections_of(&q.name))
            .filter(|c| !c.is_empty())
            .collect();
        let shared_reader = connections
            .iter()
            .all(|c| connections.iter().all(|d| !c.is_disjoint(d)));
        one_key && one_shape && !named_dlq && shared_reader
    }

    fn connections_of(&self, queue: &str) -> BTreeSet<&str> {
        self.live
            .consumers
            .get(queue)
            .into_iter()
            .flatten()
            .map(|c| c.connection.as_str())
            .collect()
    }

    /// The prefetch of a service's consumers, when they all use the same one.
    fn prefetch_of(&self, queues: &[ServiceQueue]) -> Option<u64> {
        let prefetches: BTreeSet<u64> = queues
            .iter()
            .filter_map(|q| self.live.consumers.get(&q.name))
            .flatten()
            .map(|c| c.prefetch)
            .collect();
        match prefetches.into_iter().collect::<Vec<_>>().as_slice() {
            [one] if *one > 0 => Some(*one),
            _ => None,
        }
    }

    /// What the registry does not say: other exchanges, queues that are not services or their
    /// dead-letter queues, bindings other than the services' plain bus bindings, policies,
    /// operator policies and limits.
    fn topology(&mut self, services: &[ServiceOut]) -> Map<String, Value> {
        let state = &self.live.state;
        let in_registry: BTreeSet<&str> = services
            .iter()
            .flat_map(|s| s.queues.iter().map(|q| q.name.as_str()))
            .chain(self.dead_letter_queues.keys().map(String::as_str))
            .collect();
        let kept: Vec<&ExchangeSpec> = state
            .topology
            .exchanges
            .values()
            .filter(|e| e.name != self.bus && !is_builtin_or_own_exchange(&e.name))
            .collect();
        let known: BTreeSet<&str> = kept.iter().map(|e| e.name.as_str()).collect();
        let kept_exchange =
            |name: &str| name == self.bus || name.starts_with("amq.") || known.contains(name);
        let mut notes = Vec::new();
        let mut reference = |object: String, exchange: &str| {
            let known = kept_exchange(exchange) || exchange.is_empty();
            if !known {
                let why = format!(
                    "names exchange {exchange:?}, which the vhost does not hold: written as a raw argument"
                );
                notes.push((object, why));
            }
            known
        };
        let exchanges: Map<String, Value> = kept
            .iter()
            .map(|e| {
                let value = exchange_value(e, |x| reference(format!("exchange/{}", e.name), x));
                (e.name.clone(), value)
            })
            .collect();
        let standalone: BTreeMap<&str, &QueueSpec> = self
            .queues
            .iter()
            .filter(|(name, _)| !in_registry.contains(**name))
            .map(|(name, q)| (*name, *q))
            .collect();
        let mut queue_bindings: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        let mut bindings = Vec::new();
        for b in &state.topology.bindings {
            let to_queue = b.destination_type == DestinationType::Queue;
            let destination_known = if to_queue {
                self.queues.contains_key(b.destination.as_str())
            } else {
                kept_exchange(&b.destination)
            };
            if !kept_exchange(&b.source) || !destination_known {
                continue;
            }
            if to_queue && in_registry.contains(b.destination.as_str()) {
                if !is_plain_bus_binding(b, self.bus) {
                    bindings.push(binding_value(b));
                }
            } else if to_queue {
                queue_bindings
                    .entry(b.destination.as_str())
                    .or_default()
                    .push(queue_binding_value(b));
            } else {
                bindings.push(binding_value(b));
            }
        }
        let queues: Map<String, Value> = standalone
            .into_iter()
            .map(|(name, q)| {
                let bound = queue_bindings.remove(name).unwrap_or_default();
                let known = |x: &str| reference(format!("queue/{name}"), x);
                (name.to_string(), queue_value(q, bound, known))
            })
            .collect();
        self.notes.extend(notes);
        let mut out = Map::new();
        let mut put = |key: &str, value: Value, empty: bool| {
            if !empty {
                out.insert(key.to_string(), value);
            }
        };
        put("exchanges", json!(exchanges), exchanges.is_empty());
        put("queues", json!(queues), queues.is_empty());
        put("bindings", json!(bindings), bindings.is_empty());
        let policies = policies_value(&state.topology.policies);
        put("policies", json!(policies), policies.is_empty());
        let operator = policies_value(&state.topology.operator_policies);
        put("operator_policies", json!(operator), operator.is_empty());
        let limits = limits_value(&state.topology.limits);
        put("limits", json!(limits), limits.is_empty());
        out
    }
}

/// The retry god's `retry:` set up: service queue → its delays, and every queue of it
/// (inbox and stages). A queue Q is retried when it dead-letters into `Q.retry` and
/// `Q.retry.1` exists; its stages are `Q.retry.1` and up, each delay its TTL.
fn retries(state: &ObservedState) -> (BTreeMap<String, Vec<String>>, BTreeSet<String>) {
    let queues = &state.topology.queues;
    let mut delays = BTreeMap::new();
    let mut members = BTreeSet::new();
    for (name, queue) in queues {
        let inbox = format!("{name}.retry");
        let target = queue.arguments.get(DLK_ARG).and_then(Value::as_str);
        if target != Some(inbox.as_str()) || !queues.contains_key(&inbox) {
            continue;
        }
        let stages: Vec<(String, u64)> = (1..)
            .map(|i| format!("{inbox}.{i}"))
            .map_while(|stage| {
                let ttl = queues
                    .get(&stage)?
                    .arguments
                    .get("x-message-ttl")?
                    .as_u64()?;
                Some((stage, ttl))
            })
            .collect();
        if stages.is_empty() {
            continue;
        }
        let written = stages.iter().map(|(_, ms)| format_millis(*ms)).collect();
        delays.insert(name.clone(), written);
        members.insert(inbox);
        members.extend(stages.into_iter().map(|(stage, _)| stage));
    }
    (delays, members)
}

fn is_plain_bus_binding(binding: &BindingSpec, bus: &str) -> bool {
    binding.source == bus
        && binding.destination_type == DestinationType::Queue
        && binding.arguments.is_empty()
}

/// The naming group of a queue that may share a service: `<group>` of `services.<group>.<name>`.
fn group_of(queue: &ServiceQueue) -> Option<&str> {
    let rest = queue.name.strip_prefix(GROUP_PREFIX)?;
    let (group, name) = rest.split_once('.')?;
    (!group.is_empty() && !name.is_empty()).then_some(group)
}

/// A service's id from its queue names: a group's name, else the queue's name without the
/// bus exchange's or `services.` prefix and the `_queue` suffix, words joined by `-`
/// (`services.fireflies.transcript_processor` → `fireflies-transcript-processor`,
/// `event_store_manager_queue` → `event-store-manager`).
fn service_id(queues: &[ServiceQueue], bus: &str) -> String {
    if queues.len() > 1
        && let Some(group) = group_of(&queues[0])
    {
        return group.to_string();
    }
    let name = queues[0].name.as_str();
    let name = name
        .strip_prefix(&format!("{bus}."))
        .or_else(|| name.strip_prefix(GROUP_PREFIX))
        .unwrap_or(name);
    let name = ["_queue", ".queue", "-queue"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name);
    let words: Vec<&str> = name
        .split(['.', '_', '-', ' ', ':', '/'])
        .filter(|w| !w.is_empty())
        .collect();
    match words.join("-") {
        id if id.is_empty() => "service".to_string(),
        id => id,
    }
}

/// `id`, or `id-2`, `id-3`… when taken.
fn unique_id(id: String, taken: &mut BTreeSet<String>) -> String {
    let unique = (1..)
        .map(|i| match i {
            1 => id.clone(),
            n => format!("{id}-{n}"),
        })
        .find(|candidate| !taken.contains(candidate))
        .expect("some suffix is free");
    taken.insert(unique.clone());
    unique
}

/// An exchange of the topology file; `known` says whether its alternate exchange is written
/// too (else it stays a raw argument, which god does not check).
fn exchange_value(e: &ExchangeSpec, mut known: impl FnMut(&str) -> bool) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), json!(e.kind));
    if !e.durable {
        out.insert("durable".into(), json!(false));
    }
    if e.auto_delete {
        out.insert("auto_delete".into(), json!(true));
    }
    if e.internal {
        out.insert("internal".into(), json!(true));
    }
    let mut arguments = e.arguments.clone();
    let alternate = arguments.get("alternate-exchange").and_then(Value::as_str);
    if alternate.is_some_and(&mut known) {
        let alternate = arguments.remove("alternate-exchange").unwrap_or_default();
        out.insert("alternate_exchange".into(), alternate);
    }
    if !arguments.is_empty() {
        out.insert("arguments".into(), json!(arguments));
    }
    Value::Object(out)
}

/// Arguments a topology queue names as keys of its own.
const NAMED_QUEUE_ARGUMENTS: [(&str, &str); 7] = [
    ("x-message-ttl", "message_ttl"),
    ("x-expires", "expires"),
    ("x-max-length", "max_length"),
    ("x-max-length-bytes", "max_length_bytes"),
    ("x-overflow", "overflow"),
    (DLX_ARG, "dead_letter_exchange"),
    (DLK_ARG, "dead_letter_routing_key"),
];

/// A standalone queue of the topology file; `known` says whether its dead-letter exchange is
/// written by name (else its dead-letter arguments stay raw arguments).
fn queue_value(q: &QueueSpec, bindings: Vec<Value>, known: impl FnOnce(&str) -> bool) -> Value {
    let mut out = Map::new();
    if !q.durable {
        out.insert("durable".into(), json!(false));
    }
    let (settings, mut arguments) = QueueSettings::from_arguments(&q.arguments);
    if let Value::Object(named) = json!(settings) {
        out.extend(named.into_iter().filter(|(_, v)| !v.is_null()));
    }
    let dead_letter_exchange = arguments.get(DLX_ARG).and_then(Value::as_str);
    let named = NAMED_QUEUE_ARGUMENTS.iter();
    let named: Vec<_> = if dead_letter_exchange.is_some_and(known) {
        named.collect()
    } else {
        named
            .filter(|(a, _)| ![DLX_ARG, DLK_ARG].contains(a))
            .collect()
    };
    for (argument, key) in named {
        if let Some(value) = arguments.remove(*argument) {
            out.insert((*key).into(), value);
        }
    }
    if !arguments.is_empty() {
        out.insert("arguments".into(), json!(arguments));
    }
    if !bindings.is_empty() {
        out.insert("bindings".into(), Value::Array(bindings));
    }
    Value::Object(out)
}

fn queue_binding_value(b: &BindingSpec) -> Value {
    let mut out = Map::new();
    out.insert("exchange".into(), json!(b.source));
    out.insert("routing_key".into(), json!(b.routing_key));
    if !b.arguments.is_empty() {
        out.insert("arguments".into(), json!(b.arguments));
    }
    Value::Object(out)
}

fn binding_value(b: &BindingSpec) -> Value {
    let mut out = Map::new();
    out.insert("source".into(), json!(b.source));
    out.insert("destination".into(), json!(b.destination));
    if b.destination_type == DestinationType::Exchange {
        out.insert("destination_type".into(), json!("exchange"));
    }
    out.insert("routing_key".into(), json!(b.routing_key));
    if !b.arguments.is_empty() {
        out.insert("arguments".into(), json!(b.arguments));
    }
    Value::Object(out)
}

/// Policies other than god's own, as a topology file writes them.
fn policies_value(policies: &BTreeMap<String, PolicySpec>) -> Map<String, Value> {
    policies
        .values()
        .filter(|p| !p.name.starts_with(POLICY_PREFIX))
        .map(|p| {
            let value = json!({
                "pattern": p.pattern,
                "apply_to": p.apply_to,
                "priority": p.priority,
                "definition": p.definition,
            });
            (p.name.clone(), value)
        })
        .collect()
}

fn limits_value(limits: &BTreeMap<String, i64>) -> Map<String, Value> {
    limits
        .iter()
        .filter_map(|(name, value)| {
            let key = match name.as_str() {
                "max-queues" => "max_queues",
                "max-connections" => "max_connections",
                _ => return None,
            };
            Some((key.to_string(), json!(value)))
        })
        .collect()
}

/// The registry's text: the upstream layout (header, version, exchange, services, then
/// event_subscriptions), each service's keys in the upstream order, god's keys after them.
fn registry_text(bus: &str, state: &ObservedState, services: &[ServiceOut]) -> String {
    let vhost = state.vhost.as_str();
    let exchange = &state.topology.exchanges[bus];
    let mut text = String::from(
        "# Bloodbank Subscriber Services Registry\n\
         #\n\
         # Written by `god import registry` from a live vhost: one service per queue bound to\n\
         # the bus exchange, dead-letter queues from their x-dead-letter-* arguments. Names and\n\
         # descriptions are guesses: edit them. `god plan` should only adopt what exists.\n\n\
         version: \"1.0\"\n",
    );
    if vhost != "/" {
        text.push_str(&format!("vhost: {}\n", quoted(vhost)));
    }
    text.push_str("\n# Exchange configuration\n");
    let exchange_block = json!({"exchange": {
        "name": exchange.name,
        "type": exchange.kind,
        "durable": exchange.durable,
    }});
    text.push_str(&topology_text(&exchange_block));
    text.push_str("\n# Service definitions\nservices:\n");
    let blocks: Vec<String> = services
        .iter()
        .map(|s| block(&json!({ s.id.clone(): service_value(s) }), 2))
        .collect();
    text.push_str(&blocks.join("\n"));
    let mut subscriptions: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in services {
        for key in s.queues.iter().flat_map(|q| &q.keys) {
            let subscribers = subscriptions.entry(key.as_str()).or_default();
            if !subscribers.contains(&s.id.as_str()) {
                subscribers.push(&s.id);
            }
        }
    }
    if !subscriptions.is_empty() {
        text.push_str("\n# Event type to consuming services mapping\n");
        text.push_str(&topology_text(
            &json!({ "event_subscriptions": subscriptions }),
        ));
    }
    text
}

fn service_value(service: &ServiceOut) -> Value {
    let first = &service.queues[0];
    let names: Vec<&str> = service.queues.iter().map(|q| q.name.as_str()).collect();
    let mut out = Map::new();
    out.insert("name".into(), json!(service.id));
    out.insert(
        "description".into(),
        json!(format!(
            "Reads {} {} (imported from the live broker)",
            if names.len() == 1 { "queue" } else { "queues" },
            names.join(", ")
        )),
    );
    out.insert("type".into(), json!("event-consumer"));
    if names.len() == 1 {
        out.insert("queue_name".into(), json!(first.name));
    } else {
        out.insert("queue_names".into(), json!(names));
    }
    let keys: Vec<&String> = service.queues.iter().flat_map(|q| &q.keys).collect();
    out.insert("routing_keys".into(), json!(keys));
    out.insert("status".into(), json!("active"));
    if let Value::Object(named) = json!(first.settings) {
        let set = named.into_iter().filter(|(_, v)| !v.is_null());
        out.extend(set.filter(|(k, _)| k != "dead_letter_queue_type"));
    }
    match &first.dead_letter {
        DeadLetter::Default(other_type) => dead_letter_type(&mut out, *other_type),
        DeadLetter::Named(dlq, other_type) => {
            out.insert("dead_letter".into(), json!(dlq));
            dead_letter_type(&mut out, *other_type);
        }
        DeadLetter::Off if first.settings.queue_type == Some(QueueType::Stream) => {}
        DeadLetter::Off => {
            out.insert("dead_letter".into(), json!(false));
        }
    }
    if !first.arguments.is_empty() {
        out.insert("arguments".into(), json!(first.arguments));
    }
    if let Some(prefetch) = service.prefetch {
        out.insert("prefetch".into(), json!(prefetch));
    }
    if !first.retry.is_empty() {
        out.insert("retry".into(), json!(first.retry));
    }
    Value::Object(out)
}

fn dead_letter_type(out: &mut Map<String, Value>, other_type: Option<QueueType>) {
    if let Some(t) = other_type {
        out.insert("dead_letter_queue_type".into(), json!(t.as_str()));
    }
}

/// A YAML document of `value` (an object), in block style.
fn topology_text(value: &Value) -> String {
    block(value, 0)
}

/// `value` in YAML block style at `indent` spaces: strings double-quoted (a JSON string is a
/// YAML double-quoted scalar), lists indented under their key as the upstream writes them.
fn block(value: &Value, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    let Value::Object(map) = value else {
        return format!("{pad}{}\n", scalar(value));
    };
    for (key, v) in map {
        let key = yaml_key(key);
        match v {
            Value::Object(m) if !m.is_empty() => {
                out.push_str(&format!("{pad}{key}:\n{}", block(v, indent + 2)));
            }
            Value::Array(items) if !items.is_empty() => {
                out.push_str(&format!("{pad}{key}:\n"));
                for item in items {
                    out.push_str(&list_item(item, indent + 2));
                }
            }
            _ => out.push_str(&format!("{pad}{key}: {}\n", scalar(v))),
        }
    }
    out
}

/// One list item: a scalar after its dash, or an object whose first key follows the dash.
fn list_item(item: &Value, indent: usize) -> String {
    let pad = " ".repeat(indent);
    match item {
        Value::Object(m) if !m.is_empty() => {
            let inner = block(item, indent + 2);
            format!("{pad}- {}", &inner[indent + 2..])
        }
        _ => format!("{pad}- {}\n", scalar(item)),
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => quoted(s),
        Value::Object(m) if m.is_empty() => "{}".to_string(),
        Value::Array(a) if a.is_empty() => "[]".to_string(),
        other => other.to_string(),
    }
}

fn quoted(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// A key plain when YAML reads it back as the same string, else double-quoted.
fn yaml_key(key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !matches!(
            key.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
        );
    if plain { key.to_string() } else { quoted(key) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A vhost with the bus `bus` and these queues (name, arguments, bus keys).
    fn vhost(queues: &[(&str, Value, &[&str])]) -> LiveVhost {
        let mut state = ObservedState {
            vhost: "/".into(),
            ..ObservedState::default()
        };
        let bus = ExchangeSpec {
            name: "bus".into(),
            kind: "topic".into(),
            durable: true,
            auto_delete: false,
            internal: false,
            arguments: Arguments::new(),
        };
        state.topology.exchanges.insert("bus".into(), bus);
        for (name, arguments, keys) in queues {
            let queue = QueueSpec {
                name: name.to_string(),
                durable: true,
                auto_delete: false,
                arguments: serde_json::from_value(arguments.clone()).unwrap(),
            };
            state.topology.queues.insert(name.to_string(), queue);
            for key in *keys {
                let binding = BindingSpec::queue("bus", name, key);
                state.topology.bindings.insert(binding);
            }
        }
        LiveVhost {
            state,
            ..LiveVhost::default()
        }
    }

    fn imported(live: &LiveVhost) -> Imported {
        let imported = import(live, None).unwrap();
        let differences = differences(&imported, Path::new("registry.yaml"), live).unwrap();
        assert!(
            differences.is_empty(),
            "{differences:?}\n{}",
            imported.registry
        );
        imported
    }

    fn consumer(connection: &str) -> Vec<Consumer> {
        let connection = connection.to_string();
        vec![Consumer {
            connection,
            prefetch: 10,
        }]
    }

    #[test]
    fn service_ids_follow_the_upstream_names() {
        let id = |name: &str| {
            let live = vhost(&[(name, json!({}), &["k"])]);
            let registry = imported(&live).registry;
            let start = registry.find("\nservices:\n  ").unwrap() + 13;
            registry[start..].split(':').next().unwrap().to_string()
        };
        assert_eq!(id("event_store_manager_queue"), "event-store-manager");
        assert_eq!(
            id("services.fireflies.transcript_processor"),
            "fireflies-transcript-processor"
        );
        assert_eq!(
            id("bus.bloodbank-ws-broadcaster"),
            "bloodbank-ws-broadcaster"
        );
        assert_eq!(id("agent.commands"), "agent-commands");
    }

    #[test]
    fn a_naming_group_is_one_service_unless_different_connections_read_it() {
        let queues: &[(&str, Value, &[&str])] = &[
            (
                "services.agent.feedback_router",
                json!({}),
                &["agent.feedback.requested"],
            ),
            (
                "services.agent.voice_soprano",
                json!({}),
                &["agent.*.message.*"],
            ),
        ];
        let mut live = vhost(queues);
        let registry = imported(&live).registry;
        assert!(registry.contains("  agent:\n"), "{registry}");
        assert!(registry.contains("    queue_names:\n"), "{registry}");
        assert!(
            !registry.contains("    prefetch"),
            "no consumers, no prefetch"
        );

        live.consumers
            .insert("services.agent.feedback_router".into(), consumer("c1"));
        live.consumers
            .insert("services.agent.voice_soprano".into(), consumer("c1"));
        let registry = imported(&live).registry;
        assert!(
            registry.contains("  agent:\n") && registry.contains("    prefetch: 10\n"),
            "{registry}"
        );

        live.consumers
            .insert("services.agent.voice_soprano".into(), consumer("c2"));
        let registry = imported(&live).registry;
        assert!(
            registry.contains("  agent-feedback-router:\n"),
            "{registry}"
        );
        assert!(registry.contains("  agent-voice-soprano:\n"), "{registry}");
        assert!(!registry.contains("queue_names"), "{registry}");
    }

    #[test]
    fn dead_letter_queues_are_recognised_by_name_type_and_shape() {
        let to =
            |dlq: &str| json!({"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq});
        let live = vhost(&[
            ("a", to("a_dlq"), &["a.#"]),
            ("a_dlq", json!({}), &[]),
            ("b", to("parked"), &["b.#"]),
            ("parked", json!({"x-queue-type": "quorum"}), &[]),
            ("c", to("c_dlq"), &["c.#"]),
            ("c_dlq", json!({"x-message-ttl": 1000}), &[]),
        ]);
        let imported = imported(&live);
        let registry = &imported.registry;
        let service = |id: &str| {
            let start = registry.find(&format!("  {id}:\n")).unwrap();
            registry[start..].split("\n\n").next().unwrap().to_string()
        };
        assert!(!service("a").contains("dead_letter"), "{registry}");
        assert!(
            service("b")
                .contains("    dead_letter: \"parked\"\n    dead_letter_queue_type: \"quorum\""),
            "{registry}"
        );
        // c_dlq has a TTL a registry's dead-letter queue cannot have: a queue of its own, and
        // c keeps its arguments.
        assert!(
            service("c")
                .contains("dead_letter: false\n    arguments:\n      x-dead-letter-exchange: \"\""),
            "{registry}"
        );
        assert!(
            imported
                .topology
                .unwrap()
                .contains("  c_dlq:\n    message_ttl: 1000\n")
        );
        assert_eq!(imported.dead_letter_queues, 2);
    }

    #[test]
    fn gods_retry_is_written_as_retry_and_its_queues_left_out() {
        let live = vhost(&[
            (
                "q",
                json!({"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "q.retry"}),
                &["q.#"],
            ),
            ("q.retry", json!({}), &[]),
            (
                "q.retry.1",
                json!({"x-message-ttl": 5000, "x-dead-letter-exchange": "god.retry"}),
                &[],
            ),
            (
                "q.retry.2",
                json!({"x-message-ttl": 120000, "x-dead-letter-exchange": "god.retry"}),
                &[],
            ),
            ("q_dlq", json!({}), &[]),
        ]);
        let imported = import(&live, None).unwrap();
        assert!(
            imported
                .registry
                .contains("    retry:\n      - \"5s\"\n      - \"2m\"\n"),
            "{}",
            imported.registry
        );
        assert!(
            !imported.registry.contains("dead_letter"),
            "{}",
            imported.registry
        );
        let left: Vec<&str> = imported.left_out.iter().map(|(o, _)| o.as_str()).collect();
        assert_eq!(
            left,
            ["queue/q.retry", "queue/q.retry.1", "queue/q.retry.2"]
        );
        assert!(imported.topology.is_none());
    }

    #[test]
    fn written_yaml_reads_back_as_the_same_document() {
        let value = json!({
            "plain": "x",
            "needs quotes": "a \"b\" \\ c",
            "#": [{"k": 1, "m": {"n": true}}, "s"],
            "yes": null,
            "empty": {},
            "none": [],
        });
        let text = topology_text(&value);
        let parsed = crate::inputs::yaml::parse(&text).unwrap().value;
        assert_eq!(parsed, value, "{text}");
    }
}
