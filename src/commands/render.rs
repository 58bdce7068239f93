//! `god render`: the desired topology, offline, sorted and stable.

use std::borrow::Cow;

use saphyr::{Scalar, Yaml, YamlEmitter};
use serde_json::{Value, json};

use super::{Exit, Sources};
use crate::error::{GodError, Result};
use crate::model::desired::DesiredState;

/// Output formats of `god render`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// YAML (the default).
    Yaml,
    /// JSON.
    Json,
}

/// Prints the desired topology.
pub fn run(sources: &Sources, format: Format) -> Result<Exit> {
    let loaded = sources.load_registry()?;
    let document = rendered(&loaded.desired_state());
    let text = match format {
        Format::Json => serde_json::to_string_pretty(&document).expect("JSON serialises") + "\n",
        Format::Yaml => to_yaml(&document)?,
    };
    print!("{text}");
    Ok(Exit::Success)
}

/// The desired state as a document: exchanges, queues (with owner and role), bindings,
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

fn to_yaml(value: &Value) -> Result<String> {
    let mut out = String::new();
    YamlEmitter::new(&mut out)
        .dump(&yaml_of(value))
        .map_err(|e| GodError::Other(format!("cannot write YAML: {e}")))?;
    out.push('\n');
    Ok(out)
}

fn yaml_of(value: &Value) -> Yaml<'static> {
    match value {
        Value::Null => Yaml::Value(Scalar::Null),
        Value::Bool(b) => Yaml::Value(Scalar::Boolean(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Value(Scalar::Integer(i)),
            None => Yaml::Value(Scalar::FloatingPoint(n.as_f64().unwrap_or_default().into())),
        },
        Value::String(s) => Yaml::Value(Scalar::String(Cow::Owned(s.clone()))),
        Value::Array(items) => Yaml::Sequence(items.iter().map(yaml_of).collect()),
        Value::Object(map) => {
            let mut mapping = saphyr::Mapping::new();
            for (k, v) in map {
                mapping.insert(
                    Yaml::Value(Scalar::String(Cow::Owned(k.clone()))),
                    yaml_of(v),
                );
            }
            Yaml::Mapping(mapping)
        }
    }
}
