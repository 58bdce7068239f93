//! `god graph`: prints the registry's topology as Mermaid or DOT; with `--live`, queue depths
//! and consumer counts from the broker.

use std::collections::BTreeMap;

use super::{Exit, Sources, runtime};
use crate::error::Result;
use crate::graph;
use crate::model::QueueStats;
use crate::observe::rabbit::all_queue_stats;
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
    let g = graph::build(&loaded.desired_state(), stats.as_ref());
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
