//! Fixtures for tests of the planner and of what reads its results, in this crate and in the
//! `god` crate (through the `test-support` feature, which only its dev-dependency turns on):
//! production code never uses them.

use crate::model::desired::DesiredState;
use crate::model::{
    MANAGED_RECORD_EXCHANGE, ObservedState, Origin, PolicySpec, Topology, record_exchange,
};

/// The state a broker is in after god applied `desired`: everything present and recorded,
/// god's policy on each queue it gives one.
pub fn converged(desired: &DesiredState) -> ObservedState {
    let mut topology: Topology = desired.topology.clone();
    topology
        .exchanges
        .insert(MANAGED_RECORD_EXCHANGE.into(), record_exchange());
    for (queue, given) in &desired.queue_policies {
        let policy = PolicySpec::dead_letter_for(queue, given);
        topology.policies.insert(policy.name.clone(), policy);
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
