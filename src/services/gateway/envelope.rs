//! Event envelopes: completing what the client left out, and validating against
//! `schemas/envelope.schema.json` and, when one exists, `schemas/events/<event_type>.json`.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value, json};

/// The envelope schema, shipped in `schemas/` and compiled into the binary.
pub const ENVELOPE_SCHEMA: &str = include_str!("../../../schemas/envelope.schema.json");

/// One schema violation: where (a JSON pointer) and what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// JSON pointer into the envelope.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

/// The schemas events are checked against.
pub struct Schemas {
    envelope: jsonschema::Validator,
    payloads: HashMap<String, jsonschema::Validator>,
}

impl Schemas {
    /// The envelope schema, plus a payload schema per `<event_type>.json` in `dir` (if it exists).
    pub fn load(dir: Option<&Path>) -> Result<Self, String> {
        let envelope: Value =
            serde_json::from_str(ENVELOPE_SCHEMA).expect("the shipped envelope schema is JSON");
        let envelope =
            jsonschema::validator_for(&envelope).expect("the shipped envelope schema compiles");
        let mut payloads = HashMap::new();
        if let Some(dir) = dir.filter(|d| d.is_dir()) {
            for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
                let path = entry.map_err(|e| e.to_string())?.path();
                let Some(name) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".json"))
                else {
                    continue;
                };
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let schema: Value =
                    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
                let validator = jsonschema::validator_for(&schema)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                payloads.insert(name.to_string(), validator);
            }
        }
        Ok(Self { envelope, payloads })
    }

    /// Every violation of the envelope schema and of the event type's payload schema.
    pub fn violations(&self, envelope: &Value) -> Vec<Violation> {
        let event_type = envelope
            .get("event_type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let payload_schema = self.payloads.get(event_type);
        let payload_valid = match (payload_schema, envelope.get("payload")) {
            (Some(schema), Some(payload)) => schema.is_valid(payload),
            _ => true,
        };
        // The common case, a valid event, takes the fast path that collects nothing.
        if payload_valid && self.envelope.is_valid(envelope) {
            return Vec::new();
        }
        let mut out: Vec<Violation> = self
            .envelope
            .iter_errors(envelope)
            .map(|e| Violation {
                pointer: e.instance_path().to_string(),
                message: e.to_string(),
            })
            .collect();
        let event_type = envelope
            .get("event_type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let (Some(schema), Some(payload)) =
            (self.payloads.get(event_type), envelope.get("payload"))
        {
            out.extend(schema.iter_errors(payload).map(|e| Violation {
                pointer: format!("/payload{}", e.instance_path()),
                message: e.to_string(),
            }));
        }
        out
    }
}

/// Fills what the client may leave out: `event_id` (a new UUID), `timestamp` (now, UTC),
/// `version`, `correlation_ids`.
pub fn complete(envelope: &mut Map<String, Value>) {
    envelope
        .entry("event_id")
        .or_insert_with(|| json!(uuid::Uuid::new_v4().to_string()));
    envelope.entry("timestamp").or_insert_with(|| json!(now()));
    envelope.entry("version").or_insert_with(|| json!("1.0.0"));
    envelope
        .entry("correlation_ids")
        .or_insert_with(|| json!([]));
}

/// Wraps a bare payload into an envelope for `event_type`.
pub fn wrap(event_type: &str, payload: Value) -> Map<String, Value> {
    let mut envelope = Map::new();
    envelope.insert("event_type".into(), json!(event_type));
    envelope.insert(
        "source".into(),
        json!({"host": crate::host_name().unwrap_or("localhost"), "type": "webhook", "app": "god-gateway"}),
    );
    envelope.insert("agent_context".into(), Value::Null);
    envelope.insert("payload".into(), payload);
    complete(&mut envelope);
    envelope
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
