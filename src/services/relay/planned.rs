//! The relay's history as god's plan knows it: a relay component of components.toml keeps its
//! history in a stream, which `god plan` shows, `god apply` declares when it is missing (with an
//! epoch of its own, as the relay would) and `god graph` draws. The stream's settings are read
//! where the relay reads them: its command's flags, else its environment, else the defaults.

use serde_json::Value;

use super::history::{DEFAULT_MAX_AGE, DEFAULT_MAX_BYTES, DEFAULT_STREAM};
use crate::model::containers::{ContainerSpec, EnvSource};
use crate::model::desired::DesiredState;
use crate::model::queue_type::{EPOCH_ARGUMENT, QUEUE_TYPE_ARG};
use crate::model::{Arguments, BindingSpec, QueueSpec};
use crate::plan::{ResourceKind, binding_id, object_id};
use crate::services::builtin::EXCHANGE_VARIABLE;

/// The stream a relay component keeps its history in, bound to the exchange it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedHistory {
    /// The stream's name.
    pub stream: String,
    /// Its binding key on the exchange.
    pub binding_key: String,
    /// `x-max-age`.
    pub max_age: String,
    /// `x-max-length-bytes`.
    pub max_bytes: u64,
    /// The exchange the relay reads, when its component names one (else the registry's).
    pub exchange: Option<String>,
    /// The component that runs the relay.
    pub component: String,
}

impl PlannedHistory {
    /// The history of a relay container; None when it runs without one (`--no-history`,
    /// `GOD_RELAY_NO_HISTORY`).
    pub fn of(spec: &ContainerSpec) -> Option<Self> {
        let setting = |flag: &str, variables: &[&str]| {
            flag_value(&spec.command, flag).or_else(|| {
                variables
                    .iter()
                    .find_map(|v| env_value(spec, v).filter(|v| !v.is_empty()))
            })
        };
        let off = spec.command.iter().any(|a| a == "--no-history")
            || env_value(spec, "GOD_RELAY_NO_HISTORY").is_some_and(|v| !falsey(&v));
        if off {
            return None;
        }
        Some(Self {
            stream: setting("--history-stream", &["GOD_RELAY_HISTORY"])
                .unwrap_or_else(|| DEFAULT_STREAM.to_string()),
            binding_key: setting("--binding-key", &["ROUTING_KEY", "RELAY_ROUTING_KEY"])
                .unwrap_or_else(|| "#".to_string()),
            max_age: setting("--history-max-age", &["GOD_RELAY_HISTORY_MAX_AGE"])
                .unwrap_or_else(|| DEFAULT_MAX_AGE.to_string()),
            max_bytes: setting("--history-max-bytes", &["GOD_RELAY_HISTORY_MAX_BYTES"])
                .and_then(|v| v.parse().ok())
                .unwrap_or(DEFAULT_MAX_BYTES),
            exchange: env_value(spec, EXCHANGE_VARIABLE),
            component: spec.component.clone(),
        })
    }

    /// Adds the stream and its binding to `desired` (with `epoch`, used only if it is created),
    /// unless registry.yaml or topology/ already declares a queue of that name, or the relay
    /// reads an exchange they do not declare.
    pub fn add_to(&self, desired: &mut DesiredState, epoch: &str) {
        let exchange = self
            .exchange
            .as_deref()
            .unwrap_or(&desired.exchange)
            .to_string();
        if desired.topology.queues.contains_key(&self.stream)
            || !desired.topology.exchanges.contains_key(&exchange)
        {
            return;
        }
        let source = format!("components.toml (the history of relay {})", self.component);
        let queue = QueueSpec {
            name: self.stream.clone(),
            durable: true,
            auto_delete: false,
            arguments: self.arguments(epoch),
        };
        let binding = BindingSpec::queue(&exchange, &self.stream, &self.binding_key);
        desired
            .sources
            .insert(object_id(ResourceKind::Queue, &self.stream), source.clone());
        desired.sources.insert(binding_id(&binding), source);
        desired.topology.queues.insert(self.stream.clone(), queue);
        desired.topology.bindings.insert(binding);
    }

    fn arguments(&self, epoch: &str) -> Arguments {
        [
            (QUEUE_TYPE_ARG, Value::from("stream")),
            ("x-max-age", Value::from(self.max_age.as_str())),
            ("x-max-length-bytes", Value::from(self.max_bytes)),
            (EPOCH_ARGUMENT, Value::from(epoch)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// The value of `--flag VALUE` or `--flag=VALUE` in a command.
fn flag_value(command: &[String], flag: &str) -> Option<String> {
    command.iter().enumerate().find_map(|(i, arg)| {
        if arg == flag {
            return command.get(i + 1).cloned();
        }
        arg.strip_prefix(flag)
            .and_then(|rest| rest.strip_prefix('='))
            .map(str::to_string)
    })
}

/// A plain value of the container's environment (not a secret or a template).
fn env_value(spec: &ContainerSpec, variable: &str) -> Option<String> {
    match spec.env.get(variable) {
        Some(EnvSource::Value(value)) => Some(value.clone()),
        _ => None,
    }
}

/// What clap takes for "no" in a flag's variable.
fn falsey(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "" | "0" | "n" | "no" | "f" | "false" | "off"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::SourceFile;
    use crate::inputs::components::load_components;
    use crate::inputs::validate::registry_from_text;

    fn relay(component: &str) -> ContainerSpec {
        let text = format!("[components.relay]\nbuiltin = \"relay\"\n{component}");
        let loaded = load_components(SourceFile {
            path: "components.toml".into(),
            text,
        })
        .unwrap();
        let desired = loaded.desired("p", &|_| None, &[]).unwrap();
        desired.containers.into_iter().next().unwrap()
    }

    fn bus() -> DesiredState {
        registry_from_text("version: \"1\"\nexchange: {name: bus, type: topic}\nservices: {}\n")
            .desired_state()
    }

    #[test]
    fn the_defaults_are_the_relays() {
        let history = PlannedHistory::of(&relay("")).unwrap();
        assert_eq!(history.stream, DEFAULT_STREAM);
        assert_eq!(history.binding_key, "#");
        assert_eq!(history.max_age, DEFAULT_MAX_AGE);
        assert_eq!(history.max_bytes, DEFAULT_MAX_BYTES);
    }

    #[test]
    fn flags_win_over_the_environment_as_in_the_relay() {
        let spec = relay(concat!(
            "command = [\"/god\", \"relay\", \"--history-max-age=2h\", \"--binding-key\", \"a.#\"]\n",
            "env = { GOD_RELAY_HISTORY_MAX_AGE = \"7D\", GOD_RELAY_HISTORY = \"h\", RELAY_ROUTING_KEY = \"b.#\" }\n",
        ));
        let history = PlannedHistory::of(&spec).unwrap();
        assert_eq!(history.max_age, "2h");
        assert_eq!(history.binding_key, "a.#");
        assert_eq!(history.stream, "h");
    }

    #[test]
    fn a_relay_without_history_plans_no_stream() {
        assert!(
            PlannedHistory::of(&relay(
                "command = [\"/god\", \"relay\", \"--no-history\"]\n"
            ))
            .is_none()
        );
        assert!(
            PlannedHistory::of(&relay("env = { GOD_RELAY_NO_HISTORY = \"true\" }\n")).is_none()
        );
        assert!(
            PlannedHistory::of(&relay("env = { GOD_RELAY_NO_HISTORY = \"false\" }\n")).is_some()
        );
    }

    #[test]
    fn the_stream_is_added_bound_with_its_source_unless_declared_or_elsewhere() {
        let mut desired = bus();
        PlannedHistory::of(&relay(""))
            .unwrap()
            .add_to(&mut desired, "e1");
        let queue = &desired.topology.queues[DEFAULT_STREAM];
        assert_eq!(queue.arguments[EPOCH_ARGUMENT], "e1");
        assert_eq!(queue.arguments["x-max-length-bytes"], DEFAULT_MAX_BYTES);
        let binding = BindingSpec::queue("bus", DEFAULT_STREAM, "#");
        assert!(desired.topology.bindings.contains(&binding));
        assert!(
            desired
                .source_of(&binding_id(&binding))
                .contains("relay relay")
        );

        let mut elsewhere = bus();
        let spec = relay("env = { GOD_EXCHANGE = \"other\" }\n");
        PlannedHistory::of(&spec)
            .unwrap()
            .add_to(&mut elsewhere, "e1");
        assert!(!elsewhere.topology.queues.contains_key(DEFAULT_STREAM));
    }
}
