//! The checks across registry.yaml and the files of `topology/`: a name is defined once
//! (a duplicate names both places), every binding, alternate exchange and dead-letter exchange
//! names an exchange the inputs define, policy patterns compile, and each standalone queue is
//! one RabbitMQ accepts for its type.

use std::collections::{BTreeMap, BTreeSet};

use super::SourceFile;
use super::diagnostic::Diagnostic;
use super::document::{Position, PositionedDocument, escape_pointer};
use super::topology::{InvalidTopologyFile, LoadedTopologyFile, ParsedTopology, QueueDecl};
use crate::model::desired::{RetryRoute, unroutable_exchange};
use crate::model::queue_type::QueueType;
use crate::model::registry::{DeadLetter, Registry};
use crate::model::topic::{check_binding_key, check_queue_name};
use crate::model::{DestinationType, ExchangeKind, MANAGED_RECORD_EXCHANGE, POLICY_PREFIX};

/// The registry, as the cross checks need it.
pub struct RegistryInput<'a> {
    /// Its file.
    pub source: &'a SourceFile,
    /// Its document, for positions.
    pub doc: &'a PositionedDocument,
    /// Its content.
    pub registry: &'a Registry,
}

/// Keys RabbitMQ 3.10 accepts in a policy definition; others are refused at apply.
const POLICY_KEYS: [&str; 27] = [
    "alternate-exchange",
    "dead-letter-exchange",
    "dead-letter-routing-key",
    "dead-letter-strategy",
    "delivery-limit",
    "expires",
    "federation-upstream",
    "federation-upstream-set",
    "ha-mode",
    "ha-params",
    "ha-promote-on-failure",
    "ha-promote-on-shutdown",
    "ha-sync-batch-size",
    "ha-sync-mode",
    "initial-cluster-size",
    "max-age",
    "max-in-memory-bytes",
    "max-in-memory-length",
    "max-length",
    "max-length-bytes",
    "message-ttl",
    "overflow",
    "queue-leader-locator",
    "queue-master-locator",
    "queue-mode",
    "queue-version",
    "stream-max-segment-size-bytes",
];

/// Every problem across the inputs. The names of a file that breaks the schema count too;
/// when a file is not even YAML, its names are unknown, and references are not checked.
pub fn check(registry: &RegistryInput<'_>, parsed: &ParsedTopology) -> Vec<Diagnostic> {
    let mut check = CrossCheck::default();
    check.declare_registry(registry);
    let files = &parsed.loaded;
    for file in files {
        check.declare_file(file);
    }
    for file in &parsed.invalid {
        check.declare_invalid(file);
    }
    for file in files {
        if parsed.complete {
            check.references(file);
        }
        check.policies(file);
        check.queues(file);
    }
    check.out
}

/// A place in an input file.
#[derive(Clone)]
struct Place<'a> {
    source: &'a SourceFile,
    at: Position,
}

impl Place<'_> {
    fn shown(&self) -> String {
        format!(
            "{}:{}:{}",
            self.source.path.display(),
            self.at.line,
            self.at.col
        )
    }

    fn error(&self, message: String, hint: &str) -> Diagnostic {
        Diagnostic::error(self.source, self.at.line, self.at.col, message).with_hint(hint)
    }

    fn warning(&self, message: String, hint: &str) -> Diagnostic {
        Diagnostic::warning(self.source, self.at.line, self.at.col, message).with_hint(hint)
    }
}

fn value_at<'a>(source: &'a SourceFile, doc: &PositionedDocument, pointer: &str) -> Place<'a> {
    Place {
        source,
        at: doc.position_of(pointer),
    }
}

fn key_at<'a>(source: &'a SourceFile, doc: &PositionedDocument, pointer: &str) -> Place<'a> {
    Place {
        source,
        at: doc.key_position_of(pointer),
    }
}

#[derive(Default)]
struct CrossCheck<'a> {
    /// Where each (kind, name) was first defined.
    defined: BTreeMap<(&'static str, String), Place<'a>>,
    /// The type of each defined exchange.
    exchange_types: BTreeMap<String, ExchangeKind>,
    out: Vec<Diagnostic>,
}

impl<'a> CrossCheck<'a> {
    fn define(&mut self, kind: &'static str, name: &str, place: Place<'a>) {
        let key = (kind, name.to_string());
        if let Some(first) = self.defined.get(&key) {
            let message = format!(
                "duplicate {kind} \"{name}\": defined here and at {}",
                first.shown()
            );
            self.out.push(place.error(
                message,
                "a name is defined once across registry.yaml and the files of topology/: remove one of the two",
            ));
        } else {
            self.defined.insert(key, place);
        }
    }

    fn is_defined(&self, kind: &'static str, name: &str) -> bool {
        self.defined.contains_key(&(kind, name.to_string()))
    }

    /// The registry's bus exchange, and every queue of its services (dead-letter queues too).
    fn declare_registry(&mut self, input: &RegistryInput<'a>) {
        let registry = input.registry;
        let place = |pointer: &str| value_at(input.source, input.doc, pointer);
        self.define("exchange", &registry.exchange.name, place("/exchange/name"));
        self.exchange_types.insert(
            registry.exchange.name.clone(),
            registry.exchange.kind.clone(),
        );
        if let Some(queue) = &registry.exchange.unroutable {
            let alternate = unroutable_exchange(&registry.exchange.name);
            self.define("exchange", &alternate, place("/exchange/unroutable"));
            self.define("queue", queue, place("/exchange/unroutable"));
        }
        let mut seen = BTreeSet::new();
        for (id, service) in &registry.services {
            let base = format!("/services/{}", escape_pointer(id));
            let queue_type = registry.queue_type_of(service);
            for (i, queue) in service.queues().into_iter().enumerate() {
                let pointer = match &service.queue_names {
                    Some(_) => format!("{base}/queue_names/{i}"),
                    None => format!("{base}/queue_name"),
                };
                let dead_letter = service.dead_letter_queue(&queue, queue_type);
                let dead_letter_pointer = match &service.dead_letter {
                    Some(DeadLetter::Named(_)) => format!("{base}/dead_letter"),
                    _ => pointer.clone(),
                };
                let retry = match (&dead_letter, service.retry.len()) {
                    (Some(_), stages) if stages > 0 => RetryRoute::queue_names(&queue, stages),
                    _ => Vec::new(),
                };
                let names = std::iter::once((queue, pointer.clone()))
                    .chain(dead_letter.map(|d| (d, dead_letter_pointer)))
                    .chain(retry.into_iter().map(|r| (r, format!("{base}/retry"))));
                // Duplicates within the registry are the registry check's to report.
                for (name, pointer) in names {
                    let unroutable = registry.exchange.unroutable.as_ref() == Some(&name);
                    if seen.insert(name.clone()) && !unroutable {
                        self.define("queue", &name, place(&pointer));
                    }
                }
            }
        }
    }

    /// The names a topology file defines.
    fn declare_file(&mut self, file: &'a LoadedTopologyFile) {
        let f = &file.file;
        let key = |pointer: String| key_at(&file.source, &file.doc, &pointer);
        for (name, e) in &f.exchanges {
            let place = key(format!("/exchanges/{}", escape_pointer(name)));
            self.exchange_name(name, &place);
            self.define("exchange", name, place);
            self.exchange_types
                .entry(name.clone())
                .or_insert_with(|| e.kind.clone());
        }
        for name in f.queues.keys() {
            let place = key(format!("/queues/{}", escape_pointer(name)));
            if let Err(why) = check_queue_name(name) {
                self.out
                    .push(place.error(format!("queue {name:?}: {why}"), "rename the queue"));
            }
            self.define("queue", name, place);
        }
        for (kind, section, names) in [
            ("policy", "policies", f.policies.keys().collect::<Vec<_>>()),
            (
                "operator policy",
                "operator_policies",
                f.operator_policies.keys().collect(),
            ),
        ] {
            for name in names {
                let place = key(format!("/{section}/{}", escape_pointer(name)));
                if name.starts_with(POLICY_PREFIX) {
                    self.out.push(place.error(
                        format!("{kind} \"{name}\": names starting with \"{POLICY_PREFIX}\" are god's own"),
                        "rename it",
                    ));
                }
                self.define(kind, name, place);
            }
        }
        for (name, _) in f.limits.set() {
            let pointer = format!("/limits/{}", name.replace('-', "_"));
            self.define("vhost limit", name, key(pointer));
        }
    }

    /// The names a file that breaks the schema defines, read from its document.
    fn declare_invalid(&mut self, file: &'a InvalidTopologyFile) {
        let sections = [
            ("exchanges", "exchange"),
            ("queues", "queue"),
            ("policies", "policy"),
            ("operator_policies", "operator policy"),
        ];
        for (section, kind) in sections {
            let Some(names) = file.doc.value.get(section).and_then(|v| v.as_object()) else {
                continue;
            };
            for (name, body) in names {
                let pointer = format!("/{section}/{}", escape_pointer(name));
                self.define(kind, name, key_at(&file.source, &file.doc, &pointer));
                let exchange_type = body.get("type").and_then(|t| t.as_str());
                if let (true, Some(kind)) = (section == "exchanges", exchange_type) {
                    self.exchange_types
                        .entry(name.clone())
                        .or_insert_with(|| ExchangeKind::from(kind));
                }
            }
        }
    }

    fn exchange_name(&mut self, name: &str, place: &Place<'a>) {
        let why = if name.starts_with("amq.") {
            "names starting with \"amq.\" are reserved by RabbitMQ"
        } else if name == MANAGED_RECORD_EXCHANGE {
            "god records what it manages in this exchange"
        } else {
            return;
        };
        self.out
            .push(place.error(format!("exchange \"{name}\": {why}"), "rename the exchange"));
    }

    /// An exchange a binding or argument names: one the inputs define, or one of RabbitMQ's
    /// own (`amq.*`).
    fn knows_exchange(&self, name: &str) -> bool {
        name.starts_with("amq.") || self.is_defined("exchange", name)
    }

    fn references(&mut self, file: &'a LoadedTopologyFile) {
        let f = &file.file;
        let value = |pointer: String| value_at(&file.source, &file.doc, &pointer);
        for (name, e) in &f.exchanges {
            if let Some(alternate) = &e.alternate_exchange {
                let pointer = format!("/exchanges/{}/alternate_exchange", escape_pointer(name));
                self.exchange_reference(alternate, "alternate exchange", value(pointer));
            }
        }
        for (name, q) in &f.queues {
            let base = format!("/queues/{}", escape_pointer(name));
            if let Some(dlx) = q.dead_letter_exchange.as_deref().filter(|x| !x.is_empty()) {
                self.exchange_reference(
                    dlx,
                    "dead-letter exchange",
                    value(format!("{base}/dead_letter_exchange")),
                );
            }
            for (i, b) in q.bindings.iter().enumerate() {
                let at = format!("{base}/bindings/{i}");
                self.binding(&b.exchange, &b.routing_key, &b.arguments, &at, file);
            }
        }
        for (i, b) in f.bindings.iter().enumerate() {
            let at = format!("/bindings/{i}");
            let (kind, known) = match b.destination_type {
                DestinationType::Queue => ("queue", self.is_defined("queue", &b.destination)),
                DestinationType::Exchange => ("exchange", self.knows_exchange(&b.destination)),
            };
            if !known {
                self.out.push(value(format!("{at}/destination")).error(
                    format!("binding to undefined {kind} \"{}\"", b.destination),
                    &format!("define the {kind} in registry.yaml or a file of topology/ (god binds only what the inputs define)"),
                ));
            }
            self.binding(&b.source, &b.routing_key, &b.arguments, &at, file);
        }
    }

    fn exchange_reference(&mut self, name: &str, role: &str, place: Place<'a>) {
        if !self.knows_exchange(name) {
            self.out.push(place.error(
                format!("{role} \"{name}\" is not defined"),
                "define the exchange in a file of topology/, or correct the name",
            ));
        }
    }

    /// A binding's source exchange, key and arguments; `at` points at the binding.
    fn binding(
        &mut self,
        source: &str,
        key: &str,
        arguments: &crate::model::Arguments,
        at: &str,
        file: &'a LoadedTopologyFile,
    ) {
        let value = |pointer: String| value_at(&file.source, &file.doc, &pointer);
        let field = if file.doc.value.pointer(&format!("{at}/exchange")).is_some() {
            "exchange"
        } else {
            "source"
        };
        if !self.knows_exchange(source) {
            self.out.push(value(format!("{at}/{field}")).error(
                format!("binding from undefined exchange \"{source}\""),
                "define the exchange in registry.yaml or a file of topology/, or correct the name",
            ));
            return;
        }
        if self.exchange_types.get(source) == Some(&ExchangeKind::Topic)
            && let Err(why) = check_binding_key(key)
        {
            self.out.push(value(format!("{at}/routing_key")).error(
                format!("routing key {key:?}: {why}"),
                "a binding key is words separated by dots; `*` matches one word and `#` zero or more, each as a whole word",
            ));
        }
        if let Some(matching) = arguments.get("x-match") {
            let valid = ["all", "any", "all-with-x", "any-with-x"];
            if !matching.as_str().is_some_and(|m| valid.contains(&m)) {
                self.out
                    .push(value(format!("{at}/arguments/x-match")).error(
                    format!(
                        "x-match is {matching}; RabbitMQ knows all, any, all-with-x and any-with-x"
                    ),
                    "all: every header listed must match; any: one is enough",
                ));
            }
        }
    }

    fn policies(&mut self, file: &'a LoadedTopologyFile) {
        let f = &file.file;
        for (section, policies) in [
            ("policies", &f.policies),
            ("operator_policies", &f.operator_policies),
        ] {
            for (name, p) in policies {
                let base = format!("/{section}/{}", escape_pointer(name));
                if let Err(e) = regex::Regex::new(&p.pattern) {
                    let why = e
                        .to_string()
                        .lines()
                        .last()
                        .unwrap_or_default()
                        .trim()
                        .to_string();
                    self.out.push(value_at(&file.source, &file.doc, &format!("{base}/pattern")).error(
                        format!("policy \"{name}\": pattern {:?} is not a valid regular expression ({why})", p.pattern),
                        "a policy pattern is a regular expression over names, e.g. ^transcripts\\. (escape dots)",
                    ));
                }
                for key in p
                    .definition
                    .keys()
                    .filter(|k| !POLICY_KEYS.contains(&k.as_str()))
                {
                    let pointer = format!("{base}/definition/{}", escape_pointer(key));
                    self.out.push(key_at(&file.source, &file.doc, &pointer).warning(
                        format!("policy \"{name}\": RabbitMQ 3.10 knows no policy key {key:?} and refuses the policy"),
                        "policy keys are written without `x-` (message-ttl, max-length, dead-letter-exchange, ...)",
                    ));
                }
            }
        }
    }

    /// What RabbitMQ refuses for a queue's type.
    fn queues(&mut self, file: &'a LoadedTopologyFile) {
        for (name, q) in &file.file.queues {
            let base = format!("/queues/{}", escape_pointer(name));
            let queue_type = q.settings.queue_type.unwrap_or_default();
            for problem in type_problems(q, queue_type) {
                let (field, message, hint) = problem;
                let pointer = format!("{base}/{field}");
                let place = if field.starts_with("arguments/") {
                    key_at(&file.source, &file.doc, &pointer)
                } else {
                    value_at(&file.source, &file.doc, &pointer)
                };
                self.out
                    .push(place.error(format!("queue \"{name}\": {message}"), hint));
            }
        }
    }
}

/// A queue's settings its type refuses: (field, problem, hint).
fn type_problems(q: &QueueDecl, queue_type: QueueType) -> Vec<(String, String, &'static str)> {
    let kind = queue_type.as_str();
    let mut out = Vec::new();
    if queue_type != QueueType::Classic {
        if !q.durable {
            out.push((
                "durable".into(),
                format!("{kind} queues are always durable"),
                "remove durable: false",
            ));
        }
        if q.auto_delete {
            out.push((
                "auto_delete".into(),
                format!("{kind} queues cannot be auto-delete"),
                "remove auto_delete",
            ));
        }
    }
    if queue_type != QueueType::Quorum {
        for option in q.settings.quorum_options() {
            out.push((
                option.into(),
                format!("{option} applies to quorum queues, and this one is {kind}"),
                "set queue_type: quorum, or remove it",
            ));
        }
    }
    if queue_type == QueueType::Stream {
        let stream_refuses = [
            ("message_ttl", q.message_ttl.is_some()),
            ("expires", q.expires.is_some()),
            ("dead_letter_exchange", q.dead_letter_exchange.is_some()),
            (
                "dead_letter_routing_key",
                q.dead_letter_routing_key.is_some(),
            ),
        ];
        for (field, set) in stream_refuses {
            if set {
                out.push((
                    field.into(),
                    format!("stream queues refuse {field}"),
                    "streams keep messages by size and age (max_length_bytes, arguments.x-max-age)",
                ));
            }
        }
    }
    for key in q.arguments.keys() {
        if let Some(owner) = queue_type.refuses(key) {
            out.push((
                format!("arguments/{}", escape_pointer(key)),
                format!(
                    "{key} is an argument of {owner} queues; RabbitMQ refuses it for a {kind} queue"
                ),
                "remove it, or change queue_type",
            ));
        }
    }
    out
}
