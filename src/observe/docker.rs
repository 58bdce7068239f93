//! Observing containers: one list of every container on the engine, sorted into god's (by the
//! project label) and the others whose names god would want.

use std::collections::BTreeSet;

use bollard::Docker;
use bollard::models::ContainerSummaryStateEnum;
use bollard::query_parameters::ListContainersOptionsBuilder;

use crate::docker_engine;
use crate::error::Result;
use crate::model::containers::{
    COMPONENT_LABEL, CONFIG_HASH_LABEL, CONFIG_LABEL, ObservedContainer, ObservedContainers,
    PROJECT_LABEL,
};

/// Reads the containers of `project`, and the foreign containers named like `wanted`.
pub async fn observe(
    docker: &Docker,
    project: &str,
    wanted: &BTreeSet<String>,
) -> Result<ObservedContainers> {
    let options = ListContainersOptionsBuilder::new().all(true).build();
    let list = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| docker_engine::failed("listing containers", e))?;
    let mut observed = ObservedContainers {
        project: project.to_string(),
        ..ObservedContainers::default()
    };
    for summary in list {
        let labels = summary.labels.unwrap_or_default();
        let name = summary
            .names
            .unwrap_or_default()
            .first()
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default();
        let id = summary.id.unwrap_or_default();
        let component = labels.get(COMPONENT_LABEL).cloned();
        let ours =
            labels.get(PROJECT_LABEL).map(String::as_str) == Some(project) && component.is_some();
        if ours {
            let container = ObservedContainer {
                name,
                id,
                component: component.clone(),
                config_hash: labels.get(CONFIG_HASH_LABEL).cloned(),
                config: labels.get(CONFIG_LABEL).cloned(),
                running: summary.state == Some(ContainerSummaryStateEnum::RUNNING),
            };
            observed
                .managed
                .insert(component.unwrap_or_default(), container);
        } else if wanted.contains(&name) {
            observed
                .foreign_names
                .insert(name, id.chars().take(12).collect());
        }
    }
    Ok(observed)
}
