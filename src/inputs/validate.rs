//! Validation of `registry.yaml`: YAML syntax, the JSON Schema in `schemas/registry.schema.json`
//! (with the `jsonschema` crate), and the rules a schema cannot express. Every problem is
//! reported at its `file:line:col`, and all of them are reported at once.

use std::collections::BTreeMap;

use super::SourceFile;
use super::diagnostic::Diagnostic;
use super::document::{PositionedDocument, escape_pointer};
use super::topology::{self, LoadedTopologyFile};
use super::{cross_check, schema, yaml};
use crate::model::desired::DesiredState;
use crate::model::desired::{Lifecycle, RetryRoute};
use crate::model::queue_type::{QUEUE_TYPE_ARG, QueueType};
use crate::model::registry::{DeadLetter, Registry};
use crate::model::topic::{check_binding_key, check_queue_name};
use crate::model::{DLK_ARG, DLX_ARG};

/// A registry that parsed and validated, with the topology files beside it and the warnings
/// found on the way.
#[derive(Debug, Clone)]
pub struct LoadedRegistry {
    /// The file it came from.
    pub source: SourceFile,
    /// The registry as read, for what the desired state does not keep.
    pub registry: Registry,
    /// The files of `topology/`, in name order.
    pub topology: Vec<LoadedTopologyFile>,
    /// Problems that do not stop god.
    pub warnings: Vec<Diagnostic>,
}

impl LoadedRegistry {
    /// The desired state of the broker: the registry's, plus every topology file's objects.
    pub fn desired_state(&self) -> DesiredState {
        let mut state = self.registry.desired_state();
        for file in &self.topology {
            file.add_to(&mut state);
        }
        state
    }

    /// What the valid registry (and topology) hold, in a line per input.
    pub fn summary(&self) -> String {
        let registry = &self.registry;
        let count = |s: Lifecycle| registry.services.values().filter(|x| x.status == s).count();
        let desired = registry.desired_state();
        let mut summary = format!(
            "{} is valid: {} services ({} active, {} planned, {} deprecated); {} queues and {} bindings desired.",
            self.source.path.display(),
            registry.services.len(),
            count(Lifecycle::Active),
            count(Lifecycle::Planned),
            count(Lifecycle::Deprecated),
            desired.topology.queues.len(),
            desired.topology.bindings.len()
        );
        for file in &self.topology {
            let f = &file.file;
            let bindings =
                f.bindings.len() + f.queues.values().map(|q| q.bindings.len()).sum::<usize>();
            summary.push_str(&format!(
                "\n{} is valid: {} exchanges, {} queues, {bindings} bindings, {} policies, {} operator policies, {} limits.",
                file.source.path.display(),
                f.exchanges.len(),
                f.queues.len(),
                f.policies.len(),
                f.operator_policies.len(),
                f.limits.set().len()
            ));
        }
        summary
    }
}

/// Parses and validates a registry alone. On failure, every problem found (errors and
/// warnings).
pub fn load_registry(source: SourceFile) -> Result<LoadedRegistry, Vec<Diagnostic>> {
    load_inputs(source, Vec::new())
}

/// Parses and validates a registry and the files of its topology folder, and checks them
/// against each other (a name defined twice, a binding to an exchange nobody defines). On
/// failure, every problem found.
pub fn load_inputs(
    source: SourceFile,
    topology: Vec<SourceFile>,
) -> Result<LoadedRegistry, Vec<Diagnostic>> {
    let (doc, registry, mut problems) = parse_registry(&source)?;
    let parsed = topology::parse(topology);
    problems.extend(cross_check::check(
        &cross_check::RegistryInput {
            source: &source,
            doc: &doc,
            registry: &registry,
        },
        &parsed,
    ));
    problems.extend(parsed.problems);
    let topology = parsed.loaded;
    if problems.iter().any(Diagnostic::is_error) {
        return Err(problems);
    }
    Ok(LoadedRegistry {
        source,
        registry,
        topology,
        warnings: problems,
    })
}

/// Parses a registry and runs its own checks: the document, the registry, and its warnings.
fn parse_registry(
    source: &SourceFile,
) -> Result<(PositionedDocument, Registry, Vec<Diagnostic>), Vec<Diagnostic>> {
    let doc = match yaml::parse(&source.text) {
        Ok(doc) => doc,
        Err(e) => {
            return Err(vec![yaml::syntax_problem(source, &e)]);
        }
    };
    let mut problems = schema::registry().problems(source, &doc);
    if problems.iter().any(Diagnostic::is_error) {
        return Err(problems);
    }
    let registry: Registry = match serde_json::from_value(doc.value.clone()) {
        Ok(r) => r,
        Err(e) => {
            problems.push(Diagnostic::error(
                source,
                1,
                1,
                format!("cannot read the registry: {e}"),
            ));
            return Err(problems);
        }
    };
    problems.extend(
        RuleCheck {
            source,
            doc: &doc,
            registry: &registry,
        }
        .run(),
    );
    if problems.iter().any(Diagnostic::is_error) {
        return Err(problems);
    }
    Ok((doc, registry, problems))
}

/// The checks a JSON Schema cannot express.
struct RuleCheck<'a> {
    source: &'a SourceFile,
    doc: &'a PositionedDocument,
    registry: &'a Registry,
}

impl RuleCheck<'_> {
    fn run(&self) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        self.check_exchange(&mut out);
        let mut seen: BTreeMap<String, (String, String)> = BTreeMap::new();
        if let Some(queue) = &self.registry.exchange.unroutable {
            let pointer = "/exchange/unroutable";
            match check_queue_name(queue) {
                Err(why) => out.push(self.at(
                    pointer,
                    format!("queue {queue:?}: {why}"),
                    "rename the queue",
                )),
                Ok(()) => {
                    self.check_unique("exchange.unroutable", queue, pointer, &mut seen, &mut out);
                }
            }
        }
        for (id, service) in &self.registry.services {
            let base = format!("/services/{}", escape_pointer(id));
            self.check_pairing(id, &base, &mut out);
            self.check_routing_keys(&base, &service.routing_keys, &mut out);
            self.check_queue_names(id, &base, &mut seen, &mut out);
            self.check_queue_type(id, &base, &mut out);
            self.check_retry(id, &base, &mut seen, &mut out);
            out.extend(self.dead_lettering_twice(id, &base));
            if service.queues().is_empty() && !service.routing_keys.is_empty() {
                out.push(self.warning_at(
                    &format!("{base}/routing_keys"),
                    format!(
                        "service \"{id}\" has routing_keys but no queue_name: they bind nothing"
                    ),
                    "add a queue_name, or remove routing_keys from a producer",
                ));
            }
        }
        out
    }

    /// A service whose `arguments` set dead-lettering that god's policy would set too: the
    /// arguments win in RabbitMQ, so the warning says where rejected messages really go.
    fn dead_lettering_twice(&self, id: &str, base: &str) -> Option<Diagnostic> {
        let service = &self.registry.services[id];
        let queue = service.queues().into_iter().next()?;
        let queue_type = self.registry.queue_type_of(service);
        let dlq = service.dead_letter_queue(&queue, queue_type)?;
        let set = |key: &str| service.arguments.get(key).and_then(|v| v.as_str());
        let (exchange, key) = (set(DLX_ARG), set(DLK_ARG));
        let god_target = match service.retry.is_empty() {
            true => dlq,
            false => RetryRoute::queue_names(&queue, 0).remove(0),
        };
        let goes = match (exchange, key) {
            (Some(""), Some(key)) => format!("queue {key}"),
            (Some(exchange), Some(key)) => format!("exchange \"{exchange}\" with key {key}"),
            (Some(exchange), None) => format!("exchange \"{exchange}\" with their own keys"),
            (None, Some(_)) => format!(
                "nowhere new (x-dead-letter-routing-key without x-dead-letter-exchange), not to {god_target}"
            ),
            (None, None) => return None,
        };
        let verdict = match goes == format!("queue {god_target}") {
            true => format!("they agree: rejected messages go to queue {god_target}"),
            false => format!(
                "rejected messages go to {goes}, not to queue {god_target} as god's policy would send them"
            ),
        };
        Some(self.warning_at(
            &format!("{base}/arguments/{}", escape_pointer(if exchange.is_some() { DLX_ARG } else { DLK_ARG })),
            format!(
                "service \"{id}\": arguments set dead-lettering that god's dead-letter policy would set too; the queue's arguments win in RabbitMQ and god's policy leaves it out: {verdict}"
            ),
            "keep them when the service's consumers declare them (as the platform's aio-pika consumers do); else remove them and god's policy dead-letters the queue",
        ))
    }

    fn at(&self, pointer: &str, message: String, hint: &str) -> Diagnostic {
        let pos = self.doc.position_of(pointer);
        Diagnostic::error(self.source, pos.line, pos.col, message).with_hint(hint)
    }

    fn warning_at(&self, pointer: &str, message: String, hint: &str) -> Diagnostic {
        let pos = self.doc.position_of(pointer);
        Diagnostic::warning(self.source, pos.line, pos.col, message).with_hint(hint)
    }

    fn check_exchange(&self, out: &mut Vec<Diagnostic>) {
        let name = &self.registry.exchange.name;
        if name.starts_with("amq.") {
            out.push(self.at(
                "/exchange/name",
                format!(
                    "exchange \"{name}\": names starting with \"amq.\" are reserved by RabbitMQ"
                ),
                "name the bus exchange yourself, e.g. bloodbank.events.v1",
            ));
        }
    }

    fn check_pairing(&self, id: &str, base: &str, out: &mut Vec<Diagnostic>) {
        let service = &self.registry.services[id];
        if let Some(queues) = &service.queue_names {
            if queues.len() != service.routing_keys.len() {
                out.push(self.at(
                    &format!("{base}/queue_names"),
                    format!(
                        "service \"{id}\": queue_names has {} entries but routing_keys has {}; they are paired by position",
                        queues.len(),
                        service.routing_keys.len()
                    ),
                    "give exactly one routing key per queue, in the same order",
                ));
            }
            if matches!(service.dead_letter, Some(DeadLetter::Named(_))) {
                out.push(self.at(
                    &format!("{base}/dead_letter"),
                    format!(
                        "service \"{id}\": a named dead_letter queue cannot serve its {} queues",
                        queues.len()
                    ),
                    "use dead_letter: true (each queue gets <queue>_dlq) or false",
                ));
            }
        }
    }

    /// What RabbitMQ refuses for the service's queue type: a `queue_type` that contradicts
    /// `arguments`, quorum options on another type, arguments of other types, dead-lettering
    /// from a stream.
    fn check_queue_type(&self, id: &str, base: &str, out: &mut Vec<Diagnostic>) {
        let service = &self.registry.services[id];
        if service.queues().is_empty() {
            return;
        }
        let queue_type = self.registry.queue_type_of(service);
        let kind = queue_type.as_str();
        if let (Some(declared), Some(raw)) = (
            service.settings.queue_type,
            service
                .arguments
                .get(QUEUE_TYPE_ARG)
                .and_then(|v| v.as_str()),
        ) && declared.as_str() != raw
        {
            out.push(self.at(
                &format!("{base}/queue_type"),
                format!(
                    "service \"{id}\": queue_type is {kind} but arguments.x-queue-type is {raw:?}"
                ),
                "keep one of the two: queue_type is the named form of x-queue-type",
            ));
        }
        if queue_type != QueueType::Quorum {
            for option in service.settings.quorum_options() {
                out.push(self.at(
                    &format!("{base}/{option}"),
                    format!("service \"{id}\": {option} applies to quorum queues, and its queues are {kind}"),
                    "set queue_type: quorum (or defaults: {queue_type: quorum}), or remove it",
                ));
            }
        }
        for key in service.arguments.keys() {
            if let Some(owner) = queue_type.refuses(key) {
                out.push(self.at(
                    &format!("{base}/arguments/{}", escape_pointer(key)),
                    format!("service \"{id}\": {key} is an argument of {owner} queues; RabbitMQ refuses it for a {kind} queue (406 from 3.11 on, silently ignored before)"),
                    "remove it, or change queue_type",
                ));
            }
        }
        if !queue_type.dead_letters()
            && matches!(
                service.dead_letter,
                Some(DeadLetter::Enabled(true) | DeadLetter::Named(_))
            )
        {
            out.push(self.at(
                &format!("{base}/dead_letter"),
                format!("service \"{id}\": stream queues cannot dead-letter"),
                "remove dead_letter: a stream keeps its messages, and consumers read them again from an offset",
            ));
        }
    }

    /// `retry` needs a queue that dead-letters (a stream cannot, `dead_letter: false` does
    /// not) for the messages that fail every stage; its queues' names must be free.
    fn check_retry(
        &self,
        id: &str,
        base: &str,
        seen: &mut BTreeMap<String, (String, String)>,
        out: &mut Vec<Diagnostic>,
    ) {
        let service = &self.registry.services[id];
        if service.retry.is_empty() || service.queues().is_empty() {
            return;
        }
        let pointer = format!("{base}/retry");
        let queue_type = self.registry.queue_type_of(service);
        let problem = if !queue_type.dead_letters() {
            Some((
                "stream queues cannot dead-letter, so a stream service cannot retry",
                "remove retry, or use queue_type: quorum",
            ))
        } else if service.dead_letter == Some(DeadLetter::Enabled(false)) {
            Some((
                "retry needs a dead-letter queue for the messages that fail every stage, and dead_letter is false",
                "remove dead_letter: false (or name the dead-letter queue)",
            ))
        } else {
            None
        };
        if let Some((why, hint)) = problem {
            out.push(self.at(&pointer, format!("service \"{id}\": {why}"), hint));
            return;
        }
        for queue in service.queues() {
            for name in RetryRoute::queue_names(&queue, service.retry.len()) {
                self.check_unique(id, &name, &pointer, seen, out);
            }
        }
    }

    fn check_routing_keys(&self, base: &str, keys: &[String], out: &mut Vec<Diagnostic>) {
        for (i, key) in keys.iter().enumerate() {
            if let Err(why) = check_binding_key(key) {
                out.push(self.at(
                    &format!("{base}/routing_keys/{i}"),
                    format!("routing key {key:?}: {why}"),
                    "a binding key is words separated by dots; `*` matches one word and `#` zero or more, each as a whole word",
                ));
            }
        }
    }

    fn check_queue_names(
        &self,
        id: &str,
        base: &str,
        seen: &mut BTreeMap<String, (String, String)>,
        out: &mut Vec<Diagnostic>,
    ) {
        let service = &self.registry.services[id];
        let several = service.queues().len() > 1;
        for (i, queue) in service.queues().into_iter().enumerate() {
            let pointer = match &service.queue_names {
                Some(_) => format!("{base}/queue_names/{i}"),
                None => format!("{base}/queue_name"),
            };
            let mut sound = true;
            if let Err(why) = check_queue_name(&queue) {
                out.push(self.at(
                    &pointer,
                    format!("queue {queue:?}: {why}"),
                    "rename the queue",
                ));
                sound = false;
            }
            sound &= self.check_unique(id, &queue, &pointer, seen, out);
            let named = matches!(service.dead_letter, Some(DeadLetter::Named(_)));
            // A dead-letter queue derived from a broken name, or a named one on several queues
            // (reported by check_pairing), would only repeat a problem already reported.
            if !sound || (named && several) {
                continue;
            }
            let queue_type = self.registry.queue_type_of(service);
            if let Some(dlq) = service.dead_letter_queue(&queue, queue_type) {
                let dl_pointer = if named {
                    format!("{base}/dead_letter")
                } else {
                    pointer.clone()
                };
                if let Err(why) = check_queue_name(&dlq) {
                    out.push(self.at(&dl_pointer, format!("dead-letter queue {dlq:?}: {why}"), "shorten the queue name or name the dead-letter queue with dead_letter: NAME"));
                }
                self.check_unique(id, &dlq, &dl_pointer, seen, out);
            }
        }
    }

    fn check_unique(
        &self,
        id: &str,
        queue: &str,
        pointer: &str,
        seen: &mut BTreeMap<String, (String, String)>,
        out: &mut Vec<Diagnostic>,
    ) -> bool {
        if let Some((other, other_pointer)) = seen.get(queue) {
            let pos = self.doc.position_of(other_pointer);
            out.push(self.at(
                pointer,
                format!(
                    "duplicate queue name \"{queue}\": service \"{id}\" and service \"{other}\" (at {}:{}:{}) both use it",
                    self.source.path.display(),
                    pos.line,
                    pos.col
                ),
                "every queue (dead-letter queues included) belongs to exactly one service",
            ));
            false
        } else {
            seen.insert(queue.to_string(), (id.to_string(), pointer.to_string()));
            true
        }
    }
}

/// A registry from YAML text that must be valid: for the unit tests of the modules that take one.
#[cfg(test)]
pub(crate) fn registry_from_text(text: &str) -> crate::model::registry::Registry {
    let source = SourceFile {
        path: "registry.yaml".into(),
        text: text.into(),
    };
    load_registry(source).expect("valid registry").registry
}

#[cfg(test)]
mod tests {
    use super::*;
    use indoc::indoc;
    use std::path::PathBuf;

    fn load(text: &str) -> Result<LoadedRegistry, Vec<Diagnostic>> {
        load_registry(SourceFile {
            path: PathBuf::from("registry.yaml"),
            text: text.to_string(),
        })
    }

    fn errors(text: &str) -> Vec<String> {
        load(text)
            .unwrap_err()
            .iter()
            .filter(|d| d.is_error())
            .map(Diagnostic::headline)
            .collect()
    }

    /// A registry of these services (written unindented): its first service is on line 7.
    fn with_services(services: &str) -> String {
        let head = indoc! {r#"
            version: "1.0"
            exchange:
              name: bus
              type: topic
              durable: true
            services:
        "#};
        let indented: String = services.lines().map(|l| format!("  {l}\n")).collect();
        format!("{head}{indented}")
    }

    #[test]
    fn binding_keys() {
        for ok in ["#", "a.*.c", "a.#", "tool.mutation.#", "agent.*.message.*"] {
            assert!(check_binding_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a..b", ".a", "a.", "agent*", "a.#b", "a b"] {
            assert!(check_binding_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mismatched_pairing_is_reported_at_queue_names() {
        let text = with_services(indoc! {"
            s:
              queue_names: [q1, q2]
              routing_keys: [a]
        "});
        assert_eq!(
            errors(&text),
            vec![
                "registry.yaml:8:18: service \"s\": queue_names has 2 entries but routing_keys has 1; they are paired by position"
            ]
        );
    }

    #[test]
    fn duplicate_queues_name_both_places() {
        let text = with_services(indoc! {"
            a:
              queue_name: q
            b:
              queue_name: q
        "});
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("registry.yaml:10:17: duplicate queue name \"q\""),
            "{errs:?}"
        );
        assert!(errs[0].contains("registry.yaml:8:17"), "{errs:?}");
    }

    #[test]
    fn a_dead_letter_queue_colliding_with_a_queue_is_a_duplicate() {
        let text = with_services(indoc! {"
            a:
              queue_name: q
            b:
              queue_name: q_dlq
        "});
        assert_eq!(errors(&text).len(), 1);
    }

    #[test]
    fn schema_violations_carry_the_pointer_and_position() {
        let text = with_services(indoc! {"
            a:
              queue_name: q
              status: live
        "});
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("registry.yaml:9:13: /services/a/status: "),
            "{errs:?}"
        );
    }

    #[test]
    fn reserved_and_invalid_names_are_errors() {
        let text = with_services(indoc! {r#"
            a:
              queue_name: amq.mine
              routing_keys: ["a..b"]
        "#});
        let errs = errors(&text);
        assert_eq!(errs.len(), 2, "{errs:?}");
    }

    #[test]
    fn named_dead_letter_on_several_queues_is_an_error() {
        let text = with_services(indoc! {"
            a:
              queue_names: [q1, q2]
              routing_keys: [a, b]
              dead_letter: mine
        "});
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains("named dead_letter"), "{errs:?}");
    }

    #[test]
    fn retry_needs_a_queue_that_dead_letters() {
        let text = with_services(indoc! {"
            a:
              queue_name: q
              dead_letter: false
              retry: [5s]
            b:
              queue_name: s
              queue_type: stream
              retry: [5s]
        "});
        let errs = errors(&text);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0]
                .starts_with("registry.yaml:10:12: service \"a\": retry needs a dead-letter queue"),
            "{errs:?}"
        );
        assert!(
            errs[1].contains("a stream service cannot retry"),
            "{errs:?}"
        );
    }

    #[test]
    fn the_unroutable_queue_is_a_queue_name_like_any_other() {
        let text = indoc! {"
            version: \"1.0\"
            exchange:
              name: bus
              unroutable: parked
            services:
              a:
                queue_name: parked
        "};
        let errs = errors(text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("registry.yaml:7:17: duplicate queue name \"parked\""),
            "{errs:?}"
        );
        assert!(errs[0].contains("registry.yaml:4:15"), "{errs:?}");
    }

    #[test]
    fn a_retry_queue_colliding_with_another_queue_is_a_duplicate() {
        let text = with_services(indoc! {"
            a:
              queue_name: q
              retry: [5s, 30s]
            b:
              queue_name: q.retry.2
        "});
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].contains("duplicate queue name \"q.retry.2\""),
            "{errs:?}"
        );
    }

    #[test]
    fn yaml_syntax_errors_have_a_line() {
        let errs = errors(indoc! {"
            exchange:
              name: [bus
            services: {}
        "});
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("registry.yaml:3:"), "{errs:?}");
    }

    #[test]
    fn a_typo_in_a_key_is_caught_at_the_key_with_the_key_it_misspells() {
        let text = with_services(indoc! {"
            a:
              queue_name: q
              dead_leter: false
        "});
        assert_eq!(
            errors(&text),
            vec!["registry.yaml:9:5: unknown key \"dead_leter\" in /services/a"]
        );
        let problems = load_registry(SourceFile {
            path: "registry.yaml".into(),
            text,
        })
        .unwrap_err();
        assert!(
            problems[0]
                .render()
                .contains("did you mean \"dead_letter\"?"),
            "{}",
            problems[0].render()
        );
    }
}
