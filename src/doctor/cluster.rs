//! Cluster checks, when the broker has more than one node: network partitions, quorum queues
//! without a leader or a majority, replicas on nodes that are down, the registry's classic
//! queues (each lives on one node), and leaders crowded on one node.

use std::collections::{BTreeMap, BTreeSet};

use super::check::{Area, Check, Verdict, first_few};
use crate::model::desired::DesiredState;
use crate::rabbit::management::{NodeEntry, QueuePlacement};

/// Leaders on one node above this share of the vhost's replicated queues are crowded.
const CROWDED_SHARE: f64 = 2.0 / 3.0;
/// Fewer replicated queues than this cannot be meaningfully balanced.
const BALANCE_MINIMUM: usize = 6;

/// The cluster checks, from the node list and where the vhost's queues live; none on one node.
pub fn checks(
    nodes: &[NodeEntry],
    queues: &[QueuePlacement],
    desired: Option<&DesiredState>,
) -> Vec<Check> {
    if nodes.len() < 2 {
        return Vec::new();
    }
    let down: BTreeSet<String> = nodes
        .iter()
        .filter(|n| !n.running)
        .map(|n| n.name.clone())
        .collect();
    let replicated: Vec<&QueuePlacement> = queues.iter().filter(|q| q.is_replicated()).collect();
    vec![
        partitions(nodes),
        majorities(&replicated, &down),
        replicas_on_down_nodes(&replicated, &down),
        classic_queues(queues, desired, nodes.len()),
        leaders(&replicated, nodes.len() - down.len()),
    ]
}

fn partitions(nodes: &[NodeEntry]) -> Check {
    let id = "broker.partitions";
    let split: Vec<String> = nodes
        .iter()
        .filter(|n| !n.partitions.is_empty())
        .map(|n| format!("{} cannot reach {}", n.name, n.partitions.join(", ")))
        .collect();
    if split.is_empty() {
        return Check::ok(
            id,
            Area::Broker,
            format!("no network partition between the {} nodes", nodes.len()),
        );
    }
    Check::new(id, Area::Broker, Verdict::Fail, "the cluster is partitioned")
        .with_details(split)
        .with_fix("restore the network between the nodes, then restart the nodes of the minority side (`rabbitmqctl stop_app && rabbitmqctl start_app` on each); see `rabbitmq-diagnostics cluster_status`")
}

/// Replicated queues whose online members are not a majority: no leader, no publish confirms,
/// no deliveries.
fn majorities(replicated: &[&QueuePlacement], down: &BTreeSet<String>) -> Check {
    let id = "broker.quorum";
    let stuck: Vec<String> = replicated
        .iter()
        .filter(|q| q.short_of_majority(Some(down)))
        .map(|q| {
            format!(
                "{}: {} of {} members online",
                q.name,
                q.members_online(Some(down)),
                q.members.len()
            )
        })
        .collect();
    if stuck.is_empty() {
        return Check::ok(
            id,
            Area::Broker,
            format!(
                "{} replicated queue(s), each with a majority of its members online",
                replicated.len()
            ),
        );
    }
    Check::new(
        id,
        Area::Broker,
        Verdict::Fail,
        format!("{} replicated queue(s) without a majority online: no leader, publishes to them are not confirmed", stuck.len()),
    )
    .with_details(first_few(&stuck))
    .with_fix("start the nodes that are down (`rabbitmq-diagnostics status` on each says why it stopped); a quorum queue needs more than half of its members")
}

fn replicas_on_down_nodes(replicated: &[&QueuePlacement], down: &BTreeSet<String>) -> Check {
    let id = "broker.replicas";
    let short: Vec<String> = replicated
        .iter()
        .filter(|q| {
            q.members_online(Some(down)) < q.members.len() && !q.short_of_majority(Some(down))
        })
        .map(|q| {
            let missing: Vec<&str> = q
                .members
                .iter()
                .filter(|m| down.contains(*m))
                .map(String::as_str)
                .collect();
            format!("{}: replica on {} down", q.name, missing.join(", "))
        })
        .collect();
    if short.is_empty() {
        return Check::ok(id, Area::Broker, "every replica is on a running node");
    }
    Check::new(
        id,
        Area::Broker,
        Verdict::Warn,
        format!("{} replicated queue(s) serve with a replica on a node that is down: one more failure stops them", short.len()),
    )
    .with_details(first_few(&short))
    .with_fix("start the node again; its replicas catch up by themselves")
}

/// The registry's classic queues: each lives on one node, which is a single point of failure.
fn classic_queues(
    queues: &[QueuePlacement],
    desired: Option<&DesiredState>,
    nodes: usize,
) -> Check {
    let id = "broker.classic";
    let Some(desired) = desired else {
        return Check::skip(
            id,
            Area::Broker,
            "not checked: registry.yaml is missing or invalid",
        );
    };
    let single: Vec<String> = queues
        .iter()
        .filter(|q| !q.is_replicated() && desired.topology.queues.contains_key(&q.name))
        .map(|q| {
            format!(
                "{} on {}",
                q.name,
                q.node.as_deref().unwrap_or("an unknown node")
            )
        })
        .collect();
    if single.is_empty() {
        return Check::ok(
            id,
            Area::Broker,
            format!("every queue of registry.yaml is replicated over the {nodes} nodes"),
        );
    }
    Check::new(
        id,
        Area::Broker,
        Verdict::Warn,
        format!("{} queue(s) of registry.yaml are classic: each lives on one node, and is unavailable (or lost) with it", single.len()),
    )
    .with_details(first_few(&single))
    .with_fix("make them quorum queues: `defaults: { queue_type: quorum }` (or `queue_type: quorum` per service) in registry.yaml, then `god apply --migrate`, which moves their messages over")
}

/// Leaders crowded on one node: that node does the work of most queues.
fn leaders(replicated: &[&QueuePlacement], running: usize) -> Check {
    let id = "broker.leaders";
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for queue in replicated {
        if let Some(leader) = &queue.leader {
            *per_node.entry(leader.as_str()).or_insert(0) += 1;
        }
    }
    let led: usize = per_node.values().sum();
    let busiest = per_node.iter().max_by_key(|(_, n)| **n);
    let spread: Vec<String> = per_node
        .iter()
        .map(|(node, n)| format!("{node}: {n} leader(s)"))
        .collect();
    match busiest {
        Some((node, n)) if led >= BALANCE_MINIMUM && running > 1 && *n as f64 > led as f64 * CROWDED_SHARE => {
            Check::new(
                id,
                Area::Broker,
                Verdict::Warn,
                format!("{n} of {led} quorum leaders are on {node}: it does most of the work"),
            )
            .with_details(spread)
            .with_fix("`rabbitmq-queues rebalance quorum` moves leaders over the nodes; god declares new queues with `x-queue-leader-locator: balanced`")
        }
        _ => Check::ok(id, Area::Broker, format!("{led} leader(s) spread over the running nodes")).with_details(spread),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, running: bool) -> NodeEntry {
        NodeEntry {
            name: name.into(),
            running,
            partitions: Vec::new(),
        }
    }

    fn quorum(name: &str, leader: &str) -> QueuePlacement {
        QueuePlacement {
            name: name.into(),
            kind: "quorum".into(),
            node: Some(leader.into()),
            state: None,
            leader: Some(leader.into()),
            members: vec!["a".into(), "b".into(), "c".into()],
            online: Vec::new(),
        }
    }

    fn status(checks: &[Check], id: &str) -> Verdict {
        checks
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.status)
            .unwrap()
    }

    #[test]
    fn one_node_has_no_cluster_checks() {
        assert!(checks(&[node("a", true)], &[quorum("q", "a")], None).is_empty());
    }

    #[test]
    fn a_node_down_leaves_queues_short_of_a_replica_and_two_down_without_a_majority() {
        let queues = [quorum("q", "a")];
        let one_down = checks(
            &[node("a", true), node("b", true), node("c", false)],
            &queues,
            None,
        );
        assert_eq!(status(&one_down, "broker.quorum"), Verdict::Ok);
        assert_eq!(status(&one_down, "broker.replicas"), Verdict::Warn);
        let two_down = checks(
            &[node("a", true), node("b", false), node("c", false)],
            &queues,
            None,
        );
        assert_eq!(status(&two_down, "broker.quorum"), Verdict::Fail);
        assert_eq!(status(&two_down, "broker.classic"), Verdict::Skip);
    }

    #[test]
    fn leaders_crowded_on_one_node_warn_and_spread_ones_do_not() {
        let nodes = [node("a", true), node("b", true), node("c", true)];
        let crowded: Vec<QueuePlacement> = (0..6).map(|i| quorum(&format!("q{i}"), "a")).collect();
        assert_eq!(
            status(&checks(&nodes, &crowded, None), "broker.leaders"),
            Verdict::Warn
        );
        let spread: Vec<QueuePlacement> = (0..6)
            .map(|i| quorum(&format!("q{i}"), ["a", "b", "c"][i % 3]))
            .collect();
        assert_eq!(
            status(&checks(&nodes, &spread, None), "broker.leaders"),
            Verdict::Ok
        );
    }

    #[test]
    fn a_partition_fails() {
        let mut split = node("a", true);
        split.partitions = vec!["b".into()];
        let found = checks(&[split, node("b", true)], &[], None);
        assert_eq!(status(&found, "broker.partitions"), Verdict::Fail);
    }
}
