//! `god import registry`: a registry written from a live vhost, in the upstream registry's
//! layout, with a topology file for what a registry cannot say.
//!
//! The rules, also in the README:
//! - the **bus exchange** is `--exchange`, else the topic exchange most queues are bound to;
//! - **one service per queue** bound to it, its routing keys from those bindings;
//! - a queue that dead-letters through the default exchange into a queue of its own (and no
//!   other queue does) has that queue as its **`dead_letter`**;
//! - queues named `services.<group>.<name>` that are each bound by exactly one routing key,
//!   with the same settings and dead-lettering, form **one service `<group>` with
//!   `queue_names`**, unless the broker shows them consumed by different connections;
//! - server-named, exclusive, auto-delete and unavailable queues, and god's own objects, are
//!   **left out** and listed;
//! - every other exchange, queue, binding and policy goes to `topology/imported.yaml`.

mod rules;
mod services;
mod shape;
mod vhost;

use std::path::{Path, PathBuf};

use serde_json::Value;

pub use vhost::{Consumer, LiveVhost};

use crate::import::yaml_writer;
use crate::inputs::SourceFile;
use crate::inputs::diagnostic::Diagnostic;
use crate::inputs::topology::TOPOLOGY_DIR;
use crate::inputs::validate::load_inputs;
use crate::plan::Action;
use crate::plan::diff::{PlanOptions, plan};

/// The file of `topology/` the objects a registry cannot express are written to.
pub const IMPORTED_TOPOLOGY_FILE: &str = "imported.yaml";

/// A registry (and topology file) written from a live vhost.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The bus exchange.
    pub exchange: String,
    /// The registry's text.
    pub registry: String,
    /// The text of `topology/imported.yaml`, when a registry cannot say everything.
    pub topology: Option<String>,
    /// Services written.
    pub services: usize,
    /// Queues written as dead-letter queues.
    pub dead_letter_queues: usize,
    /// Objects left out, each with why.
    pub left_out: Vec<(String, String)>,
    /// What was written another way than usual, each with why.
    pub notes: Vec<(String, String)>,
}

/// Writes a registry from a live vhost. `exchange`: the bus exchange, else the topic exchange
/// most queues are bound to. Errs with what to do when there is no bus exchange to take.
pub fn import(live: &LiveVhost, exchange: Option<&str>) -> Result<Imported, String> {
    let bus = rules::bus_exchange(&live.state, exchange)?;
    let mut scan = rules::Scan::new(live, &bus);
    let services = scan.services();
    let topology = scan.topology(&services);
    Ok(Imported {
        registry: shape::registry_text(&bus, &live.state, &services),
        topology: (!topology.is_empty()).then(|| {
            let header = format!(
                "# Written by `god import registry` from vhost {:?}: its objects a registry cannot say.\n\n",
                live.state.vhost
            );
            header + &yaml_writer::document(&Value::Object(topology))
        }),
        services: services.len(),
        dead_letter_queues: scan.dead_letter_queues.len(),
        left_out: scan.left_out,
        notes: scan.notes,
        exchange: bus,
    })
}

/// Where the topology file of a registry written to `registry_path` goes.
pub fn topology_path(registry_path: &Path) -> PathBuf {
    let dir = registry_path.parent().unwrap_or(Path::new(""));
    dir.join(TOPOLOGY_DIR).join(IMPORTED_TOPOLOGY_FILE)
}

/// What `god plan` would do with the imported files besides adopting what exists, a line per
/// change: nothing when the import says everything the vhost holds. Errs with every problem
/// when the files do not validate (a bug of the importer).
pub fn differences(
    imported: &Imported,
    registry_path: &Path,
    live: &LiveVhost,
) -> Result<Vec<String>, Vec<Diagnostic>> {
    let registry = SourceFile {
        path: registry_path.to_path_buf(),
        text: imported.registry.clone(),
    };
    let topology = imported
        .topology
        .iter()
        .map(|text| SourceFile {
            path: topology_path(registry_path),
            text: text.clone(),
        })
        .collect();
    let desired = load_inputs(registry, topology)?.desired_state();
    let planned = plan(&desired, &live.state, PlanOptions::default());
    Ok(planned
        .changes
        .iter()
        .filter(|c| c.action != Action::Adopt)
        .map(|c| format!("{} {}: {}", c.action.symbol(), c.id, c.cause))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Arguments, BindingSpec, ExchangeSpec, ObservedState, QueueSpec};
    use serde_json::json;

    /// A vhost with the bus `bus` and these queues (name, arguments, bus keys).
    fn vhost(queues: &[(&str, Value, &[&str])]) -> LiveVhost {
        let mut state = ObservedState {
            vhost: "/".into(),
            ..ObservedState::default()
        };
        let bus = ExchangeSpec {
            name: "bus".into(),
            kind: "topic".into(),
            durable: true,
            auto_delete: false,
            internal: false,
            arguments: Arguments::new(),
        };
        state.topology.exchanges.insert("bus".into(), bus);
        for (name, arguments, keys) in queues {
            let queue = QueueSpec {
                name: name.to_string(),
                durable: true,
                auto_delete: false,
                arguments: serde_json::from_value(arguments.clone()).unwrap(),
            };
            state.topology.queues.insert(name.to_string(), queue);
            for key in *keys {
                let binding = BindingSpec::queue("bus", name, key);
                state.topology.bindings.insert(binding);
            }
        }
        LiveVhost {
            state,
            ..LiveVhost::default()
        }
    }

    fn imported(live: &LiveVhost) -> Imported {
        let imported = import(live, None).unwrap();
        let differences = differences(&imported, Path::new("registry.yaml"), live).unwrap();
        assert!(
            differences.is_empty(),
            "{differences:?}\n{}",
            imported.registry
        );
        imported
    }

    fn consumer(connection: &str) -> Vec<Consumer> {
        let connection = connection.to_string();
        vec![Consumer {
            connection,
            prefetch: 10,
        }]
    }

    #[test]
    fn service_ids_follow_the_upstream_names() {
        let id = |name: &str| {
            let live = vhost(&[(name, json!({}), &["k"])]);
            let registry = imported(&live).registry;
            let start = registry.find("\nservices:\n  ").unwrap() + 13;
            registry[start..].split(':').next().unwrap().to_string()
        };
        assert_eq!(id("event_store_manager_queue"), "event-store-manager");
        assert_eq!(
            id("services.fireflies.transcript_processor"),
            "fireflies-transcript-processor"
        );
        assert_eq!(
            id("bus.bloodbank-ws-broadcaster"),
            "bloodbank-ws-broadcaster"
        );
        assert_eq!(id("agent.commands"), "agent-commands");
    }

    #[test]
    fn a_naming_group_is_one_service_unless_different_connections_read_it() {
        let queues: &[(&str, Value, &[&str])] = &[
            (
                "services.agent.feedback_router",
                json!({}),
                &["agent.feedback.requested"],
            ),
            (
                "services.agent.voice_soprano",
                json!({}),
                &["agent.*.message.*"],
            ),
        ];
        let mut live = vhost(queues);
        let registry = imported(&live).registry;
        assert!(registry.contains("  agent:\n"), "{registry}");
        assert!(registry.contains("    queue_names:\n"), "{registry}");
        assert!(
            !registry.contains("    prefetch"),
            "no consumers, no prefetch"
        );

        live.consumers
            .insert("services.agent.feedback_router".into(), consumer("c1"));
        live.consumers
            .insert("services.agent.voice_soprano".into(), consumer("c1"));
        let registry = imported(&live).registry;
        assert!(
            registry.contains("  agent:\n") && registry.contains("    prefetch: 10\n"),
            "{registry}"
        );

        live.consumers
            .insert("services.agent.voice_soprano".into(), consumer("c2"));
        let registry = imported(&live).registry;
        assert!(
            registry.contains("  agent-feedback-router:\n"),
            "{registry}"
        );
        assert!(registry.contains("  agent-voice-soprano:\n"), "{registry}");
        assert!(!registry.contains("queue_names"), "{registry}");
    }

    #[test]
    fn dead_letter_queues_are_recognised_by_name_type_and_shape() {
        let to =
            |dlq: &str| json!({"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq});
        let live = vhost(&[
            ("a", to("a_dlq"), &["a.#"]),
            ("a_dlq", json!({}), &[]),
            ("b", to("parked"), &["b.#"]),
            ("parked", json!({"x-queue-type": "quorum"}), &[]),
            ("c", to("c_dlq"), &["c.#"]),
            ("c_dlq", json!({"x-message-ttl": 1000}), &[]),
        ]);
        let imported = imported(&live);
        let registry = &imported.registry;
        let service = |id: &str| {
            let start = registry.find(&format!("  {id}:\n")).unwrap();
            registry[start..].split("\n\n").next().unwrap().to_string()
        };
        assert!(!service("a").contains("dead_letter"), "{registry}");
        assert!(
            service("b")
                .contains("    dead_letter: \"parked\"\n    dead_letter_queue_type: \"quorum\""),
            "{registry}"
        );
        // c_dlq has a TTL a registry's dead-letter queue cannot have: a queue of its own, and
        // c keeps its arguments.
        assert!(
            service("c")
                .contains("dead_letter: false\n    arguments:\n      x-dead-letter-exchange: \"\""),
            "{registry}"
        );
        assert!(
            imported
                .topology
                .unwrap()
                .contains("  c_dlq:\n    message_ttl: 1000\n")
        );
        assert_eq!(imported.dead_letter_queues, 2);
    }

    #[test]
    fn gods_retry_is_written_as_retry_and_its_queues_left_out() {
        let live = vhost(&[
            (
                "q",
                json!({"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "q.retry"}),
                &["q.#"],
            ),
            ("q.retry", json!({}), &[]),
            (
                "q.retry.1",
                json!({"x-message-ttl": 5000, "x-dead-letter-exchange": "god.retry"}),
                &[],
            ),
            (
                "q.retry.2",
                json!({"x-message-ttl": 120000, "x-dead-letter-exchange": "god.retry"}),
                &[],
            ),
            ("q_dlq", json!({}), &[]),
        ]);
        let imported = import(&live, None).unwrap();
        assert!(
            imported
                .registry
                .contains("    retry:\n      - \"5s\"\n      - \"2m\"\n"),
            "{}",
            imported.registry
        );
        assert!(
            !imported.registry.contains("dead_letter"),
            "{}",
            imported.registry
        );
        let left: Vec<&str> = imported.left_out.iter().map(|(o, _)| o.as_str()).collect();
        assert_eq!(
            left,
            ["queue/q.retry", "queue/q.retry.1", "queue/q.retry.2"]
        );
        assert!(imported.topology.is_none());
    }
}
