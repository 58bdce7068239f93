//! Which queues hold dead letters: the registry's dead-letter queues, and every queue of the
//! vhost another queue dead-letters into, through the default exchange (by its name) or
//! through a direct, topic or fanout exchange (the queues whose binding takes its dead-letter
//! routing key, every queue of a fanout one). The routes come from the queues' arguments and
//! from god's wiring (see [`god_core::model::wiring`]).

use std::collections::BTreeSet;

use crate::error::Result;
use crate::model::desired::{DesiredState, QueueRole};
use crate::model::{DeadLetterRoute, DestinationType, ExchangeKind, Topology};
use crate::observe::rabbit::observe;
use crate::rabbit::management::ManagementApi;

/// The dead-letter queues the registry declares.
pub fn declared(desired: &DesiredState) -> BTreeSet<String> {
    desired
        .owners
        .iter()
        .filter(|(_, o)| matches!(o.role, QueueRole::DeadLetter { .. }))
        .map(|(q, _)| q.clone())
        .collect()
}

/// Observes the vhost and returns the queues that hold dead letters: `declared`, and those
/// another queue dead-letters into, each only when it exists.
pub async fn dead_letter_queues(
    api: &ManagementApi,
    declared: BTreeSet<String>,
) -> Result<BTreeSet<String>> {
    let observed = observe(api).await?;
    Ok(in_topology(&observed.topology, declared))
}

/// The queues of `topology` that hold dead letters: `declared`, and those another queue
/// dead-letters into.
pub fn in_topology(topology: &Topology, mut queues: BTreeSet<String>) -> BTreeSet<String> {
    let wiring = topology.wiring();
    for queue in topology.queues.values() {
        match wiring.dead_letter_route(queue) {
            Some(DeadLetterRoute {
                exchange: "",
                routing_key: Some(key),
            }) => {
                queues.insert(key.to_string());
            }
            Some(DeadLetterRoute {
                exchange,
                routing_key,
            }) if !exchange.is_empty() => {
                queues.extend(routed_by(topology, exchange, routing_key));
            }
            _ => {}
        }
    }
    queues
        .into_iter()
        .filter(|q| topology.queues.contains_key(q))
        .collect()
}

/// The queues `exchange` routes a message with routing key `key` to (a message dead-lettered
/// without one keeps its own keys: only a fanout exchange's queues are known then).
fn routed_by(topology: &Topology, exchange: &str, key: Option<&str>) -> Vec<String> {
    let Some(kind) = topology.exchanges.get(exchange).map(|e| &e.kind) else {
        return Vec::new();
    };
    topology
        .bindings
        .iter()
        .filter(|b| b.source == exchange && b.destination_type == DestinationType::Queue)
        .filter(|b| match key {
            Some(key) => kind.routes(&b.routing_key, key) == Some(true),
            None => *kind == ExchangeKind::Fanout,
        })
        .map(|b| b.destination.clone())
        .collect()
}
