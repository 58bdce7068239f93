//! The imported objects shaped as god's files write them: exchanges, queues, bindings,
//! policies and limits as topology/ does, services in the upstream registry's key order, and
//! the registry's whole text in its layout.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::services::{DeadLetter, ServiceOut};
use crate::import::yaml_writer;
use crate::model::queue_type::{QueueSettings, QueueType};
use crate::model::{
    BindingSpec, DLK_ARG, DLX_ARG, DestinationType, ExchangeSpec, ObservedState, POLICY_PREFIX,
    PolicySpec, QueueSpec,
};

/// An exchange of the topology file; `known` says whether its alternate exchange is written
/// too (else it stays a raw argument, which god does not check).
pub(super) fn exchange_value(e: &ExchangeSpec, mut known: impl FnMut(&str) -> bool) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), json!(e.kind));
    if !e.durable {
        out.insert("durable".into(), json!(false));
    }
    if e.auto_delete {
        out.insert("auto_delete".into(), json!(true));
    }
    if e.internal {
        out.insert("internal".into(), json!(true));
    }
    let mut arguments = e.arguments.clone();
    let alternate = arguments.get("alternate-exchange").and_then(Value::as_str);
    if alternate.is_some_and(&mut known) {
        let alternate = arguments.remove("alternate-exchange").unwrap_or_default();
        out.insert("alternate_exchange".into(), alternate);
    }
    if !arguments.is_empty() {
        out.insert("arguments".into(), json!(arguments));
    }
    Value::Object(out)
}

/// Arguments a topology queue names as keys of its own.
const NAMED_QUEUE_ARGUMENTS: [(&str, &str); 7] = [
    ("x-message-ttl", "message_ttl"),
    ("x-expires", "expires"),
    ("x-max-length", "max_length"),
    ("x-max-length-bytes", "max_length_bytes"),
    ("x-overflow", "overflow"),
    (DLX_ARG, "dead_letter_exchange"),
    (DLK_ARG, "dead_letter_routing_key"),
];

/// A standalone queue of the topology file; `known` says whether its dead-letter exchange is
/// written by name (else its dead-letter arguments stay raw arguments).
pub(super) fn queue_value(
    q: &QueueSpec,
    bindings: Vec<Value>,
    known: impl FnOnce(&str) -> bool,
) -> Value {
    let mut out = Map::new();
    if !q.durable {
        out.insert("durable".into(), json!(false));
    }
    let (settings, mut arguments) = QueueSettings::from_arguments(&q.arguments);
    if let Value::Object(named) = json!(settings) {
        out.extend(named.into_iter().filter(|(_, v)| !v.is_null()));
    }
    let dead_letter_exchange = arguments.get(DLX_ARG).and_then(Value::as_str);
    let named = NAMED_QUEUE_ARGUMENTS.iter();
    let named: Vec<_> = if dead_letter_exchange.is_some_and(known) {
        named.collect()
    } else {
        named
            .filter(|(a, _)| ![DLX_ARG, DLK_ARG].contains(a))
            .collect()
    };
    for (argument, key) in named {
        if let Some(value) = arguments.remove(*argument) {
            out.insert((*key).into(), value);
        }
    }
    if !arguments.is_empty() {
        out.insert("arguments".into(), json!(arguments));
    }
    if !bindings.is_empty() {
        out.insert("bindings".into(), Value::Array(bindings));
    }
    Value::Object(out)
}

pub(super) fn queue_binding_value(b: &BindingSpec) -> Value {
    let mut out = Map::new();
    out.insert("exchange".into(), json!(b.source));
    out.insert("routing_key".into(), json!(b.routing_key));
    if !b.arguments.is_empty() {
        out.insert("arguments".into(), json!(b.arguments));
    }
    Value::Object(out)
}

pub(super) fn binding_value(b: &BindingSpec) -> Value {
    let mut out = Map::new();
    out.insert("source".into(), json!(b.source));
    out.insert("destination".into(), json!(b.destination));
    if b.destination_type == DestinationType::Exchange {
        out.insert("destination_type".into(), json!("exchange"));
    }
    out.insert("routing_key".into(), json!(b.routing_key));
    if !b.arguments.is_empty() {
        out.insert("arguments".into(), json!(b.arguments));
    }
    Value::Object(out)
}

/// Policies other than god's own, as a topology file writes them.
pub(super) fn policies_value(policies: &BTreeMap<String, PolicySpec>) -> Map<String, Value> {
    policies
        .values()
        .filter(|p| !p.name.starts_with(POLICY_PREFIX))
        .map(|p| {
            let value = json!({
                "pattern": p.pattern,
                "apply_to": p.apply_to,
                "priority": p.priority,
                "definition": p.definition,
            });
            (p.name.clone(), value)
        })
        .collect()
}

pub(super) fn limits_value(limits: &BTreeMap<String, i64>) -> Map<String, Value> {
    limits
        .iter()
        .filter_map(|(name, value)| {
            let key = match name.as_str() {
                "max-queues" => "max_queues",
                "max-connections" => "max_connections",
                _ => return None,
            };
            Some((key.to_string(), json!(value)))
        })
        .collect()
}

/// The registry's text: the upstream layout (header, version, exchange, services, then
/// event_subscriptions), each service's keys in the upstream order, god's keys after them.
pub(super) fn registry_text(bus: &str, state: &ObservedState, services: &[ServiceOut]) -> String {
    let vhost = state.vhost.as_str();
    let exchange = &state.topology.exchanges[bus];
    let mut text = String::from(
        "# Bloodbank Subscriber Services Registry\n\
         #\n\
         # Written by `god import registry` from a live vhost: one service per queue bound to\n\
         # the bus exchange, dead-letter queues from their x-dead-letter-* arguments. Names and\n\
         # descriptions are guesses: edit them. `god plan` should only adopt what exists.\n\n\
         version: \"1.0\"\n",
    );
    if vhost != "/" {
        text.push_str(&format!("vhost: {}\n", yaml_writer::quoted(vhost)));
    }
    text.push_str("\n# Exchange configuration\n");
    let exchange_block = json!({"exchange": {
        "name": exchange.name,
        "type": exchange.kind,
        "durable": exchange.durable,
    }});
    text.push_str(&yaml_writer::document(&exchange_block));
    text.push_str("\n# Service definitions\nservices:\n");
    let blocks: Vec<String> = services
        .iter()
        .map(|s| yaml_writer::block(&json!({ s.id.clone(): service_value(s) }), 2))
        .collect();
    text.push_str(&blocks.join("\n"));
    let mut subscriptions: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in services {
        for key in s.queues.iter().flat_map(|q| &q.keys) {
            let subscribers = subscriptions.entry(key.as_str()).or_default();
            if !subscribers.contains(&s.id.as_str()) {
                subscribers.push(&s.id);
            }
        }
    }
    if !subscriptions.is_empty() {
        text.push_str("\n# Event type to consuming services mapping\n");
        text.push_str(&yaml_writer::document(
            &json!({ "event_subscriptions": subscriptions }),
        ));
    }
    text
}

fn service_value(service: &ServiceOut) -> Value {
    let first = &service.queues[0];
    let names: Vec<&str> = service.queues.iter().map(|q| q.name.as_str()).collect();
    let mut out = Map::new();
    out.insert("name".into(), json!(service.id));
    out.insert(
        "description".into(),
        json!(format!(
            "Reads {} {} (imported from the live broker)",
            if names.len() == 1 { "queue" } else { "queues" },
            names.join(", ")
        )),
    );
    out.insert("type".into(), json!("event-consumer"));
    if names.len() == 1 {
        out.insert("queue_name".into(), json!(first.name));
    } else {
        out.insert("queue_names".into(), json!(names));
    }
    let keys: Vec<&String> = service.queues.iter().flat_map(|q| &q.keys).collect();
    out.insert("routing_keys".into(), json!(keys));
    out.insert("status".into(), json!("active"));
    if let Value::Object(named) = json!(first.settings) {
        let set = named.into_iter().filter(|(_, v)| !v.is_null());
        out.extend(set.filter(|(k, _)| k != "dead_letter_queue_type"));
    }
    match &first.dead_letter {
        DeadLetter::Default(other_type) => dead_letter_type(&mut out, *other_type),
        DeadLetter::Named(dlq, other_type) => {
            out.insert("dead_letter".into(), json!(dlq));
            dead_letter_type(&mut out, *other_type);
        }
        DeadLetter::Off if first.settings.queue_type == Some(QueueType::Stream) => {}
        DeadLetter::Off => {
            out.insert("dead_letter".into(), json!(false));
        }
    }
    if !first.arguments.is_empty() {
        out.insert("arguments".into(), json!(first.arguments));
    }
    if let Some(prefetch) = service.prefetch {
        out.insert("prefetch".into(), json!(prefetch));
    }
    if !first.retry.is_empty() {
        out.insert("retry".into(), json!(first.retry));
    }
    Value::Object(out)
}

fn dead_letter_type(out: &mut Map<String, Value>, other_type: Option<QueueType>) {
    if let Some(t) = other_type {
        out.insert("dead_letter_queue_type".into(), json!(t.as_str()));
    }
}
