//! `god graph`: prints the registry's topology as Mermaid or DOT; with `--live`, queue depths
//! and consumer counts from the broker.

use std::collections::BTreeMap;

use super::{Exit, Sources, runtime};
use crate::error::Result;
use crate::model::QueueStats;
use crate::observe::rabbit::all_queue_stats;
use crate::plan::graph;
use crate::rabbit::management::ManagementApi;

/// Output format of `god graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Mermaid flowchart (GitHub and GitLab render it in Markdown).
    Mermaid,
    /// Graphviz DOT (`dot -Tsvg`).
    Dot,
}

/// Builds the graph (reading the broker when `live`) and prints it.
pub fn run(sources: &Sources, format: Format, live: bool) -> Result<Exit> {
    let loaded = sources.load_registry()?;
    let stats = if live {
        let endpoints = sources.endpoints(&loaded)?;
        Some(runtime()?.block_on(queue_stats(&ManagementApi::new(&endpoints)?))?)
    } else {
        None
    };
    let g = graph::build(&sources.broker_with_relays(&loaded), stats.as_ref());
    print!(
        "{}",
        match format {
            Format::Mermaid => graph::mermaid(&g),
            Format::Dot => graph::dot(&g),
        }
    );
    Ok(Exit::Success)
}

async fn queue_stats(api: &ManagementApi) -> Result<BTreeMap<String, QueueStats>> {
    api.check_vhost().await?;
    all_queue_stats(api).await
}

#[cfg(test)]
mod tests {
    use indoc::indoc;

    use crate::inputs::SourceFile;
    use crate::plan::graph::{build, mermaid};

    #[test]
    fn topology_exchanges_their_bindings_retry_stages_and_the_unroutable_queue_are_drawn() {
        let registry = SourceFile {
            path: "registry.yaml".into(),
            text: indoc! {r#"
                version: "1"
                exchange: {name: bus, type: topic, unroutable: parked}
                services:
                  worker:
                    queue_name: q.work
                    routing_keys: ["task.*"]
                    retry: [5s, 30s]
            "#}
            .into(),
        };
        let topology = SourceFile {
            path: "topology/audit.yaml".into(),
            text: indoc! {r#"
                exchanges:
                  audit: {type: headers}
                queues:
                  audit.q:
                    bindings: [{exchange: audit, arguments: {x-match: any, kind: audit}}]
                bindings:
                  - {source: bus, destination: audit, destination_type: exchange, routing_key: "audit.#"}
            "#}
            .into(),
        };
        let loaded = crate::inputs::validate::load_inputs(registry, vec![topology]).unwrap();
        let text = mermaid(&build(&loaded.desired_state(), None));
        for expected in [
            "x_bus -->|\"audit.#\"| x_audit",
            "x_audit -->|\"{kind=#quot;audit#quot;, x-match=#quot;any#quot;}\"| q_audit_q",
            "q_q_work -.->|\"rejected\"| retry_q_work_retry",
            "retry_q_work_retry -.->|\"retry 2\"| retry_q_work_retry_2",
            "retry_q_work_retry_2 -.->|\"after the delay\"| q_q_work",
            "x_bus -.->|\"unroutable\"| x_bus_unroutable",
        ] {
            assert!(text.contains(expected), "{expected:?} not in\n{text}");
        }
    }
}
