//! Table-like tests of the planner ([`super::diff`]): no server, desired state from registry
//! text, observed state written by hand.

use std::collections::BTreeMap;

use indoc::indoc;
use serde_json::json;

use crate::model::desired::DesiredState;
use crate::model::{BindingSpec, ObservedState, Origin, PolicySpec, QueueSpec, QueueStats};
use crate::plan::diff::{PlanOptions, plan};
use crate::plan::{Action, NoteKind, Plan, Resource, ResourceKind, removal_prerequisites};
use crate::testing::{converged, registry_from_yaml};

/// The desired state of a registry with exchange `bus` and the given services, written
/// unindented (they are indented under `services:` here).
pub(super) fn desired(services: &str) -> DesiredState {
    let indented: String = services.lines().map(|l| format!("  {l}\n")).collect();
    let text = format!(
        "version: \"1.0\"\nexchange:\n  name: bus\n  type: topic\n  durable: true\nservices:\n{indented}"
    );
    registry_from_yaml(&text).desired_state()
}

/// Prune on, data loss not allowed.
pub(super) const PRUNE: PlanOptions = PlanOptions {
    prune: true,
    allow_data_loss: false,
    migrate: false,
};

pub(super) const ONE: &str = indoc! {r#"
    svc:
      queue_name: q
      routing_keys: [a.b, "c.#"]
"#};

pub(super) fn ids(plan: &Plan, action: Action) -> Vec<String> {
    plan.changes
        .iter()
        .filter(|c| c.action == action)
        .map(|c| c.id.clone())
        .collect()
}

pub(super) fn queue(name: &str, args: serde_json::Value) -> QueueSpec {
    QueueSpec {
        name: name.into(),
        durable: true,
        auto_delete: false,
        arguments: serde_json::from_value(args).unwrap(),
    }
}

pub(super) fn binding(queue: &str, key: &str) -> BindingSpec {
    BindingSpec::queue("bus", queue, key)
}

#[test]
fn empty_vhost_gets_everything_in_dependency_order() {
    let d = desired(ONE);
    let p = plan(&d, &ObservedState::default(), PlanOptions::default());
    let order: Vec<&str> = p.changes.iter().map(|c| c.id.as_str()).collect();
    let group = order[2].to_string();
    assert!(group.starts_with("policy/god.queues."), "{order:?}");
    assert_eq!(
        order,
        vec![
            "exchange/bus",
            "exchange/god.dead-letters",
            group.as_str(),
            "queue/q_dlq",
            "queue/q",
            "binding/bus/queue/q/a.b",
            "binding/bus/queue/q/c.#",
            "binding/god.dead-letters/queue/q_dlq/{x-first-death-queue=\"q\", x-last-death-queue=\"q\", x-match=\"any-with-x\"}",
        ],
        "god's policy before the queue, so the queue never exists without it"
    );
    assert_eq!(
        (p.summary.add, p.summary.change, p.summary.destroy),
        (8, 0, 0)
    );
    assert!(
        p.notes.iter().any(|n| n.id == "exchange/god.managed"),
        "the plan says god declares its record exchange"
    );
    let q = p.changes.iter().find(|c| c.id == "queue/q").unwrap();
    let Some(Resource::Queue(spec)) = &q.after else {
        panic!()
    };
    assert!(
        spec.arguments.is_empty(),
        "declared as its consumers declare it: {spec:?}"
    );
    let policy = p.changes.iter().find(|c| c.id == group).unwrap();
    let Some(Resource::Policy(policy)) = &policy.after else {
        panic!()
    };
    assert_eq!(policy.pattern, "^(?:q)$");
    assert_eq!(
        policy.definition,
        serde_json::from_value::<crate::model::Arguments>(
            json!({"dead-letter-exchange": "god.dead-letters"})
        )
        .unwrap()
    );
}

/// The state an older god left: dead-lettering in the queues' arguments, none of god's
/// grouped wiring.
fn without_wiring(mut observed: ObservedState) -> ObservedState {
    use crate::model::wiring::{DEAD_LETTERS_EXCHANGE, first_death_queue};
    observed.topology.policies.clear();
    observed
        .topology
        .bindings
        .retain(|b| first_death_queue(b).is_none());
    observed.topology.exchanges.remove(DEAD_LETTERS_EXCHANGE);
    observed
}

/// The setting `key` of the grouped policy a plan creates for `queue`.
pub(super) fn group_setting(plan: &Plan, queue: &str, key: &str) -> Option<serde_json::Value> {
    plan.changes.iter().find_map(|c| match &c.after {
        Some(Resource::Policy(p))
            if crate::model::wiring::group_members(p)
                .is_some_and(|m| m.iter().any(|q| q == queue)) =>
        {
            p.definition.get(key).cloned()
        }
        _ => None,
    })
}

#[test]
fn converged_broker_plans_nothing() {
    let d = desired(ONE);
    let p = plan(&d, &converged(&d), PRUNE);
    assert!(p.changes.is_empty(), "{:#?}", p.changes);
}

#[test]
fn equal_meanings_in_other_spellings_are_not_changes() {
    let d = desired(indoc! {r#"
            svc:
              queue_name: q
              arguments: {x-max-length: "10", x-queue-type: classic}
        "#});
    let mut o = converged(&d);
    let mut found = queue(
        "q",
        json!({"x-max-length": 10.0, "x-queue-type": "classic"}),
    );
    found.arguments = crate::model::normalize_arguments(&found.arguments);
    o.topology.queues.insert("q".into(), found);
    assert!(plan(&d, &o, PlanOptions::default()).changes.is_empty());
}

#[test]
fn existing_matching_queues_are_adopted_and_get_dead_lettering_by_policy() {
    let d = desired(ONE);
    let mut o = converged(&d);
    o.managed_queues.clear();
    o.topology.policies.clear();
    o.topology.queues.insert("q".into(), queue("q", json!({})));
    let p = plan(&d, &o, PlanOptions::default());
    assert_eq!(ids(&p, Action::Adopt), vec!["queue/q", "queue/q_dlq"]);
    let created = ids(&p, Action::Create);
    assert!(
        created.len() == 1 && created[0].starts_with("policy/god.queues."),
        "{created:?}"
    );
    assert!(ids(&p, Action::Replace).is_empty());
}

#[test]
fn argument_drift_with_messages_is_a_refused_replace() {
    let d = desired(indoc! {"
            svc:
              queue_name: q
              routing_keys: [a]
              arguments: {x-max-length: 200}
        "});
    let mut o = converged(&d);
    let mut found = d.topology.queues["q"].clone();
    found.arguments.insert("x-max-length".into(), json!(100));
    o.topology.queues.insert("q".into(), found);
    o.queue_stats.insert(
        "q".into(),
        QueueStats {
            messages: 12,
            consumers: 0,
        },
    );
    let p = plan(&d, &o, PlanOptions::default());
    let replace = p
        .changes
        .iter()
        .find(|c| c.action == Action::Replace)
        .expect("a replace");
    assert_eq!(replace.id, "queue/q");
    assert_eq!(replace.messages, Some(12));
    assert_eq!(
        replace.diff,
        vec![
            "- arguments.x-max-length: 100",
            "+ arguments.x-max-length: 200"
        ]
    );
    assert!(replace.blocked.as_deref().unwrap().contains("12 messages"));
    assert!(
        ids(&p, Action::Create).is_empty(),
        "bindings stay on the kept queue"
    );

    let allowed = plan(
        &d,
        &o,
        PlanOptions {
            prune: false,
            allow_data_loss: true,
            ..PlanOptions::default()
        },
    );
    assert!(allowed.changes.iter().all(|c| c.blocked.is_none()));
    assert_eq!(
        ids(&allowed, Action::Create),
        vec!["binding/bus/queue/q/a"],
        "the new queue is bound again"
    );
}

#[test]
fn changed_routing_keys_add_before_they_remove() {
    let d = desired(indoc! {"
        svc:
          queue_name: q
          routing_keys: [new.key]
    "});
    let mut o = converged(&d);
    o.topology.bindings.remove(&binding("q", "new.key"));
    o.topology.bindings.insert(binding("q", "old.key"));
    let p = plan(&d, &o, PlanOptions::default());
    let order: Vec<(Action, &str)> = p
        .changes
        .iter()
        .map(|c| (c.action, c.id.as_str()))
        .collect();
    assert_eq!(
        order,
        vec![
            (Action::Create, "binding/bus/queue/q/new.key"),
            (Action::Delete, "binding/bus/queue/q/old.key")
        ]
    );
}

#[test]
fn bindings_of_other_queues_and_exchanges_are_left_alone() {
    let d = desired(ONE);
    let mut o = converged(&d);
    o.topology
        .queues
        .insert("relay".into(), queue("relay", json!({})));
    o.topology.bindings.insert(binding("relay", "#"));
    let mut other_exchange = binding("q", "x");
    other_exchange.source = "amq.topic".into();
    o.topology.bindings.insert(other_exchange);
    assert!(
        plan(
            &d,
            &o,
            PlanOptions {
                prune: true,
                allow_data_loss: false,
                ..PlanOptions::default()
            }
        )
        .changes
        .is_empty()
    );
}

#[test]
fn orphans_are_kept_unless_pruned_and_created_by_god_and_empty() {
    let d = desired(ONE);
    let mut o = converged(&d);
    for (name, origin) in [
        ("gone_created", Origin::Created),
        ("gone_adopted", Origin::Adopted),
        ("gone_full", Origin::Created),
    ] {
        o.topology
            .queues
            .insert(name.into(), queue(name, json!({})));
        o.managed_queues.insert(name.into(), origin);
    }
    o.topology
        .queues
        .insert("foreign".into(), queue("foreign", json!({})));
    o.queue_stats.insert(
        "gone_full".into(),
        QueueStats {
            messages: 3,
            consumers: 0,
        },
    );

    let kept = plan(&d, &o, PlanOptions::default());
    assert!(kept.changes.is_empty());
    let orphans: Vec<&str> = kept
        .notes
        .iter()
        .filter(|n| n.kind == NoteKind::Orphan)
        .map(|n| n.id.as_str())
        .collect();
    assert_eq!(
        orphans,
        vec![
            "queue/gone_adopted",
            "queue/gone_created",
            "queue/gone_full"
        ]
    );

    let pruned = plan(&d, &o, PRUNE);
    assert_eq!(
        ids(&pruned, Action::Delete),
        vec!["queue/gone_created", "queue/gone_full"]
    );
    let full = pruned
        .changes
        .iter()
        .find(|c| c.id == "queue/gone_full")
        .unwrap();
    assert!(full.blocked.as_deref().unwrap().contains("3 messages"));
    assert!(
        pruned
            .changes
            .iter()
            .find(|c| c.id == "queue/gone_created")
            .unwrap()
            .blocked
            .is_none()
    );
}

#[test]
fn paired_queue_names_bind_one_key_each() {
    let d = desired(indoc! {"
            trig:
              queue_names: [q1, q2]
              routing_keys: [k1, k2]
              dead_letter: false
        "});
    let keys: Vec<(String, String)> = d
        .topology
        .bindings
        .iter()
        .map(|b| (b.destination.clone(), b.routing_key.clone()))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("q1".to_string(), "k1".to_string()),
            ("q2".to_string(), "k2".to_string())
        ]
    );
    assert_eq!(
        d.topology.queues.len(),
        2,
        "no dead-letter queues when dead_letter is false"
    );
}

#[test]
fn producers_planned_and_deprecated_services_get_no_queues() {
    let d = desired(indoc! {"
            prod:
              produces: [a.b]
            later:
              queue_name: ql
              status: planned
            old:
              queue_name: qo
              routing_keys: [x]
              status: deprecated
        "});
    assert!(d.topology.queues.is_empty());
    let mut o = converged(&d);
    o.topology
        .queues
        .insert("qo".into(), queue("qo", json!({})));
    o.managed_queues.insert("qo".into(), Origin::Created);
    let p = plan(&d, &o, PlanOptions::default());
    assert!(p.changes.is_empty());
    let notes: Vec<(NoteKind, &str)> = p.notes.iter().map(|n| (n.kind, n.id.as_str())).collect();
    assert!(notes.contains(&(NoteKind::Orphan, "queue/qo")), "{notes:?}");
    assert!(
        notes.contains(&(NoteKind::Skipped, "service/later")),
        "{notes:?}"
    );
    assert!(
        notes.contains(&(NoteKind::Deprecated, "service/old")),
        "{notes:?}"
    );
    let pruned = plan(&d, &o, PRUNE);
    assert_eq!(ids(&pruned, Action::Delete), vec!["queue/qo"]);
}

/// A queue declared with the dead-letter arguments god's policy would set (by an older god,
/// or by its consumer, as Candystore does).
fn carrying_its_dead_letter_arguments() -> QueueSpec {
    queue(
        "q",
        json!({"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "q_dlq"}),
    )
}

#[test]
fn a_queue_carrying_its_own_dead_letter_arguments_is_kept_and_needs_no_policy() {
    let d = desired(ONE);
    let mut o = without_wiring(converged(&d));
    o.topology
        .queues
        .insert("q".into(), carrying_its_dead_letter_arguments());
    let p = plan(&d, &o, PlanOptions::default());
    assert!(p.changes.is_empty(), "{:#?}", p.changes);
    o.topology.policies.insert(
        "god.dlx.q".into(),
        PolicySpec::dead_letter_for("q", &crate::model::Arguments::new()),
    );
    let p = plan(&d, &o, PlanOptions::default());
    assert_eq!(
        ids(&p, Action::Delete),
        vec!["policy/god.dlx.q"],
        "a policy of god's that the queue's arguments make useless goes"
    );
}

#[test]
fn a_queue_whose_own_dead_letter_arguments_differ_is_kept_and_the_plan_says_so() {
    let d = desired(ONE);
    let mut o = converged(&d);
    o.topology.queues.insert(
        "q".into(),
        queue("q", json!({"x-dead-letter-exchange": "elsewhere"})),
    );
    let p = plan(&d, &o, PlanOptions::default());
    assert!(
        p.changes.is_empty(),
        "never replaced for this: {:#?}",
        p.changes
    );
    let note = p.notes.iter().find(|n| n.id == "queue/q").expect("a note");
    assert!(
        note.message
            .contains("x-dead-letter-exchange=\"elsewhere\"")
            && note.message.contains("win over god's settings"),
        "{}",
        note.message
    );
}

#[test]
fn exchange_drift_is_a_refused_replace() {
    let d = desired(ONE);
    let mut o = converged(&d);
    o.topology.exchanges.get_mut("bus").unwrap().kind = "direct".into();
    let p = plan(&d, &o, PlanOptions::default());
    assert_eq!(ids(&p, Action::Replace), vec!["exchange/bus"]);
    assert!(p.changes[0].blocked.is_some());
    assert_eq!(p.changes[0].diff, vec!["- type: direct", "+ type: topic"]);
}

#[test]
fn a_queue_and_its_dead_letter_queue_are_pruned_together_the_queue_first() {
    let was = desired(indoc! {"
        svc:
          queue_name: work
          dead_letter: dead
    "});
    let observed = converged(&was);
    let now = desired(indoc! {"
        other:
          produces: [x]
    "});
    let p = plan(&now, &observed, PRUNE);
    let deleted = ids(&p, Action::Delete);
    assert_eq!(deleted.len(), 4, "{deleted:?}");
    assert_eq!(deleted[0], "queue/work");
    assert!(deleted[1].starts_with("binding/god.dead-letters/queue/dead/"));
    assert_eq!(deleted[2], "queue/dead");
    assert!(
        deleted[3].starts_with("policy/god.queues."),
        "god's policy goes last: {deleted:?}"
    );
    assert_eq!(
        removal_prerequisites(&p.changes)
            .iter()
            .map(|firsts| firsts.iter().map(|i| p.changes[*i].id.as_str()).collect())
            .collect::<Vec<Vec<&str>>>(),
        vec![
            vec![],
            vec!["queue/work"],
            vec!["queue/work"],
            vec!["queue/work"]
        ],
        "the queue's dead-letter wiring, its dead-letter queue and god's policy go only after it"
    );

    let mut full = observed.clone();
    full.queue_stats.insert(
        "work".into(),
        QueueStats {
            messages: 1,
            consumers: 0,
        },
    );
    let p = plan(&now, &full, PRUNE);
    let blocked: BTreeMap<&str, &str> = p
        .changes
        .iter()
        .map(|c| (c.id.as_str(), c.blocked.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        blocked.keys().copied().collect::<Vec<_>>(),
        vec!["queue/dead", "queue/work"],
        "the kept queue keeps its policy"
    );
    assert!(
        blocked["queue/work"].contains("holds 1 message"),
        "{blocked:?}"
    );
    assert_eq!(
        blocked["queue/dead"],
        "queue work dead-letters into it and is kept; it goes with work, after it"
    );
}

#[test]
fn an_adopted_queue_keeps_the_dead_letter_queue_its_policy_names() {
    let was = desired(indoc! {"
        svc:
          queue_name: q
    "});
    let mut observed = converged(&was);
    observed.managed_queues.insert("q".into(), Origin::Adopted);
    let p = plan(
        &desired(indoc! {"
        other:
          produces: [x]
    "}),
        &observed,
        PRUNE,
    );
    let dlq = p.changes.iter().find(|c| c.id == "queue/q_dlq").unwrap();
    assert!(
        dlq.blocked
            .as_deref()
            .unwrap()
            .starts_with("queue q dead-letters into it"),
        "{dlq:?}"
    );
    assert!(
        p.changes.iter().all(|c| c.kind != ResourceKind::Policy),
        "the kept queue's policy stays: {:?}",
        p.changes
    );
}

/// A policy as topology/ declares it.
fn declared_policy(name: &str, max_length: u64) -> PolicySpec {
    PolicySpec {
        name: name.into(),
        pattern: "^q$".into(),
        apply_to: "queues".into(),
        priority: 0,
        definition: [("max-length".to_string(), json!(max_length))].into(),
    }
}

#[test]
fn a_declared_policy_is_created_adopted_with_its_definition_or_updated() {
    let mut d = desired(ONE);
    d.topology
        .policies
        .insert("cap".into(), declared_policy("cap", 10));
    d.sources
        .insert("policy/cap".into(), "topology/a.yaml".into());
    let mut o = converged(&desired(ONE));
    let p = plan(&d, &o, PlanOptions::default());
    assert_eq!(ids(&p, Action::Create), vec!["policy/cap"]);
    assert_eq!(p.changes[0].cause, "declared in topology/a.yaml");

    // Someone else's policy of that name: adopted, and set to the file's definition.
    o.topology
        .policies
        .insert("cap".into(), declared_policy("cap", 99));
    let p = plan(&d, &o, PlanOptions::default());
    assert_eq!(ids(&p, Action::Adopt), vec!["policy/cap"]);
    assert_eq!(
        p.changes[0].diff,
        vec![
            "- definition: {max-length=99}",
            "+ definition: {max-length=10}"
        ]
    );
    // God's own: updated.
    o.managed_objects
        .insert("policy/cap".into(), Origin::Created);
    let p = plan(&d, &o, PlanOptions::default());
    assert_eq!(ids(&p, Action::Update), vec!["policy/cap"]);
    o.topology
        .policies
        .insert("cap".into(), declared_policy("cap", 10));
    assert!(plan(&d, &o, PlanOptions::default()).changes.is_empty());
}

#[test]
fn settings_leaving_topology_are_pruned_only_when_god_created_them() {
    let d = desired(ONE);
    let mut o = converged(&d);
    o.topology
        .policies
        .insert("mine".into(), declared_policy("mine", 1));
    o.topology
        .policies
        .insert("adopted".into(), declared_policy("adopted", 1));
    o.topology
        .policies
        .insert("foreign".into(), declared_policy("foreign", 1));
    o.topology.limits.insert("max-queues".into(), 10);
    o.managed_objects
        .insert("policy/mine".into(), Origin::Created);
    o.managed_objects
        .insert("policy/adopted".into(), Origin::Adopted);
    o.managed_objects
        .insert("limit/max-queues".into(), Origin::Created);
    let p = plan(&d, &o, PlanOptions::default());
    assert!(
        p.changes.is_empty(),
        "nothing goes without --prune: {:?}",
        p.changes
    );
    let p = plan(&d, &o, PRUNE);
    assert_eq!(
        ids(&p, Action::Delete),
        vec!["limit/max-queues", "policy/mine"]
    );
    let orphans: Vec<&str> = p
        .notes
        .iter()
        .filter(|n| n.kind == NoteKind::Orphan)
        .map(|n| n.id.as_str())
        .collect();
    assert_eq!(orphans, vec!["policy/adopted"]);
}

#[test]
fn an_exchange_to_exchange_binding_the_inputs_dropped_is_unbound() {
    let mut d = desired(ONE);
    let fan = crate::model::ExchangeSpec {
        name: "fan".into(),
        kind: "fanout".into(),
        durable: true,
        auto_delete: false,
        internal: false,
        arguments: Default::default(),
    };
    d.topology.exchanges.insert("fan".into(), fan);
    let mut o = converged(&d);
    let e2e = BindingSpec {
        destination_type: crate::model::DestinationType::Exchange,
        ..BindingSpec::queue("bus", "fan", "audit.#")
    };
    o.topology.bindings.insert(e2e.clone());
    let p = plan(&d, &o, PlanOptions::default());
    assert_eq!(ids(&p, Action::Delete), vec![crate::plan::binding_id(&e2e)]);
    d.topology.bindings.insert(e2e);
    assert!(plan(&d, &o, PlanOptions::default()).changes.is_empty());
}

#[test]
fn a_queue_replaced_for_its_type_keeps_gods_policy() {
    let classic = desired("svc:\n  queue_name: q\n  routing_keys: [a.b]\n");
    let quorum = desired("svc:\n  queue_name: q\n  queue_type: quorum\n  routing_keys: [a.b]\n");
    let p = plan(&quorum, &converged(&classic), PlanOptions::default());
    assert!(ids(&p, Action::Replace).contains(&"queue/q".to_string()));
    assert!(
        p.changes
            .iter()
            .all(|c| c.id != "policy/god.dlx.q" || c.action != Action::Delete),
        "the new queue needs the policy too: {:#?}",
        p.changes
    );
}

#[test]
fn a_pruned_queue_keeps_its_wiring_until_it_is_gone_and_what_it_leaves_is_no_change() {
    let both = desired(
        "a:\n  queue_name: a\n  routing_keys: [x.a]\nb:\n  queue_name: b\n  routing_keys: [x.b]\n",
    );
    let only_b = desired("b:\n  queue_name: b\n  routing_keys: [x.b]\n");
    let observed = converged(&both);
    let p = plan(&only_b, &observed, PRUNE);
    assert!(ids(&p, Action::Delete).contains(&"queue/a".to_string()));
    assert!(
        p.changes.iter().all(|c| c.kind != ResourceKind::Policy),
        "the grouped policy still names a while it is deleted: {:#?}",
        p.changes
    );
    let mut after = observed.clone();
    after.topology.queues.remove("a");
    after.topology.queues.remove("a_dlq");
    after
        .topology
        .bindings
        .retain(|b| b.destination != "a" && b.destination != "a_dlq");
    after.managed_queues.remove("a");
    after.managed_queues.remove("a_dlq");
    let p = plan(&only_b, &after, PRUNE);
    assert!(
        p.changes.is_empty(),
        "a name of a queue that is gone is harmless: {:#?}",
        p.changes
    );
}
