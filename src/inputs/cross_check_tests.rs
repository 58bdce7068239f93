//! Tests of the checks across registry.yaml and the files of topology/ (`cross_check`),
//! through the whole loading path that `god validate` takes.

use indoc::indoc;

use super::SourceFile;
use super::diagnostic::Diagnostic;
use super::validate::load_inputs;

const REGISTRY: &str = indoc! {r#"
    version: "1.0"
    exchange:
      name: bus
      type: topic
    services:
      svc:
        queue_name: svc.q
        routing_keys: ["a.#"]
"#};

/// The headlines of every problem (errors and warnings) of a registry and topology files.
fn problems(files: &[(&str, &str)]) -> Vec<String> {
    let registry = SourceFile {
        path: "registry.yaml".into(),
        text: REGISTRY.into(),
    };
    let files = files
        .iter()
        .map(|(path, text)| SourceFile {
            path: path.into(),
            text: text.to_string(),
        })
        .collect();
    let found = match load_inputs(registry, files) {
        Ok(loaded) => loaded.warnings,
        Err(problems) => problems,
    };
    found.iter().map(Diagnostic::headline).collect()
}

#[test]
fn a_valid_topology_has_no_problem_and_adds_its_objects() {
    let text = indoc! {r#"
        exchanges:
          fireflies.events: {type: topic, alternate_exchange: parked.x}
          parked.x: {type: fanout}
        queues:
          rag:
            message_ttl: 24h
            dead_letter_exchange: fireflies.events
            dead_letter_routing_key: failed
            bindings:
              - {exchange: fireflies.events, routing_key: "fireflies.#"}
        bindings:
          - {source: bus, destination: fireflies.events, destination_type: exchange, routing_key: "fireflies.#"}
        policies:
          cap: {pattern: "^rag$", apply_to: queues, definition: {max-length: 10}}
        limits: {max_queues: 10}
    "#};
    assert_eq!(problems(&[("topology/f.yaml", text)]), Vec::<String>::new());
}

#[test]
fn a_name_defined_twice_across_files_names_both_places() {
    let a = "exchanges:\n  x: {type: topic}\n";
    let b = "queues:\n  q: {}\nexchanges:\n  x: {type: fanout}\n";
    assert_eq!(
        problems(&[("topology/a.yaml", a), ("topology/b.yaml", b)]),
        vec![
            "topology/b.yaml:4:3: duplicate exchange \"x\": defined here and at topology/a.yaml:2:3"
        ]
    );
}

#[test]
fn a_queue_of_the_registry_defined_again_names_the_service() {
    let a = "queues:\n  svc.q_dlq: {}\n";
    assert_eq!(
        problems(&[("topology/a.yaml", a)]),
        vec![
            "topology/a.yaml:2:3: duplicate queue \"svc.q_dlq\": defined here and at registry.yaml:7:17"
        ]
    );
}

#[test]
fn a_retry_queue_of_the_registry_defined_again_is_a_duplicate() {
    let registry = SourceFile {
        path: "registry.yaml".into(),
        text: format!("{REGISTRY}    retry: [5s]\n"),
    };
    let topology = SourceFile {
        path: "topology/a.yaml".into(),
        text: "queues:\n  svc.q.retry.1: {}\n".into(),
    };
    let problems = load_inputs(registry, vec![topology]).unwrap_err();
    let found: Vec<String> = problems.iter().map(Diagnostic::headline).collect();
    assert_eq!(
        found,
        vec![
            "topology/a.yaml:2:3: duplicate queue \"svc.q.retry.1\": defined here and at registry.yaml:9:12"
        ]
    );
}

#[test]
fn an_unknown_key_is_reported_at_its_line() {
    let a = "queues:\n  q:\n    message_tll: 5s\n";
    assert_eq!(
        problems(&[("topology/a.yaml", a)]),
        vec!["topology/a.yaml:3:5: unknown key \"message_tll\" in /queues/q"]
    );
}

#[test]
fn a_policy_pattern_that_does_not_compile_is_reported_at_its_line() {
    let a = "policies:\n  p:\n    pattern: \"(unclosed\"\n    definition: {max-length: 1}\n";
    let found = problems(&[("topology/a.yaml", a)]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("topology/a.yaml:3:14: policy \"p\": pattern \"(unclosed\" is not a valid regular expression"),
        "{found:?}"
    );
}

#[test]
fn bindings_to_and_from_undefined_objects_are_reported_at_their_line() {
    let a = indoc! {"
        queues:
          q:
            bindings:
              - exchange: nowhere
        bindings:
          - source: bus
            destination: ghost
            destination_type: exchange
          - source: amq.topic
            destination: q
    "};
    assert_eq!(
        problems(&[("topology/a.yaml", a)]),
        vec![
            "topology/a.yaml:4:19: binding from undefined exchange \"nowhere\"",
            "topology/a.yaml:7:18: binding to undefined exchange \"ghost\"",
            "topology/a.yaml:6:5: routing key \"\": empty (it would only match events published with an empty routing key)",
        ]
    );
}

#[test]
fn what_a_queue_type_refuses_and_bad_references_are_errors() {
    let a = indoc! {"
        exchanges:
          e: {type: headers, alternate_exchange: missing}
        queues:
          q:
            queue_type: quorum
            auto_delete: true
            arguments: {x-max-priority: 5}
          s:
            queue_type: stream
            message_ttl: 5s
        policies:
          god.mine: {pattern: x, definition: {x-message-ttl: 5}}
    "};
    let found = problems(&[("topology/a.yaml", a)]);
    let expected = [
        "topology/a.yaml:12:3: policy \"god.mine\": names starting with \"god.\" are god's own",
        "topology/a.yaml:2:42: alternate exchange \"missing\" is not defined",
        "topology/a.yaml:12:39: warning: policy \"god.mine\": RabbitMQ 3.10 knows no policy key \"x-message-ttl\" and refuses the policy",
        "topology/a.yaml:6:18: queue \"q\": quorum queues cannot be auto-delete",
        "topology/a.yaml:7:17: queue \"q\": x-max-priority is an argument of classic queues; RabbitMQ refuses it for a quorum queue",
        "topology/a.yaml:10:18: queue \"s\": stream queues refuse message_ttl",
    ];
    assert_eq!(found, expected);
}
