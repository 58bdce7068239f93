//! Event envelopes: completing what the client left out, and validating against
//! `schemas/envelope.schema.json` and the event's schema in the Holyfields tree the gateway was
//! given (see [`crate::contracts::tree`]).

use std::path::Path;

use serde_json::{Map, Value, json};

pub use crate::contracts::tree::Violation;
use crate::contracts::tree::{SchemaTree, Selected};

/// The envelope schema, shipped in `schemas/` and compiled into the binary.
pub const ENVELOPE_SCHEMA: &str = include_str!("../../../schemas/envelope.schema.json");

/// The schemas events are checked against.
pub struct Schemas {
    envelope: jsonschema::Validator,
    tree: Option<SchemaTree>,
    require: bool,
}

/// What an event brings to be checked: the whole envelope a client posted, or a payload the
/// gateway wrapped (only the payload is the client's: a schema of the whole event checks its
/// payload part).
pub enum Posted<'a> {
    /// An envelope posted whole (`POST /events/custom`).
    Envelope(&'a Value),
    /// The envelope the gateway built around a posted payload.
    Wrapped(&'a Value),
}

impl Schemas {
    /// The envelope schema, plus the schema tree at `tree` when given; with `require`, an event
    /// of a type without a schema is refused. A tree with errors is refused with them.
    pub fn load(tree: Option<&Path>, require: bool) -> Result<Self, String> {
        let envelope: Value =
            serde_json::from_str(ENVELOPE_SCHEMA).expect("the shipped envelope schema is JSON");
        let envelope = jsonschema::options()
            .should_validate_formats(true)
            .build(&envelope)
            .expect("the shipped envelope schema compiles");
        let tree = match tree {
            Some(dir) => Some(SchemaTree::load(dir)?),
            None => None,
        };
        Ok(Self {
            envelope,
            tree,
            require,
        })
    }

    /// The tree's problems (errors and warnings), for the log at start.
    pub fn tree(&self) -> Option<&SchemaTree> {
        self.tree.as_ref()
    }

    /// Every violation of the envelope schema and of the event's schema.
    pub fn violations(&self, posted: Posted<'_>) -> Vec<Violation> {
        let envelope = match posted {
            Posted::Envelope(e) | Posted::Wrapped(e) => e,
        };
        let mut out = self.envelope_violations(envelope);
        let event_type = envelope
            .get("event_type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match self.select(event_type, envelope.get("version")) {
            Selected::Schema(schema) => out.extend(match posted {
                Posted::Envelope(_) => schema.event_violations(envelope),
                Posted::Wrapped(_) => schema.payload_violations(&envelope["payload"]),
            }),
            Selected::NoSuchVersion(versions) => out.push(Violation {
                pointer: "/version".into(),
                message: format!(
                    "{event_type} has no schema of the version this event asks for ({}); it has versions {}",
                    envelope.get("version").unwrap_or(&Value::Null),
                    versions.iter().map(|v| format!("v{v}")).collect::<Vec<_>>().join(", ")
                ),
                schema: None,
            }),
            Selected::Unknown if self.require => out.push(Violation {
                pointer: "/event_type".into(),
                message: format!("{event_type} has no schema, and the gateway requires one (--require-schema)"),
                schema: None,
            }),
            Selected::Unknown => {}
        }
        out
    }

    /// What a payload violates under the schema of `schema_type` (the upstream's agent route
    /// checks an agent's payload against the schema of its action, `agent.<action>`); None
    /// when that type has no schema.
    pub fn payload_against(&self, schema_type: &str, payload: &Value) -> Option<Vec<Violation>> {
        match self.select(schema_type, None) {
            Selected::Schema(schema) => Some(schema.payload_violations(payload)),
            Selected::Unknown | Selected::NoSuchVersion(_) => None,
        }
    }

    /// Whether the tree has a schema for `event_type`.
    pub fn has_schema(&self, event_type: &str) -> bool {
        !matches!(self.select(event_type, None), Selected::Unknown)
    }

    fn select(&self, event_type: &str, version: Option<&Value>) -> Selected<'_> {
        match &self.tree {
            Some(tree) => tree.select(event_type, version),
            None => Selected::Unknown,
        }
    }

    /// What an envelope violates of god's envelope schema alone.
    pub fn envelope_violations(&self, envelope: &Value) -> Vec<Violation> {
        if self.envelope.is_valid(envelope) {
            return Vec::new();
        }
        self.envelope
            .iter_errors(envelope)
            .map(|e| Violation {
                pointer: e.instance_path().to_string(),
                message: e.to_string(),
                schema: None,
            })
            .collect()
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

/// The `source` of an envelope the gateway builds: this host, and what posted it.
pub fn source(kind: &str, app: &str) -> Value {
    json!({"host": crate::host_name().unwrap_or("localhost"), "type": kind, "app": app})
}

/// Wraps a bare payload into an envelope for `event_type`, from `source`.
pub fn wrap(event_type: &str, payload: Value, source: Value) -> Map<String, Value> {
    let mut envelope = Map::new();
    envelope.insert("event_type".into(), json!(event_type));
    envelope.insert("source".into(), source);
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
