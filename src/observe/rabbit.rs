//! Observing a vhost: its definitions and its queue list, fetched concurrently (two requests
//! after the vhost check, whatever the number of objects).

use std::collections::BTreeMap;

use crate::error::Result;
use crate::model::{
    APPLY_LOCK_QUEUE, BindingSpec, DestinationType, ExchangeSpec, MANAGED_RECORD_EXCHANGE,
    ObservedState, Origin, PolicySpec, QueueSpec, QueueStats, normalize_arguments,
};
use crate::rabbit::management::{DefinitionsExport, ManagementApi, QueueListEntry};

/// Reads the vhost: fails with a clear error when the broker is unreachable, refuses the
/// credentials, or the vhost does not exist.
pub async fn observe(api: &ManagementApi) -> Result<ObservedState> {
    api.check_vhost().await?;
    let (definitions, queues) = tokio::try_join!(api.definitions(), api.queue_list())?;
    Ok(observed_state(api.vhost(), definitions, &queues))
}

/// Builds observed state from the two answers: god's record bindings become the managed sets,
/// exclusive queues (connection-owned, like god's own lock) are left out.
pub fn observed_state(
    vhost: &str,
    definitions: DefinitionsExport,
    queues: &[QueueListEntry],
) -> ObservedState {
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
    let exclusive: BTreeMap<&str, bool> = queues
        .iter()
        .map(|q| (q.name.as_str(), q.exclusive))
        .collect();
    for q in definitions.queues {
        if q.name == APPLY_LOCK_QUEUE || exclusive.get(q.name.as_str()).copied().unwrap_or(false) {
            continue;
        }
        let spec = QueueSpec {
            arguments: normalize_arguments(&q.arguments),
            name: q.name,
            durable: q.durable,
            auto_delete: q.auto_delete,
        };
        state.topology.queues.insert(spec.name.clone(), spec);
    }
    for q in queues
        .iter()
        .filter(|q| state.topology.queues.contains_key(&q.name))
    {
        state.queue_stats.insert(
            q.name.clone(),
            QueueStats {
                messages: q.messages.unwrap_or(0),
                consumers: q.consumers.unwrap_or(0),
            },
        );
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
