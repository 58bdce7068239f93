//! `registry.yaml`: the platform's service registry, read as the upstream writes it, plus god's
//! optional extensions (`vhost`, `defaults`, and per service `dead_letter`, `arguments`,
//! `prefetch` and the queue settings: `queue_type` and the quorum options).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::model::desired::{
    DesiredState, InactiveService, Lifecycle, QueueOwner, QueueRole, RETRY_EXCHANGE,
    RETRY_QUEUE_HEADER, RetryRoute, ServiceSpec, unroutable_exchange,
};
use crate::model::duration::Millis;
use crate::model::queue_type::{QueueSettings, QueueType, at_least_once};
use crate::model::{
    ApplyTo, Arguments, BindingSpec, DEAD_LETTER_POLICY_PRIORITY, DLK_ARG, DLX_ARG, ExchangeKind,
    ExchangeSpec, PolicySpec, QueueSpec, UNROUTABLE_POLICY_PREFIX, normalize_arguments,
};

/// The registry file as written.
#[derive(Debug, Clone, Deserialize)]
pub struct Registry {
    /// Format version (a string upstream).
    #[serde(default)]
    pub version: Option<Value>,
    /// god extension: the vhost of the topology.
    #[serde(default)]
    pub vhost: Option<String>,
    /// god extension: queue settings of every service that does not set its own.
    #[serde(default)]
    pub defaults: QueueSettings,
    /// The bus exchange.
    pub exchange: ExchangeDecl,
    /// Services by id.
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
}

/// The `exchange` section.
#[derive(Debug, Clone, Deserialize)]
pub struct ExchangeDecl {
    /// Exchange name.
    pub name: String,
    /// Exchange type (topic by default).
    #[serde(rename = "type", default = "topic")]
    pub kind: ExchangeKind,
    /// Durable (true by default).
    #[serde(default = "yes")]
    pub durable: bool,
    /// god extension: the queue that keeps the events no queue's binding routes.
    #[serde(default)]
    pub unroutable: Option<String>,
}

fn topic() -> ExchangeKind {
    ExchangeKind::Topic
}

fn yes() -> bool {
    true
}

/// The `dead_letter` key: on, off, or the name of the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum DeadLetter {
    /// `true` (the default): `<queue>_dlq`; `false`: no dead-lettering.
    Enabled(bool),
    /// An explicit dead-letter queue name.
    Named(String),
}

/// One service of the registry.
#[derive(Debug, Clone, Deserialize)]
pub struct Service {
    /// Its single queue.
    #[serde(default)]
    pub queue_name: Option<String>,
    /// Its queues, paired by position with `routing_keys`.
    #[serde(default)]
    pub queue_names: Option<Vec<String>>,
    /// Binding keys (topic patterns).
    #[serde(default)]
    pub routing_keys: Vec<String>,
    /// Lifecycle status (active when absent).
    #[serde(default)]
    pub status: Lifecycle,
    /// Event types it publishes (informational).
    #[serde(default)]
    pub produces: Vec<String>,
    /// Endpoints (free-form).
    #[serde(default)]
    pub endpoints: BTreeMap<String, String>,
    /// god extension: dead-lettering (on unless said otherwise, but for streams).
    #[serde(default)]
    pub dead_letter: Option<DeadLetter>,
    /// god extension: the queue's type and its options by name.
    #[serde(flatten)]
    pub settings: QueueSettings,
    /// god extension: extra queue arguments.
    #[serde(default)]
    pub arguments: Arguments,
    /// god extension: the prefetch its consumers should use (god doctor compares it).
    #[serde(default)]
    pub prefetch: Option<u32>,
    /// god extension: the delays of its retry stages (`[5s, 30s, 2m]`), read once.
    #[serde(default)]
    pub retry: Vec<Millis>,
}

impl Service {
    /// The service's (queue, routing keys) pairs: one queue with all keys, or `queue_names`
    /// paired by position with `routing_keys` (one key each, never a cross product).
    pub fn queue_bindings(&self) -> Vec<(String, Vec<String>)> {
        match (&self.queue_name, &self.queue_names) {
            (Some(queue), _) => vec![(queue.clone(), self.routing_keys.clone())],
            (None, Some(queues)) => queues
                .iter()
                .enumerate()
                .map(|(i, q)| {
                    (
                        q.clone(),
                        self.routing_keys.get(i).cloned().into_iter().collect(),
                    )
                })
                .collect(),
            (None, None) => Vec::new(),
        }
    }

    /// The names of the service's queues.
    pub fn queues(&self) -> Vec<String> {
        self.queue_bindings().into_iter().map(|(q, _)| q).collect()
    }

    /// What god's checks and pictures need to know of the service.
    pub fn spec(&self) -> ServiceSpec {
        ServiceSpec {
            lifecycle: self.status,
            produces: self.produces.clone(),
            queues: self.queues(),
            prefetch: self.prefetch,
            health_endpoint: self.endpoints.get("health").cloned(),
        }
    }

    /// The dead-letter queue of one of the service's queues of type `queue_type`, when
    /// dead-lettering is on: by default `<queue>_dlq`, except for streams, which cannot
    /// dead-letter.
    pub fn dead_letter_queue(&self, queue: &str, queue_type: QueueType) -> Option<String> {
        match &self.dead_letter {
            None if !queue_type.dead_letters() => None,
            None | Some(DeadLetter::Enabled(true)) => Some(format!("{queue}_dlq")),
            Some(DeadLetter::Enabled(false)) => None,
            Some(DeadLetter::Named(name)) => Some(name.clone()),
        }
    }
}

impl Registry {
    /// The desired topology: the exchange, then for each active service its queues (with their
    /// dead-letter arguments), their dead-letter queues, and one binding per routing key.
    pub fn desired_state(&self) -> DesiredState {
        let mut state = DesiredState {
            vhost: self.vhost.clone(),
            exchange: self.exchange.name.clone(),
            ..DesiredState::default()
        };
        let exchange = self.exchange_spec();
        let exchange_name = exchange.name.clone();
        state
            .topology
            .exchanges
            .insert(exchange_name.clone(), exchange);
        if let Some(queue) = &self.exchange.unroutable {
            add_unroutable(&mut state, &exchange_name, queue);
        }
        for (id, service) in &self.services {
            state.services.insert(id.clone(), service.spec());
            if service.status != Lifecycle::Active {
                state.inactive.push(InactiveService {
                    service: id.clone(),
                    status: service.status,
                    queues: self.all_queue_names(service),
                });
                continue;
            }
            for (queue, keys) in service.queue_bindings() {
                self.add_service_queue(&mut state, id, service, &queue, &keys);
            }
        }
        state
    }

    /// The queues a service has or would have: its own and their dead-letter queues.
    fn all_queue_names(&self, service: &Service) -> Vec<String> {
        let queue_type = self.queue_type_of(service);
        service
            .queues()
            .into_iter()
            .flat_map(|q| {
                let dlq = service.dead_letter_queue(&q, queue_type);
                std::iter::once(q).chain(dlq)
            })
            .collect()
    }

    /// Adds one queue of a service to the desired state: the queue declared with exactly the
    /// registry's `arguments` and its type (what its consumers declare), god's policy for the
    /// rest (dead-lettering or retry, quorum options, placement) but what those arguments
    /// already say, its dead-letter queue (of the queue's type unless told otherwise), and a
    /// binding per routing key.
    fn add_service_queue(
        &self,
        state: &mut DesiredState,
        service_id: &str,
        service: &Service,
        queue: &str,
        keys: &[String],
    ) {
        let settings = self.settings_of(service);
        let queue_type = self.queue_type_of(service);
        let dead_letter_queue = service.dead_letter_queue(queue, queue_type);
        let mut arguments = service.arguments.clone();
        arguments.extend(settings.declared_arguments(queue_type));
        let mut policy = settings.policy_arguments(queue_type);
        if let Some(dlq) = &dead_letter_queue {
            let retry = self.add_retry(state, service_id, service, queue, dlq);
            let rejected_to = retry.unwrap_or_else(|| dlq.clone());
            policy.insert(DLX_ARG.to_string(), Value::String(String::new()));
            policy.insert(DLK_ARG.to_string(), Value::String(rejected_to.clone()));
            let dlq_type = settings.dead_letter_queue_type.unwrap_or(queue_type);
            let dlq_spec = durable_queue(dlq, settings.declared_arguments(dlq_type));
            state.topology.queues.insert(dlq.clone(), dlq_spec);
            add_queue_policy(state, dlq, settings.placement_policy(dlq_type));
            state.owners.insert(
                dlq.clone(),
                QueueOwner {
                    service: service_id.to_string(),
                    role: QueueRole::DeadLetter {
                        of: queue.to_string(),
                    },
                },
            );
        }
        policy.retain(|key, _| !service.arguments.contains_key(key));
        add_queue_policy(state, queue, policy);
        state
            .topology
            .queues
            .insert(queue.to_string(), durable_queue(queue, arguments));
        state.owners.insert(
            queue.to_string(),
            QueueOwner {
                service: service_id.to_string(),
                role: QueueRole::Main { dead_letter_queue },
            },
        );
        for key in keys {
            state
                .topology
                .bindings
                .insert(BindingSpec::queue(&self.exchange.name, queue, key));
        }
    }

    /// Adds a queue's retry (when its service has `retry`): the mover's inbox, a stage queue
    /// per delay (its TTL the delay, dead-lettering into [`RETRY_EXCHANGE`]), that exchange and
    /// its binding back to the queue. Returns the inbox, where the queue's rejected messages go.
    fn add_retry(
        &self,
        state: &mut DesiredState,
        service_id: &str,
        service: &Service,
        queue: &str,
        dead_letter_queue: &str,
    ) -> Option<String> {
        let delays: Vec<u64> = service.retry.iter().map(|d| d.0).collect();
        if delays.is_empty() {
            return None;
        }
        let settings = self.settings_of(service);
        let queue_type = self.queue_type_of(service);
        let route = RetryRoute::new(queue, delays, dead_letter_queue);
        let declared = settings.declared_arguments(queue_type);
        let placement = settings.placement_policy(queue_type);
        let owned = |state: &mut DesiredState, name: &str, stage: usize, policy| {
            state
                .topology
                .queues
                .insert(name.to_string(), durable_queue(name, declared.clone()));
            add_queue_policy(state, name, policy);
            let role = QueueRole::Retry {
                of: queue.to_string(),
                stage,
            };
            let service = service_id.to_string();
            state
                .owners
                .insert(name.to_string(), QueueOwner { service, role });
        };
        owned(state, &route.inbox, 0, placement.clone());
        for (i, (stage, delay)) in route.stages.iter().zip(&route.delays_ms).enumerate() {
            let mut policy = placement.clone();
            policy.insert("x-message-ttl".into(), Value::from(*delay));
            policy.insert(DLX_ARG.into(), Value::from(RETRY_EXCHANGE));
            if queue_type == QueueType::Quorum {
                // An expired message then reaches its queue even if a node fails on the way.
                policy.extend(at_least_once());
            }
            owned(state, stage, i + 1, policy);
        }
        state
            .topology
            .exchanges
            .insert(RETRY_EXCHANGE.to_string(), retry_exchange());
        let mut back = BindingSpec::queue(RETRY_EXCHANGE, queue, "");
        back.arguments = [
            ("x-match".to_string(), Value::from("all")),
            (RETRY_QUEUE_HEADER.to_string(), Value::from(queue)),
        ]
        .into();
        state.topology.bindings.insert(back);
        let inbox = route.inbox.clone();
        state.retry.insert(queue.to_string(), route);
        Some(inbox)
    }

    /// A service's queue settings, the registry's `defaults` filling in what it leaves unset.
    pub fn settings_of(&self, service: &Service) -> QueueSettings {
        service.settings.or(&self.defaults)
    }

    /// The type of a service's queues: its `queue_type`, else the one its `arguments` name,
    /// else the registry's default, else classic.
    pub fn queue_type_of(&self, service: &Service) -> QueueType {
        service
            .settings
            .queue_type
            .or_else(|| {
                let raw = service
                    .arguments
                    .get(crate::model::queue_type::QUEUE_TYPE_ARG);
                raw.and_then(|_| QueueType::of(&service.arguments))
            })
            .or(self.defaults.queue_type)
            .unwrap_or_default()
    }

    /// The bus exchange as god declares it.
    pub fn exchange_spec(&self) -> ExchangeSpec {
        ExchangeSpec {
            name: self.exchange.name.clone(),
            kind: self.exchange.kind.clone(),
            durable: self.exchange.durable,
            auto_delete: false,
            internal: false,
            arguments: Arguments::new(),
        }
    }
}

/// Most events the unroutable queue keeps: the oldest go first beyond it.
pub const UNROUTABLE_MAX_LENGTH: u64 = 10_000;

/// `exchange.unroutable: QUEUE`: a fanout exchange `<exchange>.unroutable` made the bus
/// exchange's alternate exchange by a policy (an argument would make every client's
/// redeclaration of the exchange fail with 406), and the bounded queue bound to it.
fn add_unroutable(state: &mut DesiredState, exchange: &str, queue: &str) {
    let alternate = unroutable_exchange(exchange);
    state.topology.exchanges.insert(
        alternate.clone(),
        ExchangeSpec {
            name: alternate.clone(),
            kind: ExchangeKind::Fanout,
            durable: true,
            auto_delete: false,
            internal: true,
            arguments: Arguments::new(),
        },
    );
    let arguments = [(
        "x-max-length".to_string(),
        Value::from(UNROUTABLE_MAX_LENGTH),
    )]
    .into();
    state
        .topology
        .queues
        .insert(queue.to_string(), durable_queue(queue, arguments));
    state
        .topology
        .bindings
        .insert(BindingSpec::queue(&alternate, queue, ""));
    let policy = PolicySpec {
        name: format!("{UNROUTABLE_POLICY_PREFIX}{exchange}"),
        pattern: format!("^{}$", regex::escape(exchange)),
        apply_to: ApplyTo::Exchanges,
        priority: DEAD_LETTER_POLICY_PRIORITY,
        definition: [("alternate-exchange".to_string(), Value::from(alternate))].into(),
    };
    state.topology.policies.insert(policy.name.clone(), policy);
    state.unroutable = Some(queue.to_string());
}

/// The exchange expired retry stages dead-letter into: headers, so that each message goes back
/// to the queue its header names with its own routing key.
fn retry_exchange() -> ExchangeSpec {
    ExchangeSpec {
        name: RETRY_EXCHANGE.to_string(),
        kind: ExchangeKind::Headers,
        durable: true,
        auto_delete: false,
        internal: true,
        arguments: Arguments::new(),
    }
}

/// Records what god gives `queue` through its policy, when it gives anything.
fn add_queue_policy(state: &mut DesiredState, queue: &str, policy: Arguments) {
    if !policy.is_empty() {
        state.queue_policies.insert(queue.to_string(), policy);
    }
}

fn durable_queue(name: &str, arguments: Arguments) -> QueueSpec {
    QueueSpec {
        name: name.to_string(),
        durable: true,
        auto_delete: false,
        arguments: normalize_arguments(&arguments),
    }
}
