//! Topology checks, read off the plan `god plan` would make (the planner is the one judge of
//! what differs): the exchange, the service queues, their bindings, their dead-lettering, and
//! the whole drift.

use super::check::{Area, Check, QueueKind, Verdict, first_few};
use crate::model::desired::DesiredState;
use crate::model::wiring::{DEAD_LETTERS_EXCHANGE, QUEUE_POLICY_PREFIX};
use crate::model::{
    ApplyTo, DEAD_LETTER_POLICY_PREFIX, ObservedState, PolicySpec, UNROUTABLE_POLICY_PREFIX,
    format_arguments, normalize_arguments,
};
use crate::plan::{Action, Change, Plan, ResourceKind};

const APPLY_FIX: &str = "run `god apply` (`god plan` shows exactly what it changes)";

/// The topology checks for a broker plan made without `--prune`.
pub fn checks(desired: &DesiredState, plan: &Plan) -> Vec<Check> {
    let exchange = desired.exchange.as_str();
    let exchange_changes: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| c.kind == ResourceKind::Exchange && c.name() == exchange)
        .collect();
    let queue_changes: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| c.kind == ResourceKind::Queue && kind_of(desired, c) == Some(QueueKind::Main))
        .filter(|c| c.action != Action::Adopt)
        .collect();
    let binding_changes: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| c.kind == ResourceKind::Binding && !is_wiring(c))
        .collect();
    let dead_letter_changes: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| {
            is_wiring(c)
                || (c.kind == ResourceKind::Queue
                    && c.action != Action::Adopt
                    && kind_of(desired, c) == Some(QueueKind::DeadLetter))
        })
        .collect();
    let main_queues = desired
        .owners
        .values()
        .filter(|o| QueueKind::of(&o.role) == QueueKind::Main)
        .count();
    let categories = [
        exchange_check(exchange, &exchange_changes),
        changes_check(
            "topology.queues",
            &queue_changes,
            format!("all {main_queues} service queues exist as declared"),
            "service queue(s) missing or declared differently",
        ),
        bindings_check(&binding_changes, desired.topology.bindings.len()),
        changes_check(
            "topology.dead_letter",
            &dead_letter_changes,
            "every service queue is wired to its dead-letter queue".to_string(),
            "dead-letter queue(s) or wiring missing: rejected messages would be dropped",
        ),
    ];
    let drift = drift_check(plan, &categories);
    categories.into_iter().chain([drift]).collect()
}

/// `topology.arguments`: which arguments the consumers of each service queue must declare.
/// RabbitMQ refuses (406) a declaration whose arguments differ from the queue's, so a queue
/// that carries arguments the registry does not list (kept as it is by god: an older god's
/// dead-lettering, or what its first consumer declared) refuses the consumers written from
/// the registry.
pub fn arguments_check(desired: &DesiredState, observed: &ObservedState) -> Check {
    let id = "topology.arguments";
    let mut differing = Vec::new();
    let mut checked = 0;
    for (name, owner) in &desired.owners {
        let (Some(wanted), Some(found)) = (
            desired.topology.queues.get(name),
            observed.topology.queues.get(name),
        ) else {
            continue;
        };
        if QueueKind::of(&owner.role) != QueueKind::Main {
            continue;
        }
        checked += 1;
        let carried = normalize_arguments(&found.arguments);
        if carried != normalize_arguments(&wanted.arguments) {
            differing.push(format!(
                "{name} (service {}): its consumers must declare {} (the registry lists {})",
                owner.service,
                format_arguments(&carried),
                format_arguments(&normalize_arguments(&wanted.arguments))
            ));
        }
    }
    if differing.is_empty() {
        return Check::ok(
            id,
            Area::Topology,
            format!(
                "all {checked} service queue(s) carry exactly the arguments the registry lists: consumers declaring them as it says are accepted"
            ),
        );
    }
    Check::new(
        id,
        Area::Topology,
        Verdict::Warn,
        format!(
            "{} service queue(s) carry arguments the registry does not list: a consumer declaring its queue as the registry says is refused (406)",
            differing.len()
        ),
    )
    .with_details(first_few(&differing))
    .with_fix("list them under the service's `arguments` in registry.yaml, and declare exactly them in its consumers (or declare passively); god keeps a queue's arguments as they are")
}

/// The checks of what `topology/` declares, when it declares anything: `topology.files` (its
/// objects exist as declared) and `topology.policies` (each policy matches something).
pub fn declared_checks(
    desired: &DesiredState,
    observed: &ObservedState,
    plan: &Plan,
) -> Vec<Check> {
    let unroutable = desired
        .unroutable
        .as_ref()
        .map(|queue| unroutable_check(desired, observed, queue));
    if desired.sources.is_empty() {
        return unroutable.into_iter().collect();
    }
    let changes: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| desired.sources.contains_key(&c.id))
        .collect();
    let files = changes_check(
        "topology.files",
        &changes,
        format!(
            "all {} objects of topology/ exist as declared",
            desired.sources.len()
        ),
        "object(s) of topology/ missing or different",
    );
    let mut checks = vec![files, policies_check(desired, observed)];
    checks.extend(unroutable);
    checks
}

/// `topology.unroutable`: god's policy giving the bus exchange its alternate exchange is the
/// one in effect. RabbitMQ applies one policy per object, the highest priority: another policy
/// matching the exchange at god's priority or above would silently stop the parking.
fn unroutable_check(desired: &DesiredState, observed: &ObservedState, queue: &str) -> Check {
    let id = "topology.unroutable";
    let exchange = &desired.exchange;
    let ours = format!("{UNROUTABLE_POLICY_PREFIX}{exchange}");
    let Some(mine) = observed.topology.policies.get(&ours) else {
        return Check::new(
            id,
            Area::Topology,
            Verdict::Fail,
            format!(
                "policy {ours} is missing: unroutable events are dropped, not parked in {queue}"
            ),
        )
        .with_fix(APPLY_FIX);
    };
    let rivals: Vec<String> = observed
        .topology
        .policies
        .values()
        .filter(|p| p.name != ours && p.priority >= mine.priority && p.apply_to.covers_exchanges())
        .filter(|p| regex::Regex::new(&p.pattern).is_ok_and(|r| r.is_match(exchange)))
        .map(|p| {
            format!(
                "policy {} (priority {}, pattern {})",
                p.name, p.priority, p.pattern
            )
        })
        .collect();
    if rivals.is_empty() {
        return Check::ok(
            id,
            Area::Topology,
            format!("unroutable events of {exchange} are parked in {queue}"),
        );
    }
    Check::new(
        id,
        Area::Topology,
        Verdict::Warn,
        format!("another policy may apply to {exchange} instead of {ours}: unroutable events would not be parked"),
    )
    .with_details(rivals)
    .with_fix(format!("give that policy a priority below {} or a pattern that leaves {exchange} out (RabbitMQ applies one policy per exchange)", mine.priority))
}

/// `topology.policies`: a declared policy whose pattern matches no name of the kinds it applies
/// to does nothing, most likely a typo in the pattern.
fn policies_check(desired: &DesiredState, observed: &ObservedState) -> Check {
    let id = "topology.policies";
    let declared: Vec<(&str, &PolicySpec)> = desired
        .topology
        .policies
        .values()
        .filter(|p| desired.sources.contains_key(&format!("policy/{}", p.name)))
        .map(|p| ("policy", p))
        .chain(
            desired
                .topology
                .operator_policies
                .values()
                .map(|p| ("operator policy", p)),
        )
        .collect();
    let idle: Vec<String> = declared
        .iter()
        .filter(|(_, p)| !matches_anything(p, observed))
        .map(|(kind, p)| {
            format!(
                "{kind} {} (pattern {}, apply-to {})",
                p.name, p.pattern, p.apply_to
            )
        })
        .collect();
    if idle.is_empty() {
        return Check::ok(
            id,
            Area::Topology,
            format!(
                "each of the {} declared policies matches at least one object",
                declared.len()
            ),
        );
    }
    Check::new(
        id,
        Area::Topology,
        Verdict::Warn,
        format!("{} declared polic(ies) match nothing: they have no effect", idle.len()),
    )
    .with_details(first_few(&idle))
    .with_fix("correct the pattern in topology/ (a regular expression over names, e.g. ^transcripts\\.), or remove the policy")
}

/// Whether a policy's pattern matches a queue or exchange of the kinds it applies to.
fn matches_anything(policy: &PolicySpec, observed: &ObservedState) -> bool {
    let Ok(pattern) = regex::Regex::new(&policy.pattern) else {
        return false;
    };
    let topology = &observed.topology;
    let queues = topology.queues.keys();
    let exchanges = topology.exchanges.keys();
    match policy.apply_to {
        ApplyTo::Queues => queues.into_iter().any(|n| pattern.is_match(n)),
        ApplyTo::Exchanges => exchanges.into_iter().any(|n| pattern.is_match(n)),
        ApplyTo::All | ApplyTo::Other(_) => queues.chain(exchanges).any(|n| pattern.is_match(n)),
    }
}

/// Whether a change is of god's wiring: its policies for queues, the dead-letters exchange
/// and its bindings.
fn is_wiring(change: &Change) -> bool {
    match change.kind {
        ResourceKind::Policy => {
            change.name().starts_with(DEAD_LETTER_POLICY_PREFIX)
                || change.name().starts_with(QUEUE_POLICY_PREFIX)
        }
        ResourceKind::Exchange => change.name() == DEAD_LETTERS_EXCHANGE,
        ResourceKind::Binding => change
            .id
            .starts_with(&format!("binding/{DEAD_LETTERS_EXCHANGE}/")),
        _ => false,
    }
}

fn kind_of(desired: &DesiredState, change: &Change) -> Option<QueueKind> {
    desired
        .owners
        .get(change.name())
        .map(|o| QueueKind::of(&o.role))
}

fn line(change: &Change) -> String {
    format!(
        "{} {} ({})",
        change.action.symbol(),
        change.id,
        change.cause
    )
}

fn exchange_check(exchange: &str, changes: &[&Change]) -> Check {
    let id = "topology.exchange";
    match changes.first() {
        None => Check::ok(id, Area::Topology, format!("exchange {exchange} exists as the registry declares it")),
        Some(c) if c.action == Action::Create => Check::new(
            id,
            Area::Topology,
            Verdict::Fail,
            format!("exchange {exchange} does not exist: every publish to it fails"),
        )
        .with_fix(APPLY_FIX),
        Some(c) => Check::new(
            id,
            Area::Topology,
            Verdict::Fail,
            format!("exchange {exchange} differs from the registry (type or durability)"),
        )
        .with_details(c.diff.clone())
        .with_fix(
            "make the registry's exchange match the broker's, or `god apply --allow-data-loss` to replace it",
        ),
    }
}

fn changes_check(id: &str, changes: &[&Change], healthy: String, problem: &str) -> Check {
    if changes.is_empty() {
        return Check::ok(id, Area::Topology, healthy);
    }
    let lines: Vec<String> = changes.iter().map(|c| line(c)).collect();
    Check::new(
        id,
        Area::Topology,
        Verdict::Fail,
        format!("{} {problem}", changes.len()),
    )
    .with_details(first_few(&lines))
    .with_fix(APPLY_FIX)
}

fn bindings_check(changes: &[&Change], desired: usize) -> Check {
    let id = "topology.bindings";
    let (missing, extra): (Vec<&Change>, Vec<&Change>) =
        changes.iter().partition(|c| c.action == Action::Create);
    if missing.is_empty() && extra.is_empty() {
        return Check::ok(
            id,
            Area::Topology,
            format!("all {desired} routing-key bindings are in place"),
        );
    }
    let lines: Vec<String> = missing.iter().chain(&extra).map(|c| line(c)).collect();
    let (status, summary) = if missing.is_empty() {
        (
            Verdict::Warn,
            format!(
                "{} binding(s) the registry no longer lists: their queues still get those events",
                extra.len()
            ),
        )
    } else {
        (
            Verdict::Fail,
            format!(
                "{} routing key(s) not bound: those events never reach their service",
                missing.len()
            ),
        )
    };
    Check::new(id, Area::Topology, status, summary)
        .with_details(first_few(&lines))
        .with_fix(APPLY_FIX)
}

fn drift_check(plan: &Plan, categories: &[Check]) -> Check {
    let id = "topology.drift";
    if plan.changes.is_empty() {
        return Check::ok(id, Area::Topology, "`god plan` has no changes");
    }
    let status = categories
        .iter()
        .map(|c| c.status)
        .max()
        .filter(|s| *s > Verdict::Ok)
        .unwrap_or(Verdict::Warn);
    let lines: Vec<String> = plan.changes.iter().map(line).collect();
    Check::new(
        id,
        Area::Topology,
        status,
        format!("`god plan` would make {} change(s)", plan.changes.len()),
    )
    .with_details(first_few(&lines))
    .with_fix(APPLY_FIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::validate::registry_from_text;
    use crate::model::ObservedState;
    use crate::plan::diff::{PlanOptions, plan};
    use god_core::testing::converged;
    use indoc::indoc;

    fn desired() -> DesiredState {
        let text = indoc! {r#"
            version: "1"
            exchange: {name: bus, type: topic, durable: true}
            services:
              a:
                queue_name: qa
                routing_keys: [x.y, x.z]
        "#};
        registry_from_text(text).desired_state()
    }

    fn statuses(checks: &[Check]) -> Vec<(&str, Verdict)> {
        checks.iter().map(|c| (c.id.as_str(), c.status)).collect()
    }

    #[test]
    fn an_empty_vhost_fails_every_topology_check() {
        let desired = desired();
        let p = plan(&desired, &ObservedState::default(), PlanOptions::default());
        let checks = checks(&desired, &p);
        assert_eq!(
            statuses(&checks),
            vec![
                ("topology.exchange", Verdict::Fail),
                ("topology.queues", Verdict::Fail),
                ("topology.bindings", Verdict::Fail),
                ("topology.dead_letter", Verdict::Fail),
                ("topology.drift", Verdict::Fail),
            ]
        );
        assert!(
            checks[1].details[0].contains("queue/qa"),
            "{:?}",
            checks[1].details
        );
        assert!(checks.iter().all(|c| c.fix.is_some()));
    }

    #[test]
    fn a_converged_vhost_passes_and_a_missing_key_is_named() {
        let desired = desired();
        let mut observed = converged(&desired);
        let p = plan(&desired, &observed, PlanOptions::default());
        assert!(p.changes.is_empty(), "{:?}", p.changes);
        assert!(checks(&desired, &p).iter().all(|c| c.status == Verdict::Ok));

        let unbound = observed
            .topology
            .bindings
            .iter()
            .find(|b| b.routing_key == "x.z")
            .cloned()
            .unwrap();
        observed.topology.bindings.remove(&unbound);
        let p = plan(&desired, &observed, PlanOptions::default());
        let checks = checks(&desired, &p);
        assert_eq!(
            statuses(&checks),
            vec![
                ("topology.exchange", Verdict::Ok),
                ("topology.queues", Verdict::Ok),
                ("topology.bindings", Verdict::Fail),
                ("topology.dead_letter", Verdict::Ok),
                ("topology.drift", Verdict::Fail),
            ]
        );
        assert!(
            checks[2].details[0].contains("x.z"),
            "{:?}",
            checks[2].details
        );
    }

    #[test]
    fn a_policy_that_outranks_the_unroutable_one_on_the_bus_is_a_warning() {
        let text = indoc! {r#"
            version: "1"
            exchange: {name: bus, type: topic, unroutable: parked}
            services:
              a:
                queue_name: qa
                routing_keys: [x.y]
        "#};
        let desired = registry_from_text(text).desired_state();
        let mut observed = converged(&desired);
        let p = plan(&desired, &observed, PlanOptions::default());
        let found = declared_checks(&desired, &observed, &p);
        assert_eq!(statuses(&found), vec![("topology.unroutable", Verdict::Ok)]);
        let rival = PolicySpec {
            name: "federate-all".into(),
            pattern: ".*".into(),
            apply_to: "all".into(),
            priority: 20,
            definition: [("federation-upstream-set".to_string(), "all".into())].into(),
        };
        observed.topology.policies.insert(rival.name.clone(), rival);
        let found = declared_checks(&desired, &observed, &p);
        assert_eq!(
            statuses(&found),
            vec![("topology.unroutable", Verdict::Warn)]
        );
        assert!(
            found[0].details[0].starts_with("policy federate-all (priority 20"),
            "{:?}",
            found[0].details
        );
    }

    #[test]
    fn declared_objects_and_policies_that_match_nothing_are_reported() {
        let mut desired = desired();
        let observed = converged(&desired);
        assert!(
            declared_checks(
                &desired,
                &observed,
                &plan(&desired, &observed, PlanOptions::default())
            )
            .is_empty(),
            "no topology/: no check"
        );
        for (name, pattern) in [("hits", "^q"), ("typo", "^transcripts\\.")] {
            desired.topology.policies.insert(
                name.into(),
                PolicySpec {
                    name: name.into(),
                    pattern: pattern.into(),
                    apply_to: "queues".into(),
                    priority: 0,
                    definition: [("max-length".to_string(), 5.into())].into(),
                },
            );
            desired
                .sources
                .insert(format!("policy/{name}"), "topology/a.yaml".into());
        }
        let p = plan(&desired, &observed, PlanOptions::default());
        let found = declared_checks(&desired, &observed, &p);
        assert_eq!(
            statuses(&found),
            vec![
                ("topology.files", Verdict::Fail),
                ("topology.policies", Verdict::Warn)
            ]
        );
        assert_eq!(
            found[1].details,
            vec!["policy typo (pattern ^transcripts\\., apply-to queues)"]
        );
    }
}
