//! Planner tests of a cluster: queues on a node that is down, leaders placed, quorum
//! options on the live version, migrations stopped part-way.

use indoc::indoc;

use super::tests::{ONE, PRUNE, desired, group_setting, queue};
use crate::model::ObservedState;
use crate::plan::diff::{PlanOptions, plan};
use crate::plan::{Action, NoteKind, Plan, Resource, ResourceKind};
use crate::testing::converged;
use serde_json::json;

/// The state a broker shows with a node down: `queues` listed (the definitions keep them) but
/// without their bindings and god's records of them.
fn with_node_down(mut observed: ObservedState, queues: &[&str]) -> ObservedState {
    for q in queues {
        observed.topology.bindings.retain(|b| b.destination != *q);
        observed.managed_queues.remove(*q);
        observed
            .unavailable
            .insert(q.to_string(), "its node n1@host is down".into());
    }
    observed.cluster_nodes = 3;
    observed
}

#[test]
fn queues_on_a_node_that_is_down_are_neither_adopted_nor_bound_again_but_reported() {
    let d = desired(indoc! {"
        svc:
          queue_name: q
          routing_keys: [a.b]
        other:
          queue_name: o
          routing_keys: [o.#]
    "});
    let observed = with_node_down(converged(&d), &["q", "q_dlq"]);
    let p = plan(&d, &observed, PRUNE);
    assert!(p.changes.is_empty(), "{:#?}", p.changes);
    let reported: Vec<(NoteKind, &str)> = p.notes.iter().map(|n| (n.kind, n.id.as_str())).collect();
    assert_eq!(
        reported,
        [
            (NoteKind::Unavailable, "queue/q"),
            (NoteKind::Unavailable, "queue/q_dlq")
        ]
    );
}

#[test]
fn a_change_the_inputs_ask_of_an_unavailable_queue_is_refused_until_it_is_back() {
    let d =
        desired("svc:\n  queue_name: q\n  routing_keys: [a.b]\n  arguments: {x-max-length: 5}\n");
    let mut observed = converged(&d);
    observed.topology.queues.insert(
        "q".into(),
        queue(
            "q",
            json!({"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "q_dlq"}),
        ),
    );
    let observed = with_node_down(observed, &["q"]);
    let p = plan(&d, &observed, PlanOptions::default());
    let replace = p
        .changes
        .iter()
        .find(|c| c.id == "queue/q")
        .expect("the replacement stays in the plan");
    assert_eq!(replace.action, Action::Replace);
    let why = replace.blocked.as_deref().unwrap_or_default();
    assert!(
        why.contains("queue q is unavailable (its node n1@host is down)"),
        "{why}"
    );
    assert!(
        p.changes.iter().all(|c| c.kind != ResourceKind::Binding),
        "its bindings are not planned: {:#?}",
        p.changes
    );
}

#[test]
fn in_a_cluster_a_new_replicated_queue_gets_a_balanced_leader_and_a_declared_one_no_change() {
    let d = desired("svc:\n  queue_name: q\n  queue_type: quorum\n  routing_keys: [a.b]\n");
    let single = plan(&d, &ObservedState::default(), PlanOptions::default());
    let cluster = ObservedState {
        cluster_nodes: 3,
        ..ObservedState::default()
    };
    let spread = plan(&d, &cluster, PlanOptions::default());
    let locator = |p: &Plan, name: &str| match p
        .changes
        .iter()
        .find(|c| c.id == format!("queue/{name}"))
        .and_then(|c| c.after.clone())
    {
        Some(Resource::Queue(q)) => q.arguments.get("x-queue-leader-locator").cloned(),
        other => panic!("no queue {name}: {other:?}"),
    };
    let placed = |p: &Plan, name: &str| group_setting(p, name, "queue-leader-locator");
    assert_eq!(placed(&single, "q"), None, "one node: nothing to balance");
    assert_eq!(placed(&spread, "q"), Some(json!("balanced")));
    assert_eq!(placed(&spread, "q_dlq"), Some(json!("balanced")));
    assert_eq!(
        locator(&spread, "q"),
        None,
        "the queue is declared as its consumers declare it; god's policy places it"
    );
    let mut declared_before = converged(&d);
    declared_before.cluster_nodes = 3;
    assert!(
        plan(&d, &declared_before, PlanOptions::default())
            .changes
            .is_empty(),
        "a queue declared without the locator is no difference"
    );
}

#[test]
fn the_plan_says_what_a_missing_delivery_limit_means_on_the_live_version() {
    let d = desired(indoc! {"
        capped:
          queue_name: c
          queue_type: quorum
          delivery_limit: 5
          routing_keys: [a.b]
        open:
          queue_name: o
          queue_type: quorum
          routing_keys: [o.#]
          dead_letter: false
    "});
    let on = |version: Option<&str>| {
        let observed = ObservedState {
            broker_version: version.map(str::to_string),
            ..ObservedState::default()
        };
        plan(&d, &observed, PlanOptions::default())
            .notes
            .into_iter()
            .find(|n| n.id == "delivery_limit")
            .map(|n| n.message)
    };
    let three = on(Some("3.10.8")).expect("a note on 3.x");
    assert!(
        three.contains("1 quorum queue(s) declared without a delivery limit (o)"),
        "{three}"
    );
    assert!(
        three.contains(
            "on RabbitMQ 3.10.8, this broker, a message that keeps failing is redelivered forever"
        ),
        "{three}"
    );
    let four = on(Some("4.1.0")).expect("a note on 4.x");
    assert!(four.contains("limit redeliveries to 20"), "{four}");
    assert_eq!(on(None), None, "no version, no guess");
    let converged_note = plan(&d, &converged(&d), PlanOptions::default())
        .notes
        .into_iter()
        .any(|n| n.id == "delivery_limit");
    assert!(
        !converged_note,
        "said when queues are declared, not on every plan"
    );
}

#[test]
fn a_holding_queue_left_by_an_interrupted_migration_is_reported() {
    let d = desired(ONE);
    let mut observed = converged(&d);
    observed.topology.queues.insert(
        "q.god-migrating".into(),
        queue("q.god-migrating", json!({"x-queue-type": "quorum"})),
    );
    let p = plan(&d, &observed, PRUNE);
    assert!(p.changes.is_empty(), "{:#?}", p.changes);
    let note = p
        .notes
        .iter()
        .find(|n| n.id == "queue/q.god-migrating")
        .expect("a note");
    assert!(
        note.message
            .contains("a migration of q stopped part-way: its messages may wait here"),
        "{}",
        note.message
    );
}
