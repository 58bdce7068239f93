//! Observing containers, networks and volumes: one list of every container on the engine,
//! sorted into god's (by the project label) and the others whose names god would want; the
//! networks and volumes god wants or made for the project, with what uses them.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use bollard::Docker;
use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};
use bollard::query_parameters::{ListContainersOptionsBuilder, ListVolumesOptions};

use crate::error::Result;
use crate::model::containers::{
    COMPONENT_LABEL, CONFIG_HASH_LABEL, CONFIG_LABEL, ObservedContainer, ObservedContainers,
    ObservedNetwork, ObservedVolume, PROJECT_LABEL, VOLUME_LABEL,
};
use crate::observe::engine;

/// The engine names god looks for besides the project's labelled objects.
#[derive(Debug, Clone, Default)]
pub struct Wanted {
    /// Container names.
    pub containers: BTreeSet<String>,
    /// Network names.
    pub networks: BTreeSet<String>,
    /// Volume names.
    pub volumes: BTreeSet<String>,
}

/// Reads the containers, networks and volumes of `project`, and the foreign ones named like
/// `wanted`.
pub async fn observe(
    docker: &Docker,
    project: &str,
    wanted: &Wanted,
) -> Result<ObservedContainers> {
    let options = ListContainersOptionsBuilder::new().all(true).build();
    let list = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| engine::failed("listing containers", e))?;
    let mut observed = ObservedContainers {
        project: project.to_string(),
        ..ObservedContainers::default()
    };
    let mounts = volume_users(&list);
    for summary in list {
        sort_container(summary, project, &wanted.containers, &mut observed);
    }
    observe_networks(docker, project, &wanted.networks, &mut observed).await?;
    observe_volumes(docker, project, &wanted.volumes, &mounts, &mut observed).await?;
    Ok(observed)
}

fn container_name(summary: &ContainerSummary) -> String {
    summary
        .names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_default()
}

fn sort_container(
    summary: ContainerSummary,
    project: &str,
    wanted: &BTreeSet<String>,
    observed: &mut ObservedContainers,
) {
    let name = container_name(&summary);
    let labels = summary.labels.unwrap_or_default();
    let id = summary.id.unwrap_or_default();
    let component = labels.get(COMPONENT_LABEL).cloned();
    let ours =
        labels.get(PROJECT_LABEL).map(String::as_str) == Some(project) && component.is_some();
    if ours {
        let exited = summary.state == Some(ContainerSummaryStateEnum::EXITED);
        let container = ObservedContainer {
            name,
            id,
            component: component.clone(),
            config_hash: labels.get(CONFIG_HASH_LABEL).cloned(),
            config: labels.get(CONFIG_LABEL).cloned(),
            running: summary.state == Some(ContainerSummaryStateEnum::RUNNING),
            completed: exited && exit_code(summary.status.as_deref()) == Some(0),
            unhealthy: summary
                .status
                .as_deref()
                .is_some_and(|s| s.ends_with("(unhealthy)")),
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

/// The exit code in a container's status line (`Exited (0) 3 minutes ago`).
fn exit_code(status: Option<&str>) -> Option<i64> {
    let rest = status?.strip_prefix("Exited (")?;
    rest.split(')').next()?.parse().ok()
}

/// The containers mounting each named volume.
fn volume_users(list: &[ContainerSummary]) -> HashMap<String, Vec<String>> {
    let mut users: HashMap<String, Vec<String>> = HashMap::new();
    for summary in list {
        let name = container_name(summary);
        for mount in summary.mounts.iter().flatten() {
            if let Some(volume) = &mount.name {
                users.entry(volume.clone()).or_default().push(name.clone());
            }
        }
    }
    users
}

async fn observe_networks(
    docker: &Docker,
    project: &str,
    wanted: &BTreeSet<String>,
    observed: &mut ObservedContainers,
) -> Result<()> {
    let list = docker
        .list_networks(None)
        .await
        .map_err(|e| engine::failed("listing networks", e))?;
    for network in list {
        let name = network.name.clone().unwrap_or_default();
        let owner = network
            .labels
            .as_ref()
            .and_then(|l| l.get(PROJECT_LABEL))
            .cloned();
        if !wanted.contains(&name) && owner.as_deref() != Some(project) {
            continue;
        }
        let inspected = docker
            .inspect_network(&name, None)
            .await
            .map_err(|e| engine::failed(&format!("inspecting network {name}"), e))?;
        let mut containers: Vec<String> = inspected
            .containers
            .unwrap_or_default()
            .into_values()
            .filter_map(|endpoint| endpoint.name)
            .collect();
        containers.sort();
        observed.networks.insert(
            name,
            ObservedNetwork {
                project: owner,
                containers,
            },
        );
    }
    Ok(())
}

async fn observe_volumes(
    docker: &Docker,
    project: &str,
    wanted: &BTreeSet<String>,
    users: &HashMap<String, Vec<String>>,
    observed: &mut ObservedContainers,
) -> Result<()> {
    let list = docker
        .list_volumes(None::<ListVolumesOptions>)
        .await
        .map_err(|e| engine::failed("listing volumes", e))?;
    for volume in list.volumes.unwrap_or_default() {
        let owner = volume.labels.get(PROJECT_LABEL).cloned();
        let ours = owner.as_deref() == Some(project);
        if !wanted.contains(&volume.name) && !ours {
            continue;
        }
        // Measured only for the project's volumes god may remove: the walk reads every file.
        let size_bytes = (ours && !wanted.contains(&volume.name))
            .then(|| measure(Path::new(&volume.mountpoint)))
            .flatten();
        let mut containers = users.get(&volume.name).cloned().unwrap_or_default();
        containers.sort();
        observed.volumes.insert(
            volume.name.clone(),
            ObservedVolume {
                key: volume.labels.get(VOLUME_LABEL).cloned(),
                project: owner,
                size_bytes,
                containers,
            },
        );
    }
    Ok(())
}

/// The bytes under a local volume's mount point, as `docker system df -v` counts them; None
/// when god cannot read it (another host's engine, or not root), which god treats as data.
fn measure(mountpoint: &Path) -> Option<i64> {
    let mut total: u64 = 0;
    for entry in walkdir::WalkDir::new(mountpoint) {
        let meta = entry.ok()?.metadata().ok()?;
        if !meta.is_dir() {
            total += meta.len();
        }
    }
    i64::try_from(total).ok()
}

#[cfg(test)]
mod tests {
    use super::exit_code;

    #[test]
    fn the_exit_code_is_read_from_the_status_line() {
        assert_eq!(exit_code(Some("Exited (0) 3 minutes ago")), Some(0));
        assert_eq!(exit_code(Some("Exited (137) 1 second ago")), Some(137));
        assert_eq!(exit_code(Some("Up 2 minutes")), None);
        assert_eq!(exit_code(None), None);
    }
}

/// One container of a project as `god ps` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ContainerStatus {
    /// Its component in components.toml.
    pub component: String,
    /// The container's name.
    pub container: String,
    /// Its image.
    pub image: String,
    /// `running`, `exited`, `restarting`, `created`, `paused`, `dead`.
    pub state: String,
    /// The engine's health check: `healthy`, `unhealthy`, `starting` (None: no check).
    pub health: Option<String>,
    /// Published ports, `127.0.0.1:8682->8682/tcp`.
    pub ports: Vec<String>,
    /// How often the engine restarted it.
    pub restarts: i64,
    /// Seconds since it started, while it runs.
    pub uptime_seconds: Option<u64>,
    /// Its exit code, once it stopped.
    pub exit_code: Option<i64>,
}

/// The containers of `project` (by god's labels), each inspected for its health, restarts and
/// start time.
pub async fn project_statuses(docker: &Docker, project: &str) -> Result<Vec<ContainerStatus>> {
    let filters = HashMap::from([("label", vec![format!("{PROJECT_LABEL}={project}")])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let list = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| engine::failed("listing containers", e))?;
    let mut statuses = Vec::new();
    for summary in list {
        let name = container_name(&summary);
        let Ok(info) = docker.inspect_container(&name, None).await else {
            continue; // removed meanwhile
        };
        let state = info.state.unwrap_or_default();
        let running = state.running == Some(true);
        statuses.push(ContainerStatus {
            component: summary
                .labels
                .as_ref()
                .and_then(|l| l.get(COMPONENT_LABEL).cloned())
                .unwrap_or_default(),
            image: summary.image.clone().unwrap_or_default(),
            state: state
                .status
                .map_or("unknown".to_string(), |s| s.to_string()),
            health: state
                .health
                .and_then(|h| h.status)
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty() && s != "none"),
            ports: published_ports(&summary),
            restarts: info.restart_count.unwrap_or_default(),
            uptime_seconds: running
                .then(|| seconds_since(state.started_at.as_deref()))
                .flatten(),
            exit_code: (!running).then_some(state.exit_code).flatten(),
            container: name,
        });
    }
    Ok(statuses)
}

fn published_ports(summary: &ContainerSummary) -> Vec<String> {
    let mut ports: Vec<String> = summary
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let public = p.public_port?;
            let ip = p.ip.as_deref().unwrap_or("0.0.0.0");
            let protocol = p.typ.map_or("tcp".to_string(), |t| t.to_string());
            Some(format!("{ip}:{public}->{}/{protocol}", p.private_port))
        })
        .collect();
    ports.sort();
    ports.dedup();
    ports
}

/// Whole seconds since an engine timestamp (RFC 3339).
fn seconds_since(timestamp: Option<&str>) -> Option<u64> {
    let started =
        time::OffsetDateTime::parse(timestamp?, &time::format_description::well_known::Rfc3339)
            .ok()?;
    let elapsed = time::OffsetDateTime::now_utc() - started;
    u64::try_from(elapsed.whole_seconds()).ok()
}
