//! `god render`: the desired topology, offline, sorted and stable.

use serde_json::{Value, json};

use super::{Exit, Sources};
use crate::error::Result;
use crate::import::yaml_writer;
use crate::model::desired::DesiredState;

/// Output formats of `god render`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// YAML (the default).
    Yaml,
    /// JSON, for scripts (the same document).
    Json,
}

/// Prints the desired topology.
pub fn run(sources: &Sources, format: Format) -> Result<Exit> {
    let loaded = sources.load_registry()?;
    let document = rendered(&loaded.desired_state());
    let text = match format {
        Format::Json => serde_json::to_string_pretty(&document).expect("JSON serialises") + "\n",
        Format::Yaml => yaml_writer::document(&document),
    };
    print!("{text}");
    Ok(Exit::Success)
}

/// The desired state as a document: exchanges, queues (with owner and role, and what god's
/// policy gives each beyond its declaration, in argument form), bindings,
/// policies, operator policies and vhost limits, and the services that get nothing.
pub fn rendered(desired: &DesiredState) -> Value {
    let queues: Vec<Value> = desired
        .topology
        .queues
        .values()
        .map(|q| {
            let mut v = serde_json::to_value(q).expect("queues serialise");
            if let Some(owner) = desired.owners.get(&q.name) {
                let owner = serde_json::to_value(owner).expect("owners serialise");
                if let (Some(target), Some(extra)) = (v.as_object_mut(), owner.as_object()) {
                    target.extend(extra.clone());
                }
            }
            if let Some(given) = desired.queue_policies.get(&q.name) {
                v["god_policy"] = serde_json::to_value(given).expect("arguments serialise");
            }
            v
        })
        .collect();
    json!({
        "vhost": desired.vhost,
        "exchanges": desired.topology.exchanges.values().collect::<Vec<_>>(),
        "queues": queues,
        "bindings": desired.topology.bindings,
        "policies": desired.topology.policies.values().collect::<Vec<_>>(),
        "operator_policies": desired.topology.operator_policies.values().collect::<Vec<_>>(),
        "limits": desired.topology.limits,
        "inactive_services": desired.inactive,
    })
}
