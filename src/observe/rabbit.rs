//! Observing a vhost: its definitions (one request after the vhost check, whatever the number
//! of objects), and, only when a plan would replace or delete queues, the queue list for their
//! depths (one more request).

use std::collections::BTreeMap;

use crate::error::Result;
use crate::model::{
    BindingSpec, DestinationType, ExchangeSpec, MANAGED_RECORD_EXCHANGE, ObservedState, Origin,
    PolicySpec, QueueSpec, QueueStats, normalize_arguments,
};
use crate::rabbit::management::{DefinitionsExport, ManagementApi, QueueListEntry};

/// Reads the vhost's objects (without queue depths): fails with a clear error when the broker
/// is unreachable, refuses the credentials, or the vhost does not exist.
pub async fn observe(api: &ManagementApi) -> Result<ObservedState> {
    api.check_vhost().await?;
    let definitions = api.definitions().await?;
    Ok(observed_state(api.vhost(), definitions))
}

/// Adds depth and consumer counts of every queue to an observed state (one request). The
/// management API refreshes them every few seconds; apply never relies on them alone: it
/// deletes queues with `if-empty`.
pub async fn observe_queue_stats(api: &ManagementApi, state: &mut ObservedState) -> Result<()> {
    let queues = api.queue_list().await?;
    add_queue_stats(state, &queues);
    Ok(())
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
            record(&mut state, &b.destination, destination_type, &b.routing_key);
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
    for p in definitions.policies {
        state.topology.policies.insert(
            p.name.clone(),
            PolicySpec {
                name: p.name,
                pattern: p.pattern,
                apply_to: p.apply_to,
                priority: p.priority,
                definition: p.definition,
            },
        );
    }
    state
}

fn add_queue_stats(state: &mut ObservedState, queues: &[QueueListEntry]) {
    for q in queues
        .iter()
        .filter(|q| state.topology.queues.contains_key(&q.name))
    {
        state.queue_stats.insert(q.name.clone(), stats_of(q));
    }
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
    let Some(origin) = Origin::parse(key) else {
        return;
    };
    let managed = match kind {
        DestinationType::Queue => &mut state.managed_queues,
        DestinationType::Exchange => &mut state.managed_exchanges,
    };
    // A queue recorded both ways (it was re-created after an adoption) counts as created.
    let entry = managed.entry(destination.to_string()).or_insert(origin);
    if origin == Origin::Created {
        *entry = Origin::Created;
    }
}
