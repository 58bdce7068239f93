//! Fixtures for tests of the planner and of what reads its results, in this crate and in the
//! `god` crate (through the `test-support` feature, which only its dev-dependency turns on):
//! production code never uses them.

use crate::model::desired::DesiredState;
use crate::model::{MANAGED_RECORD_EXCHANGE, ObservedState, Origin, Topology, record_exchange};
use crate::plan::Resource;
use crate::plan::diff::{PlanOptions, plan};

/// The state a broker is in after god applied `desired`: everything the plan from an empty
/// vhost creates is present, and god's record says it created the desired queues and exchanges.
pub fn converged(desired: &DesiredState) -> ObservedState {
    let empty = ObservedState {
        vhost: "/".into(),
        ..ObservedState::default()
    };
    let mut topology = Topology::default();
    topology
        .exchanges
        .insert(MANAGED_RECORD_EXCHANGE.into(), record_exchange());
    for change in plan(desired, &empty, PlanOptions::default()).changes {
        match change.after {
            Some(Resource::Exchange(e)) => drop(topology.exchanges.insert(e.name.clone(), e)),
            Some(Resource::Queue(q)) => drop(topology.queues.insert(q.name.clone(), q)),
            Some(Resource::Binding(b)) => drop(topology.bindings.insert(b)),
            Some(Resource::Policy(p)) => drop(topology.policies.insert(p.name.clone(), p)),
            _ => {}
        }
    }
    ObservedState {
        vhost: "/".into(),
        managed_queues: desired
            .topology
            .queues
            .keys()
            .map(|q| (q.clone(), Origin::Created))
            .collect(),
        managed_exchanges: desired
            .topology
            .exchanges
            .keys()
            .map(|e| (e.clone(), Origin::Created))
            .collect(),
        topology,
        ..ObservedState::default()
    }
}

/// A registry from YAML text, deserialised as it is (the `god` crate's loader also validates
/// it; these texts are valid).
#[cfg(test)]
pub fn registry_from_yaml(text: &str) -> crate::model::registry::Registry {
    serde_saphyr::from_str(text).expect("a valid registry")
}
