//! The container stack's shared objects: its networks (each container on its networks with its
//! aliases, as components.toml says) and its named volumes (present, their filesystems not
//! nearly full).

use std::time::Duration;

use bollard::Docker;

use super::check::{Area, Check, Verdict, within};
use crate::model::containers::{DesiredContainers, NetworkSpec, VolumeSpec};
use crate::observe::engine;

/// The share of a volume's filesystem in use that warns, and that fails.
pub const VOLUME_FULL: (f64, f64) = (0.90, 0.98);

/// The checks of the project's networks and volumes (skipped when it declares none).
pub async fn checks(desired: Option<&DesiredContainers>, limit: Duration) -> Vec<Check> {
    let desired = desired.cloned().unwrap_or_default();
    let ids = ["services.networks", "services.volumes"];
    if desired.networks.is_empty() && desired.volumes.is_empty() {
        return ids
            .iter()
            .map(|id| Check::skip(id, Area::Services, "components.toml declares none"))
            .collect();
    }
    let docker = match within(limit, engine::connect()).await {
        Ok(d) => d,
        Err(problem) => {
            return ids
                .iter()
                .map(|id| Check::skip(id, Area::Services, format!("no engine: {problem}")))
                .collect();
        }
    };
    let (networks, volumes) = tokio::join!(
        networks(&docker, &desired, limit),
        volumes(&docker, &desired.volumes, limit)
    );
    vec![networks, volumes]
}

/// Every network exists, and every running container is on its networks with its aliases.
async fn networks(docker: &Docker, desired: &DesiredContainers, limit: Duration) -> Check {
    let id = "services.networks";
    if desired.networks.is_empty() {
        return Check::skip(id, Area::Services, "components.toml declares no network");
    }
    let mut problems = Vec::new();
    for network in &desired.networks {
        if within(limit, inspect_network(docker, network))
            .await
            .is_err()
        {
            problems.push(missing_network(network));
        }
    }
    for spec in desired.containers.iter().filter(|c| !c.networks.is_empty()) {
        let Ok(info) = within(limit, async {
            docker
                .inspect_container(&spec.name, None)
                .await
                .map_err(|e| engine::failed(&format!("inspecting {}", spec.name), e))
        })
        .await
        else {
            continue;
        };
        let joined = info
            .network_settings
            .and_then(|s| s.networks)
            .unwrap_or_default();
        for (network, aliases) in &spec.networks {
            match joined.get(network) {
                None => problems.push(format!("{}: not on network {network}", spec.name)),
                Some(endpoint) => {
                    let has = endpoint.aliases.clone().unwrap_or_default();
                    let lacking: Vec<&str> = aliases
                        .iter()
                        .filter(|a| !has.contains(a))
                        .map(String::as_str)
                        .collect();
                    if !lacking.is_empty() {
                        problems.push(format!(
                            "{}: on {network} without its alias(es) {}",
                            spec.name,
                            lacking.join(", ")
                        ));
                    }
                }
            }
        }
    }
    let n = desired.networks.len();
    if problems.is_empty() {
        Check::ok(
            id,
            Area::Services,
            format!("{n} network(s) present, every container on them with its aliases"),
        )
    } else {
        Check::new(
            id,
            Area::Services,
            Verdict::Fail,
            "networks or aliases are not as components.toml says",
        )
        .with_fix("run `god apply` (it creates networks and recreates containers that miss one)")
        .with_details(problems)
    }
}

async fn inspect_network(docker: &Docker, network: &NetworkSpec) -> crate::error::Result<()> {
    docker
        .inspect_network(&network.name, None)
        .await
        .map(|_| ())
        .map_err(|e| engine::failed(&format!("inspecting network {}", network.name), e))
}

fn missing_network(network: &NetworkSpec) -> String {
    if network.external {
        format!(
            "external network {} is missing: create it (docker network create {})",
            network.name, network.name
        )
    } else {
        format!("network {} is missing", network.name)
    }
}

/// Every volume exists, and the filesystem holding it is not nearly full.
async fn volumes(docker: &Docker, volumes: &[VolumeSpec], limit: Duration) -> Check {
    let id = "services.volumes";
    if volumes.is_empty() {
        return Check::skip(id, Area::Services, "components.toml declares no volume");
    }
    let mut worst = Verdict::Ok;
    let mut lines = Vec::new();
    for volume in volumes {
        let found = within(limit, async {
            docker
                .inspect_volume(&volume.name)
                .await
                .map_err(|e| engine::failed(&format!("inspecting volume {}", volume.name), e))
        })
        .await;
        let (verdict, line) = match found {
            Err(_) => (Verdict::Fail, format!("{}: missing", volume.name)),
            Ok(v) => match filesystem_use(&v.mountpoint) {
                None => (
                    Verdict::Ok,
                    format!(
                        "{}: present (its filesystem is not readable here)",
                        volume.name
                    ),
                ),
                Some((used, total)) => (
                    fullness(used),
                    format!(
                        "{}: {:.0}% of its filesystem's {:.1} GB used",
                        volume.name,
                        used * 100.0,
                        total / 1e9
                    ),
                ),
            },
        };
        worst = worst.max(verdict);
        lines.push(line);
    }
    match worst {
        Verdict::Ok | Verdict::Skip => Check::ok(
            id,
            Area::Services,
            format!("{} volume(s) present, none nearly full", volumes.len()),
        ),
        Verdict::Warn => Check::new(id, Area::Services, Verdict::Warn, "a volume's filesystem is nearly full")
            .with_fix("free space on that filesystem before the service writing there fails (RabbitMQ blocks publishers at its disk limit)"),
        Verdict::Fail => Check::new(id, Area::Services, Verdict::Fail, "a volume is missing or its filesystem is full")
            .with_fix("run `god apply` to create a missing volume; free space on a full filesystem"),
    }
    .with_details(lines)
}

/// How a volume's filesystem use is judged.
fn fullness(used: f64) -> Verdict {
    match used {
        u if u >= VOLUME_FULL.1 => Verdict::Fail,
        u if u >= VOLUME_FULL.0 => Verdict::Warn,
        _ => Verdict::Ok,
    }
}

/// The share of the filesystem at `path` in use (as `df` gives it), and its size in bytes (None when god cannot
/// read it: another host's engine, or not root).
fn filesystem_use(path: &str) -> Option<(f64, f64)> {
    let stats = rustix::fs::statvfs(path).ok()?;
    let block = stats.f_frsize as f64;
    let total = stats.f_blocks as f64 * block;
    // As `df` counts: blocks reserved for root are neither used nor available.
    let used = (stats.f_blocks - stats.f_bfree) as f64 * block;
    let available = stats.f_bavail as f64 * block;
    (used + available > 0.0).then(|| (used / (used + available), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_is_judged_by_how_full_its_filesystem_is() {
        assert_eq!(fullness(0.5), Verdict::Ok);
        assert_eq!(fullness(0.93), Verdict::Warn);
        assert_eq!(fullness(0.99), Verdict::Fail);
        let (used, total) = filesystem_use("/").unwrap();
        assert!(used > 0.0 && used < 1.0 && total > 0.0);
    }
}
