//! The desired state of the broker: the topology god wants, and what it knows of the services
//! behind it (who owns each queue, which services produce what, their prefetch and health
//! endpoints). `inputs` derives it from registry.yaml; the planner, doctor and graph read it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Topology;
use super::arguments::Arguments;

/// Where a service is in its life, as the registry's `status` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    /// Not deployed yet: god creates nothing for it.
    Planned,
    /// Running (also when no status is written): god creates its queues.
    #[default]
    Active,
    /// Going away: god creates nothing, and keeps what exists until `--prune`.
    Deprecated,
}

impl Lifecycle {
    /// The word used in the registry.
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Planned => "planned",
            Lifecycle::Active => "active",
            Lifecycle::Deprecated => "deprecated",
        }
    }
}

/// What a desired queue is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum QueueRole {
    /// A service's own queue.
    Main {
        /// Its dead-letter queue, if any.
        dead_letter_queue: Option<String>,
    },
    /// The dead-letter queue of another queue.
    DeadLetter {
        /// The queue it receives rejected messages from.
        of: String,
    },
    /// A queue of another queue's retry: where its rejected messages wait for `god retry`
    /// (stage 0), or wait out a delay (stages 1 and up).
    Retry {
        /// The queue whose messages it holds.
        of: String,
        /// 0 for the mover's inbox, else the stage's number.
        stage: usize,
    },
}

/// The header exchange expired retry stages dead-letter into: it routes each message back to
/// the queue its [`RETRY_QUEUE_HEADER`] names, keeping its routing key.
pub const RETRY_EXCHANGE: &str = "god.retry";
/// The header `god retry` sets to the queue a message goes back to.
pub const RETRY_QUEUE_HEADER: &str = "god-retry-queue";
/// The header counting the retries a message was given.
pub const RETRIES_HEADER: &str = "x-god-retries";
/// The header a message that failed every retry carries into its dead-letter queue: how many
/// times its consumer failed it.
pub const ATTEMPTS_HEADER: &str = "x-god-attempts";

/// Retry with backoff of one queue (`retry: [5s, 30s, 2m]`): its rejected messages go to
/// `inbox`, where `god retry` sends each to the next stage (a queue whose TTL is the delay,
/// dead-lettering back to the queue) or, after the last, to the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryRoute {
    /// The service's queue.
    pub queue: String,
    /// Where its rejected messages wait for the mover: `<queue>.retry`.
    pub inbox: String,
    /// The stage queues, `<queue>.retry.1` and up, in order.
    pub stages: Vec<String>,
    /// The delay of each stage, in milliseconds.
    pub delays_ms: Vec<u64>,
    /// Where a message goes after its last retry failed.
    pub dead_letter_queue: String,
}

impl RetryRoute {
    /// The route of `queue` with these delays and dead-letter queue.
    pub fn new(queue: &str, delays_ms: Vec<u64>, dead_letter_queue: &str) -> Self {
        let mut names = Self::queue_names(queue, delays_ms.len()).into_iter();
        let inbox = names.next().expect("the inbox is named first");
        Self {
            stages: names.collect(),
            queue: queue.to_string(),
            inbox,
            delays_ms,
            dead_letter_queue: dead_letter_queue.to_string(),
        }
    }

    /// The queues of `queue`'s retry with `stages` delays: its inbox `<queue>.retry`, then
    /// `<queue>.retry.1` and up.
    pub fn queue_names(queue: &str, stages: usize) -> Vec<String> {
        let inbox = format!("{queue}.retry");
        let stages = (1..=stages).map(|i| format!("{inbox}.{i}"));
        std::iter::once(inbox.clone()).chain(stages).collect()
    }
}

/// The alternate exchange of the bus exchange `exchange` when the registry keeps unroutable
/// events (`exchange.unroutable: QUEUE`): a fanout exchange `<exchange>.unroutable`.
pub fn unroutable_exchange(exchange: &str) -> String {
    format!("{exchange}.unroutable")
}

/// Who a desired queue belongs to and why it exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueOwner {
    /// The service id.
    pub service: String,
    /// Main or dead-letter queue.
    #[serde(flatten)]
    pub role: QueueRole,
}

/// A service that gets no queues, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InactiveService {
    /// The service id.
    pub service: String,
    /// Planned or deprecated.
    pub status: Lifecycle,
    /// The queues it would have (main and dead-letter).
    pub queues: Vec<String>,
}

/// A service of the registry, as far as god's checks and pictures need it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// Planned, active or deprecated.
    pub lifecycle: Lifecycle,
    /// The event types it publishes.
    pub produces: Vec<String>,
    /// Its own queues (dead-letter queues not included), in the registry's order.
    pub queues: Vec<String>,
    /// The prefetch its consumers should use, when the registry says.
    pub prefetch: Option<u32>,
    /// Its `endpoints.health` URL, when it has one.
    pub health_endpoint: Option<String>,
}

/// The desired state of the broker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredState {
    /// The registry's `vhost`, if it names one.
    pub vhost: Option<String>,
    /// The bus exchange.
    pub exchange: String,
    /// Exchanges, queues and bindings god wants.
    pub topology: Topology,
    /// The service and role behind each desired queue.
    pub owners: BTreeMap<String, QueueOwner>,
    /// Planned and deprecated services.
    pub inactive: Vec<InactiveService>,
    /// Every service of the registry, by id.
    pub services: BTreeMap<String, ServiceSpec>,
    /// The queue that keeps the events no binding routes (`exchange.unroutable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unroutable: Option<String>,
    /// Retry with backoff, by the service queue it serves.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub retry: BTreeMap<String, RetryRoute>,
    /// What god gives each of its queues through its policy (`god.dlx.<queue>`), in argument
    /// form (`x-dead-letter-exchange`, `x-message-ttl`, `x-delivery-limit`, …): what the
    /// queue's consumers do not declare. A live queue whose own arguments already say it needs
    /// no policy: arguments win over policies in RabbitMQ.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub queue_policies: BTreeMap<String, Arguments>,
    /// Where objects not derived from a service were declared, by resource identifier
    /// (`exchange/NAME` → `topology/fireflies.yaml`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, String>,
}

impl DesiredState {
    /// The services that are active, by id.
    pub fn active_services(&self) -> impl Iterator<Item = (&String, &ServiceSpec)> {
        self.services
            .iter()
            .filter(|(_, s)| s.lifecycle == Lifecycle::Active)
    }

    /// The file that declares an object, by its identifier: its topology file, else the
    /// registry.
    pub fn source_of(&self, id: &str) -> &str {
        self.sources.get(id).map_or("registry.yaml", String::as_str)
    }

    /// Whether a desired queue is the dead-letter queue of another, or one of its retry
    /// queues: what receives another queue's messages is declared before it.
    pub fn is_dead_letter_queue(&self, queue: &str) -> bool {
        self.owners.get(queue).is_some_and(|o| {
            matches!(
                o.role,
                QueueRole::DeadLetter { .. } | QueueRole::Retry { .. }
            )
        })
    }

    /// The dead-letter queue of a desired queue, if it has one.
    pub fn dead_letter_queue_of(&self, queue: &str) -> Option<&str> {
        match &self.owners.get(queue)?.role {
            QueueRole::Main { dead_letter_queue } => dead_letter_queue.as_deref(),
            QueueRole::DeadLetter { .. } | QueueRole::Retry { .. } => None,
        }
    }
}
