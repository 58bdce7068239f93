//! The inference rules of `god import registry`: which exchange is the bus, which queues make
//! a service and which are its dead-letter queues, how services are named and grouped, what is
//! left out, and what goes to `topology/imported.yaml` instead.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::services::{DeadLetter, ServiceOut, ServiceQueue};
use super::shape::{
    binding_value, exchange_value, limits_value, policies_value, queue_binding_value, queue_value,
};
use super::vhost::LiveVhost;
use crate::model::duration::format_millis;
use crate::model::queue_type::{DECLARATION_ONLY_ARGUMENTS, QUEUE_TYPE_ARG, QueueSettings};
use crate::model::{
    BindingSpec, DLK_ARG, DLX_ARG, DestinationType, ExchangeKind, ExchangeSpec, ObservedState,
    POLICY_PREFIX, QueueSpec,
};
use crate::plan::MIGRATION_HOLDING_SUFFIX;

/// The prefix of the queue names that are grouped into one service (`services.<group>.<name>`).
const GROUP_PREFIX: &str = "services.";

/// The bus exchange: the one named (which must exist), else the topic exchange most queues
/// are bound to.
pub(super) fn bus_exchange(state: &ObservedState, named: Option<&str>) -> Result<String, String> {
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

/// The vhost sorted out: what is left out, which queues are dead-letter queues of which.
pub(super) struct Scan<'a> {
    live: &'a LiveVhost,
    bus: &'a str,
    /// Queues that may be written (not left out).
    queues: BTreeMap<&'a str, &'a QueueSpec>,
    /// The keys of each queue's plain bindings from the bus exchange (no arguments).
    bus_keys: BTreeMap<&'a str, Vec<String>>,
    /// Dead-letter queue → the one queue dead-lettering into it.
    pub(super) dead_letter_queues: BTreeMap<String, String>,
    /// Service queue → its retry delays, for the queues god's retry serves.
    retries: BTreeMap<String, Vec<String>>,
    pub(super) left_out: Vec<(String, String)>,
    pub(super) notes: Vec<(String, String)>,
}

impl<'a> Scan<'a> {
    pub(super) fn new(live: &'a LiveVhost, bus: &'a str) -> Self {
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
        let wiring = self.live.state.topology.wiring();
        for (name, queue) in &self.queues {
            let retried = self.retries.contains_key(*name);
            let target = if retried {
                Some(format!("{name}_dlq"))
            } else {
                wiring.dead_letter_queue_of(queue).map(str::to_string)
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
    pub(super) fn services(&self) -> Vec<ServiceOut> {
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
    pub(super) fn topology(&mut self, services: &[ServiceOut]) -> Map<String, Value> {
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
pub(super) fn retries(state: &ObservedState) -> (BTreeMap<String, Vec<String>>, BTreeSet<String>) {
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
pub(super) fn service_id(queues: &[ServiceQueue], bus: &str) -> String {
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
