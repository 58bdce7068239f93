//! `god graph`: the topology as a picture. Producers → exchange (edges: the event types they
//! produce) → queues (edges: routing keys) → consumers, with dead-letter queues attached; live
//! depths and consumer counts when asked. Built from the registry alone (no I/O), rendered as
//! Mermaid or Graphviz DOT.

use std::collections::BTreeMap;

use super::{ResourceKind, binding_id, object_id};
use crate::model::desired::{DesiredState, QueueRole, unroutable_exchange};
use crate::model::{DestinationType, QueueStats, format_arguments};

/// What a node stands for (it decides its shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A service of the registry.
    Service,
    /// The bus exchange.
    Exchange,
    /// A service queue.
    Queue,
    /// A dead-letter queue.
    DeadLetter,
}

/// A node: a stable id (safe in both formats) and its label lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Identifier, letters, digits and underscores only.
    pub id: String,
    /// What it is.
    pub kind: NodeKind,
    /// Label, one entry per line.
    pub label: Vec<String>,
}

/// An edge, labelled with routing keys or event types, dashed for dead-lettering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// Source node id.
    pub from: String,
    /// Target node id.
    pub to: String,
    /// Label, one entry per line.
    pub label: Vec<String>,
    /// Drawn dashed (dead letters).
    pub dashed: bool,
}

/// The graph, in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    /// Nodes, each once.
    pub nodes: Vec<Node>,
    /// Edges, in the order they were drawn.
    pub edges: Vec<Edge>,
}

impl Graph {
    fn node(&mut self, id: String, kind: NodeKind, label: Vec<String>) -> String {
        if !self.nodes.iter().any(|n| n.id == id) {
            self.nodes.push(Node {
                id: id.clone(),
                kind,
                label,
            });
        }
        id
    }

    fn edge(&mut self, from: &str, to: &str, label: Vec<String>, dashed: bool) {
        self.edges.push(Edge {
            from: from.to_string(),
            to: to.to_string(),
            label,
            dashed,
        });
    }
}

fn node_id(prefix: &str, name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{prefix}_{safe}")
}

/// A queue's label: its name, and with live statistics its depth and consumers (or that it is
/// missing on the broker).
fn queue_label(name: &str, live: Option<&BTreeMap<String, QueueStats>>) -> Vec<String> {
    let mut label = vec![name.to_string()];
    if let Some(stats) = live {
        label.push(match stats.get(name) {
            Some(s) => format!("{} msgs, {} consumers", s.messages, s.consumers),
            None => "missing on the broker".to_string(),
        });
    }
    label
}

/// Builds the graph of the desired state: the active services that produce or own queues, the
/// bus exchange, every desired queue by its role.
pub fn build(desired: &DesiredState, live: Option<&BTreeMap<String, QueueStats>>) -> Graph {
    let mut g = Graph::default();
    let exchange = g.node(
        node_id("x", &desired.exchange),
        NodeKind::Exchange,
        vec![desired.exchange.clone()],
    );
    for (name, service) in desired.active_services() {
        let svc = node_id("svc", name);
        if !service.produces.is_empty() {
            g.node(svc.clone(), NodeKind::Service, vec![name.clone()]);
            g.edge(&svc, &exchange, service.produces.clone(), false);
        }
        let owned = desired.owners.iter().filter(|(_, o)| o.service == *name);
        for (queue, owner) in owned {
            match &owner.role {
                QueueRole::Main { .. } => {
                    let q = g.node(
                        node_id("q", queue),
                        NodeKind::Queue,
                        queue_label(queue, live),
                    );
                    g.edge(&exchange, &q, binding_keys(desired, queue), false);
                    g.node(svc.clone(), NodeKind::Service, vec![name.clone()]);
                    g.edge(&q, &svc, Vec::new(), false);
                }
                QueueRole::Retry { of, stage } => {
                    let r = g.node(
                        node_id("retry", queue),
                        NodeKind::DeadLetter,
                        queue_label(queue, live),
                    );
                    let (from, to, label) = match stage {
                        0 => (node_id("q", of), r.clone(), "rejected".to_string()),
                        _ => (
                            node_id("retry", &format!("{of}.retry")),
                            r.clone(),
                            format!("retry {stage}"),
                        ),
                    };
                    g.edge(&from, &to, vec![label], true);
                    if *stage > 0 {
                        g.edge(
                            &r,
                            &node_id("q", of),
                            vec!["after the delay".to_string()],
                            true,
                        );
                    }
                }
                QueueRole::DeadLetter { of } => {
                    let d = g.node(
                        node_id("dlq", queue),
                        NodeKind::DeadLetter,
                        queue_label(queue, live),
                    );
                    g.edge(
                        &node_id("q", of),
                        &d,
                        vec!["dead letters".to_string()],
                        true,
                    );
                }
            }
        }
    }
    declared_topology(&mut g, desired, live);
    if let Some(queue) = &desired.unroutable {
        let alternate = unroutable_exchange(&desired.exchange);
        let x = g.node(
            node_id("x", &alternate),
            NodeKind::Exchange,
            vec![alternate.clone()],
        );
        let q = g.node(
            node_id("q", queue),
            NodeKind::DeadLetter,
            queue_label(queue, live),
        );
        g.edge(&exchange, &x, vec!["unroutable".to_string()], true);
        g.edge(&x, &q, Vec::new(), false);
    }
    g
}

/// What `topology/` declares: its exchanges and queues, and every binding it declares (exchange
/// to queue, exchange to exchange), labelled with the key or the header match.
fn declared_topology(
    g: &mut Graph,
    desired: &DesiredState,
    live: Option<&BTreeMap<String, QueueStats>>,
) {
    let declared =
        |kind: ResourceKind, name: &str| desired.sources.contains_key(&object_id(kind, name));
    for name in desired.topology.exchanges.keys() {
        if declared(ResourceKind::Exchange, name) {
            g.node(node_id("x", name), NodeKind::Exchange, vec![name.clone()]);
        }
    }
    for name in desired.topology.queues.keys() {
        if declared(ResourceKind::Queue, name) {
            g.node(node_id("q", name), NodeKind::Queue, queue_label(name, live));
        }
    }
    let declared = desired
        .topology
        .bindings
        .iter()
        .filter(|b| desired.sources.contains_key(&binding_id(b)));
    for b in declared {
        let from = g.node(
            node_id("x", &b.source),
            NodeKind::Exchange,
            vec![b.source.clone()],
        );
        let to = match b.destination_type {
            DestinationType::Queue => g.node(
                node_id("q", &b.destination),
                NodeKind::Queue,
                queue_label(&b.destination, live),
            ),
            DestinationType::Exchange => g.node(
                node_id("x", &b.destination),
                NodeKind::Exchange,
                vec![b.destination.clone()],
            ),
        };
        let label = if b.arguments.is_empty() {
            b.routing_key.clone()
        } else {
            format_arguments(&b.arguments)
        };
        g.edge(
            &from,
            &to,
            vec![label].into_iter().filter(|l| !l.is_empty()).collect(),
            false,
        );
    }
}

/// The routing keys a queue is bound with on the bus exchange.
fn binding_keys(desired: &DesiredState, queue: &str) -> Vec<String> {
    desired
        .topology
        .bindings
        .iter()
        .filter(|b| b.source == desired.exchange && b.destination == queue)
        .map(|b| b.routing_key.clone())
        .collect()
}

fn mermaid_text(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| l.replace('"', "#quot;"))
        .collect::<Vec<_>>()
        .join("<br/>")
}

/// Mermaid `flowchart LR` text (renders in GitHub, GitLab and mermaid.live).
pub fn mermaid(g: &Graph) -> String {
    let mut out = String::from("flowchart LR\n");
    for n in &g.nodes {
        let text = mermaid_text(&n.label);
        let shape = match n.kind {
            NodeKind::Service => format!("[\"{text}\"]"),
            NodeKind::Exchange => format!("{{{{\"{text}\"}}}}"),
            NodeKind::Queue => format!("[(\"{text}\")]"),
            NodeKind::DeadLetter => format!("[/\"{text}\"/]"),
        };
        out.push_str(&format!("  {}{shape}\n", n.id));
    }
    for e in &g.edges {
        let arrow = if e.dashed { "-.->" } else { "-->" };
        if e.label.is_empty() {
            out.push_str(&format!("  {} {arrow} {}\n", e.from, e.to));
        } else {
            let text = mermaid_text(&e.label);
            out.push_str(&format!("  {} {arrow}|\"{text}\"| {}\n", e.from, e.to));
        }
    }
    out
}

fn dot_text(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| l.replace('\\', "\\\\").replace('"', "\\\""))
        .collect::<Vec<_>>()
        .join("\\n")
}

/// Graphviz DOT text (`god graph --format dot | dot -Tsvg > bus.svg`).
pub fn dot(g: &Graph) -> String {
    let mut out = String::from("digraph god {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n");
    for n in &g.nodes {
        let attributes = match n.kind {
            NodeKind::Service => "shape=box, style=rounded",
            NodeKind::Exchange => "shape=hexagon",
            NodeKind::Queue => "shape=cylinder",
            NodeKind::DeadLetter => "shape=cylinder, style=dashed",
        };
        out.push_str(&format!(
            "  {} [{attributes}, label=\"{}\"];\n",
            n.id,
            dot_text(&n.label)
        ));
    }
    for e in &g.edges {
        let mut attributes = Vec::new();
        if !e.label.is_empty() {
            attributes.push(format!("label=\"{}\"", dot_text(&e.label)));
        }
        if e.dashed {
            attributes.push("style=dashed".to_string());
        }
        let attributes = if attributes.is_empty() {
            String::new()
        } else {
            format!(" [{}]", attributes.join(", "))
        };
        out.push_str(&format!("  {} -> {}{attributes};\n", e.from, e.to));
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::registry_from_yaml;
    use indoc::indoc;

    fn desired() -> DesiredState {
        let text = indoc! {r#"
            version: "1"
            exchange: {name: bus.v1, type: topic, durable: true}
            services:
              producer:
                produces: [task.done]
              worker:
                queue_name: q.work
                routing_keys: ["task.*"]
              later:
                status: planned
                queue_name: q.later
                routing_keys: [x]
        "#};
        registry_from_yaml(text).desired_state()
    }

    #[test]
    fn producers_exchange_queues_consumers_and_dead_letters() {
        let text = mermaid(&build(&desired(), None));
        for expected in [
            "flowchart LR",
            "x_bus_v1{{\"bus.v1\"}}",
            "svc_producer -->|\"task.done\"| x_bus_v1",
            "x_bus_v1 -->|\"task.*\"| q_q_work",
            "q_q_work --> svc_worker",
            "q_q_work -.->|\"dead letters\"| dlq_q_work_dlq",
        ] {
            assert!(text.contains(expected), "{expected:?} not in\n{text}");
        }
        assert!(
            !text.contains("later"),
            "planned services are not drawn:\n{text}"
        );
    }

    #[test]
    fn live_statistics_go_into_the_queue_labels() {
        let stats: BTreeMap<String, QueueStats> = [(
            "q.work".to_string(),
            QueueStats {
                messages: 7,
                consumers: 2,
            },
        )]
        .into_iter()
        .collect();
        let text = dot(&build(&desired(), Some(&stats)));
        assert!(
            text.contains("label=\"q.work\\n7 msgs, 2 consumers\""),
            "{text}"
        );
        assert!(
            text.contains("q.work_dlq\\nmissing on the broker"),
            "{text}"
        );
        assert!(
            text.contains("q_q_work -> dlq_q_work_dlq [label=\"dead letters\", style=dashed];")
        );
        assert!(text.starts_with("digraph god {") && text.ends_with("}\n"));
    }
}
