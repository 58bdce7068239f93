//! The broker objects god reasons about. Desired and observed state use the same types, so
//! comparing them is plain equality after normalisation.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use arguments::{Arguments, format_arguments, normalize_arguments};
pub use kinds::{ApplyTo, ExchangeKind};

/// The internal exchange whose bindings record what god manages (see the README).
pub const MANAGED_RECORD_EXCHANGE: &str = "god.managed";
/// Prefix of the policies god owns.
pub const POLICY_PREFIX: &str = "god.";
/// Prefix of the per-queue dead-letter policies god sets on queues that exist without them.
pub const DEAD_LETTER_POLICY_PREFIX: &str = "god.dlx.";
/// Prefix of the policy that gives the bus exchange its alternate exchange
/// (`exchange.unroutable`).
pub const UNROUTABLE_POLICY_PREFIX: &str = "god.unroutable.";
/// Priority of god's dead-letter policies: above the usual catch-all policies at 0.
pub const DEAD_LETTER_POLICY_PRIORITY: i64 = 10;
/// The queue argument naming the dead-letter exchange.
pub const DLX_ARG: &str = "x-dead-letter-exchange";
/// The queue argument naming the dead-letter routing key.
pub const DLK_ARG: &str = "x-dead-letter-routing-key";
/// The exclusive queue that serialises `god apply` runs on a vhost.
pub const APPLY_LOCK_QUEUE: &str = "god.apply-lock";

/// An exchange as god declares and compares it (desired and observed alike).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeSpec {
    /// Exchange name.
    pub name: String,
    /// How it routes: topic, direct, fanout, headers or a plugin's type.
    #[serde(rename = "type")]
    pub kind: ExchangeKind,
    /// Survives a broker restart.
    pub durable: bool,
    /// Deleted when its last binding goes.
    pub auto_delete: bool,
    /// Cannot be published to by clients.
    pub internal: bool,
    /// Optional arguments.
    pub arguments: Arguments,
}

/// A queue as god declares and compares it (desired and observed alike).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSpec {
    /// Queue name.
    pub name: String,
    /// Survives a broker restart.
    pub durable: bool,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// Optional arguments (dead-lettering, type, limits).
    pub arguments: Arguments,
}

impl QueueSpec {
    /// The arguments that make up the queue's identity for god: all but those read only at
    /// declaration (where its members and leader go), which a live queue may have got
    /// otherwise without being another queue.
    pub fn identity_arguments(&self) -> Arguments {
        self.arguments
            .iter()
            .filter(|(k, _)| !queue_type::DECLARATION_ONLY_ARGUMENTS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Its type (classic when its arguments name none or one god does not know).
    pub fn queue_type(&self) -> queue_type::QueueType {
        queue_type::QueueType::of(&self.arguments).unwrap_or_default()
    }

    /// The queue its rejected messages go to, when its arguments name one through the default
    /// exchange (`x-dead-letter-exchange: ""` with `x-dead-letter-routing-key`).
    pub fn dead_letter_queue(&self) -> Option<&str> {
        dead_letter_target(&self.arguments, DLX_ARG, DLK_ARG)
    }

    /// The dead-letter arguments alone.
    pub fn dead_letter_arguments(&self) -> Arguments {
        self.arguments
            .iter()
            .filter(|(k, _)| is_dead_letter_argument(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// The queue a dead-letter exchange and key lead to: only the default exchange routes by queue
/// name, so another exchange leads nowhere god can name.
fn dead_letter_target<'a>(settings: &'a Arguments, exchange: &str, key: &str) -> Option<&'a str> {
    if !settings.get(exchange)?.as_str()?.is_empty() {
        return None;
    }
    settings.get(key)?.as_str()
}

fn is_dead_letter_argument(key: &str) -> bool {
    key == DLX_ARG || key == DLK_ARG
}

/// What a binding's destination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationType {
    /// The destination is a queue.
    Queue,
    /// Another exchange.
    Exchange,
}

impl DestinationType {
    /// The word the broker uses.
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationType::Queue => "queue",
            DestinationType::Exchange => "exchange",
        }
    }
}

/// A binding, identified by all of its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingSpec {
    /// Source exchange.
    pub source: String,
    /// Destination queue or exchange.
    pub destination: String,
    /// Queue or exchange.
    pub destination_type: DestinationType,
    /// Routing key (a topic pattern for topic exchanges).
    pub routing_key: String,
    /// Optional arguments.
    pub arguments: Arguments,
}

impl BindingSpec {
    /// A binding of a queue to an exchange with a routing key and no arguments.
    pub fn queue(exchange: &str, queue: &str, routing_key: &str) -> Self {
        Self {
            source: exchange.to_string(),
            destination: queue.to_string(),
            destination_type: DestinationType::Queue,
            routing_key: routing_key.to_string(),
            arguments: Arguments::new(),
        }
    }

    fn sort_key(&self) -> (&str, &str, DestinationType, &str, String) {
        (
            &self.source,
            &self.destination,
            self.destination_type,
            &self.routing_key,
            serde_json::to_string(&self.arguments).unwrap_or_default(),
        )
    }
}

impl Ord for BindingSpec {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

impl PartialOrd for BindingSpec {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A policy or operator policy: settings the broker applies to the objects its pattern matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySpec {
    /// Policy name.
    pub name: String,
    /// Regular expression over object names.
    pub pattern: String,
    /// Which objects it applies to.
    pub apply_to: ApplyTo,
    /// Higher wins when several match.
    pub priority: i64,
    /// The keys it sets.
    pub definition: Arguments,
}

impl PolicySpec {
    /// The queue this policy is god's own policy for (`god.dlx.<queue>`), if it is one.
    pub fn queue_of_own(&self) -> Option<&str> {
        self.name.strip_prefix(DEAD_LETTER_POLICY_PREFIX)
    }

    /// The queue one of god's dead-letter policies sends the rejected messages of its queue to
    /// (through the default exchange), with the name of that queue.
    pub fn dead_letter_route(&self) -> Option<(&str, &str)> {
        let queue = self.name.strip_prefix(DEAD_LETTER_POLICY_PREFIX)?;
        let target = dead_letter_target(
            &self.definition,
            "dead-letter-exchange",
            "dead-letter-routing-key",
        )?;
        Some((queue, target))
    }

    /// God's own policy for `queue`: what it gives the queue beyond its declaration (arguments
    /// given in argument form, `x-dead-letter-exchange`, written as the policy's keys).
    pub fn dead_letter_for(queue: &str, dead_letter: &Arguments) -> Self {
        let definition = dead_letter
            .iter()
            .map(|(k, v)| (k.trim_start_matches("x-").to_string(), v.clone()))
            .collect();
        Self {
            name: format!("{DEAD_LETTER_POLICY_PREFIX}{queue}"),
            pattern: format!("^{}$", regex::escape(queue)),
            apply_to: ApplyTo::Queues,
            priority: DEAD_LETTER_POLICY_PRIORITY,
            definition,
        }
    }
}

/// A limit of a vhost (`max-queues`, `max-connections`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitSpec {
    /// The limit's name as RabbitMQ spells it.
    pub name: String,
    /// Its value (-1: no limit).
    pub value: i64,
}

/// A set of broker objects in one vhost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// Exchanges by name.
    pub exchanges: BTreeMap<String, ExchangeSpec>,
    /// Queues by name.
    pub queues: BTreeMap<String, QueueSpec>,
    /// Bindings, each identified by all of its fields.
    pub bindings: BTreeSet<BindingSpec>,
    /// Policies by name.
    pub policies: BTreeMap<String, PolicySpec>,
    /// Operator policies by name (they cap what policies and clients set).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub operator_policies: BTreeMap<String, PolicySpec>,
    /// Limits of the vhost by name (`max-queues`, `max-connections`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, i64>,
}

/// Where a queue's rejected messages go: a dead-letter exchange (`""`: the default exchange,
/// which routes by queue name) and the routing key they get (None: they keep their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadLetterRoute<'a> {
    /// The dead-letter exchange.
    pub exchange: &'a str,
    /// The dead-letter routing key.
    pub routing_key: Option<&'a str>,
}

/// How god came to manage an object: it created it, or found it already matching and adopted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Declared by god: `--prune` may delete it.
    Created,
    /// Found in place (declared by its service): god manages it but never deletes it.
    Adopted,
}

impl Origin {
    /// The routing key of the record binding that marks this origin.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Created => "created",
            Origin::Adopted => "adopted",
        }
    }

    /// Reads a record binding's routing key.
    pub fn parse(key: &str) -> Option<Self> {
        match key {
            "created" => Some(Origin::Created),
            "adopted" => Some(Origin::Adopted),
            _ => None,
        }
    }
}

/// The record exchange itself: internal, so no client can publish through it.
pub fn record_exchange() -> ExchangeSpec {
    ExchangeSpec {
        name: MANAGED_RECORD_EXCHANGE.to_string(),
        kind: ExchangeKind::Direct,
        durable: true,
        auto_delete: false,
        internal: true,
        arguments: Arguments::new(),
    }
}

/// The argument of a record binding that names the object it records, for objects that are
/// not a binding's destination (policies, operator policies, limits): such a record binds the
/// record exchange to itself.
pub const RECORD_OBJECT_ARG: &str = "x-god-object";

/// The binding that records that god manages a policy, operator policy or limit, by the
/// object's identifier (`policy/NAME`, `operator_policy/NAME`, `limit/NAME`).
pub fn object_record_binding(id: &str, origin: Origin) -> BindingSpec {
    let mut binding = record_binding(MANAGED_RECORD_EXCHANGE, DestinationType::Exchange, origin);
    binding
        .arguments
        .insert(RECORD_OBJECT_ARG.to_string(), Value::from(id));
    binding
}

/// The binding that records that god manages an object.
pub fn record_binding(
    destination: &str,
    destination_type: DestinationType,
    origin: Origin,
) -> BindingSpec {
    BindingSpec {
        source: MANAGED_RECORD_EXCHANGE.to_string(),
        destination: destination.to_string(),
        destination_type,
        routing_key: origin.as_str().to_string(),
        arguments: Arguments::new(),
    }
}

/// Depth and consumers of a live queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Messages in the queue (ready and unacknowledged).
    pub messages: u64,
    /// Consumers attached.
    pub consumers: u64,
}

/// What god found in a vhost: the topology (without god's record bindings and without
/// exclusive queues), queue depths, and what god's record says it manages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedState {
    /// The vhost observed.
    pub vhost: String,
    /// Exchanges, queues, bindings and policies found.
    pub topology: Topology,
    /// Depth and consumers per queue.
    pub queue_stats: BTreeMap<String, QueueStats>,
    /// Queues god manages, and how it came to.
    pub managed_queues: BTreeMap<String, Origin>,
    /// Exchanges god manages, and how it came to.
    pub managed_exchanges: BTreeMap<String, Origin>,
    /// Policies, operator policies and limits god manages, by identifier (`policy/NAME`,
    /// `operator_policy/NAME`, `limit/NAME`), and how it came to.
    #[serde(default)]
    pub managed_objects: BTreeMap<String, Origin>,
    /// Queues on a node that is down (a classic queue's node, or a majority of a quorum
    /// queue's members), with why: the broker lists them without their bindings, so god
    /// neither sees nor touches them until they are back.
    pub unavailable: BTreeMap<String, String>,
    /// Nodes of the broker's cluster, running or not (0 when the broker would not say).
    pub cluster_nodes: usize,
    /// RabbitMQ's version (`3.10.8`), when known: some defaults depend on it.
    pub broker_version: Option<String>,
}

impl ObservedState {
    /// Messages held by a queue (0 when unknown).
    pub fn messages(&self, queue: &str) -> u64 {
        self.queue_stats.get(queue).map(|s| s.messages).unwrap_or(0)
    }
}

pub mod arguments;
pub mod containers;
pub mod desired;
pub mod duration;
pub mod kinds;
pub mod name_set;
pub mod queue_type;
pub mod registry;
pub mod topic;
pub mod wiring;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> Arguments {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn dead_letter_policy_escapes_the_queue_name() {
        let p = PolicySpec::dead_letter_for(
            "services.a.b",
            &args(
                json!({"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "services.a.b_dlq"}),
            ),
        );
        assert_eq!(p.pattern, r"^services\.a\.b$");
        assert_eq!(
            p.definition,
            args(
                json!({"dead-letter-exchange": "", "dead-letter-routing-key": "services.a.b_dlq"})
            )
        );
    }
}
