//! Observing a vhost: its exchanges, queues, bindings and policies (requests at once after the
//! vhost check, their number independent of the number of queues and bindings), and, only
//! when a plan would replace or delete queues, their exact depths.

use std::collections::{BTreeMap, BTreeSet};

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;

use crate::error::{GodError, Result};
use crate::model::{
    BindingSpec, DestinationType, ExchangeSpec, MANAGED_RECORD_EXCHANGE, ObservedState, Origin,
    PolicySpec, QueueSpec, QueueStats, RECORD_OBJECT_ARG, normalize_arguments,
};
use crate::rabbit::amqp::{AmqpSession, reply_code};
use crate::rabbit::management::{DefinitionsExport, ManagementApi, QueueListEntry, QueuePlacement};

/// Reads the vhost's objects (without queue depths): fails with a clear error when the broker
/// is unreachable, refuses the credentials, or the vhost does not exist.
pub async fn observe(api: &ManagementApi) -> Result<ObservedState> {
    api.check_vhost().await?;
    let (definitions, nodes, overview, operator_policies, limits) = tokio::join!(
        api.topology(),
        api.nodes(),
        api.overview(),
        api.operator_policies(),
        api.vhost_limits()
    );
    let mut state = observed_state(api.vhost(), definitions?);
    state.broker_version = overview.ok().map(|o| o.rabbitmq_version);
    // Only administrators may read operator policies and limits: for others there are none
    // to see, and declaring some fails at apply with what to do.
    state.topology.operator_policies = permitted(operator_policies)?
        .into_iter()
        .map(policy_spec)
        .map(|p| (p.name.clone(), p))
        .collect();
    state.topology.limits = permitted(limits)?;
    // A user without the `monitoring` tag may not list nodes: the queues' own state says
    // which are down, at the cost of one more request.
    let down: Option<BTreeSet<String>> = match nodes {
        Ok(nodes) => {
            state.cluster_nodes = nodes.len();
            Some(
                nodes
                    .into_iter()
                    .filter(|n| !n.running)
                    .map(|n| n.name)
                    .collect(),
            )
        }
        Err(GodError::Forbidden { .. }) => None,
        Err(e) => return Err(e),
    };
    if down.as_ref().is_none_or(|down| !down.is_empty()) {
        let placement = api.queue_placement().await?;
        state.unavailable = unavailable_queues(&placement, down.as_ref());
    }
    Ok(state)
}

/// An answer, empty when the user may not read it.
fn permitted<T: Default>(answer: Result<T>) -> Result<T> {
    match answer {
        Err(GodError::Forbidden { .. }) => Ok(T::default()),
        other => other,
    }
}

fn policy_spec(p: crate::rabbit::management::ExportedPolicy) -> PolicySpec {
    PolicySpec {
        name: p.name,
        pattern: p.pattern,
        apply_to: p.apply_to,
        priority: p.priority,
        definition: p.definition,
    }
}

/// The queues a node that is down makes unavailable, with why: a classic queue on it, a
/// quorum queue or stream with fewer than a majority of its members online. `down`: the nodes
/// that are down, when the broker said (else the queues' own state and members tell).
pub fn unavailable_queues(
    queues: &[QueuePlacement],
    down: Option<&BTreeSet<String>>,
) -> BTreeMap<String, String> {
    queues
        .iter()
        .filter_map(|q| {
            let why = if q.is_replicated() {
                q.short_of_majority(down).then(|| {
                    format!(
                        "{} of its {} members online, short of a majority",
                        q.members_online(down),
                        q.members.len()
                    )
                })
            } else {
                let node = q.node.as_deref().unwrap_or_default();
                (down.is_some_and(|down| down.contains(node)) || q.state.as_deref() == Some("down"))
                    .then(|| format!("its node {node} is down"))
            };
            why.map(|why| (q.name.clone(), why))
        })
        .collect()
}

/// Adds the exact depth and consumers of `queues` to an observed state: ready messages and
/// consumers as the broker counts them now (AMQP passive declares; the management API's
/// statistics lag by up to 5 s), plus the unacknowledged messages the statistics show (AMQP
/// cannot count those). A queue deleted meanwhile is left out.
pub async fn observe_exact_depths(
    api: &ManagementApi,
    session: &AmqpSession,
    queues: &BTreeSet<String>,
    state: &mut ObservedState,
) -> Result<()> {
    let unacknowledged: BTreeMap<String, u64> = api
        .queue_list()
        .await?
        .into_iter()
        .map(|q| (q.name, q.messages_unacknowledged.unwrap_or(0)))
        .collect();
    for (name, mut stats) in exact_counts(session, queues).await? {
        stats.messages += unacknowledged.get(&name).copied().unwrap_or(0);
        state.queue_stats.insert(name, stats);
    }
    Ok(())
}

/// Ready messages and consumers of each of `queues`, counted by the broker now (AMQP passive
/// declares on one channel). A queue that does not exist is left out.
pub async fn exact_counts(
    session: &AmqpSession,
    queues: &BTreeSet<String>,
) -> Result<BTreeMap<String, QueueStats>> {
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let mut channel = session.channel().await?;
    let mut counts = BTreeMap::new();
    for name in queues {
        match channel
            .queue_declare(name.as_str().into(), options, FieldTable::default())
            .await
        {
            Ok(q) => {
                let stats = QueueStats {
                    messages: u64::from(q.message_count()),
                    consumers: u64::from(q.consumer_count()),
                };
                counts.insert(name.clone(), stats);
            }
            // 404: the queue is gone, and the broker closed the channel.
            Err(e) if reply_code(&e) == Some(404) => channel = session.channel().await?,
            Err(e) => return Err(session.error(e, "counting a queue's messages")),
        }
    }
    Ok(counts)
}

/// The messages ready in a queue and its consumers now, as the broker counts them (zero when
/// it is gone).
pub async fn queue_now(session: &AmqpSession, queue: &str) -> Result<QueueStats> {
    let counts = exact_counts(session, &BTreeSet::from([queue.to_string()])).await?;
    Ok(counts.get(queue).copied().unwrap_or_default())
}

/// The messages ready in a queue now, as the broker counts them (0 when it is gone).
pub async fn ready_messages(session: &AmqpSession, queue: &str) -> Result<u64> {
    Ok(queue_now(session, queue).await?.messages)
}

/// Builds observed state from the definitions export (which leaves exclusive queues out): god's
/// record bindings become the managed sets.
pub fn observed_state(vhost: &str, definitions: DefinitionsExport) -> ObservedState {
    let mut state = ObservedState {
        vhost: vhost.to_string(),
        ..ObservedState::default()
    };
    for e in definitions.exchanges {
        let spec = ExchangeSpec {
            arguments: normalize_arguments(&e.arguments),
            name: e.name,
            kind: e.kind,
            durable: e.durable,
            auto_delete: e.auto_delete,
            internal: e.internal,
        };
        state.topology.exchanges.insert(spec.name.clone(), spec);
    }
    for q in definitions.queues {
        let spec = QueueSpec {
            arguments: normalize_arguments(&q.arguments),
            name: q.name,
            durable: q.durable,
            auto_delete: q.auto_delete,
        };
        state.topology.queues.insert(spec.name.clone(), spec);
    }
    for b in definitions.bindings {
        let destination_type = if b.destination_type == "exchange" {
            DestinationType::Exchange
        } else {
            DestinationType::Queue
        };
        if b.source == MANAGED_RECORD_EXCHANGE {
            match b.arguments.get(RECORD_OBJECT_ARG).and_then(|v| v.as_str()) {
                Some(object) => record_object(&mut state, object, &b.routing_key),
                None => record(&mut state, &b.destination, destination_type, &b.routing_key),
            }
            continue;
        }
        state.topology.bindings.insert(BindingSpec {
            source: b.source,
            destination: b.destination,
            destination_type,
            routing_key: b.routing_key,
            arguments: normalize_arguments(&b.arguments),
        });
    }
    for p in definitions.policies.into_iter().map(policy_spec) {
        state.topology.policies.insert(p.name.clone(), p);
    }
    state
}

/// Depth and consumers of every queue of the vhost, by name (the vhost must exist).
pub async fn all_queue_stats(api: &ManagementApi) -> Result<BTreeMap<String, QueueStats>> {
    let queues = api.queue_list().await?;
    Ok(queues
        .iter()
        .map(|q| (q.name.clone(), stats_of(q)))
        .collect())
}

fn stats_of(entry: &QueueListEntry) -> QueueStats {
    QueueStats {
        messages: entry.messages.unwrap_or(0),
        consumers: entry.consumers.unwrap_or(0),
    }
}

fn record(state: &mut ObservedState, destination: &str, kind: DestinationType, key: &str) {
    let managed = match kind {
        DestinationType::Queue => &mut state.managed_queues,
        DestinationType::Exchange => &mut state.managed_exchanges,
    };
    note_origin(managed, destination, key);
}

fn record_object(state: &mut ObservedState, object: &str, key: &str) {
    note_origin(&mut state.managed_objects, object, key);
}

/// Adds a record's origin; an object recorded both ways (re-created after an adoption) counts
/// as created.
fn note_origin(managed: &mut BTreeMap<String, Origin>, name: &str, key: &str) {
    let Some(origin) = Origin::parse(key) else {
        return;
    };
    let entry = managed.entry(name.to_string()).or_insert(origin);
    if origin == Origin::Created {
        *entry = Origin::Created;
    }
}
