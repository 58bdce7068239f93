//! The operator's container commands as plans, pure like the others: `god down` (the project's
//! containers and networks removed, in reverse dependency order, its volumes only when asked)
//! and `god restart` (named components restarted and waited for, in dependency order).

use super::containers::plan as plan_containers;
use super::diff::PlanOptions;
use super::{Action, Change, Note, NoteKind, Plan, ResourceKind};
use crate::model::containers::{DesiredContainers, ObservedContainers};

/// What `god down` removes: every container of the project (but those of inactive profiles),
/// the networks it made, and, with `volumes`, its named volumes with their data. Containers go
/// dependents first; a volume that is kept is said so.
pub fn teardown(desired: &DesiredContainers, observed: &ObservedContainers, volumes: bool) -> Plan {
    let nothing = DesiredContainers {
        project: desired.project.clone(),
        inactive: desired.inactive.clone(),
        ..DesiredContainers::default()
    };
    let options = PlanOptions {
        prune: true,
        allow_data_loss: true,
        migrate: false,
    };
    let everything = plan_containers(&nothing, observed, options);
    let mut notes = everything.notes;
    let mut changes = Vec::new();
    for change in everything.changes {
        let kept = match &change.blocked {
            Some(why) => format!("kept: {why}"),
            None if change.kind == ResourceKind::Volume && !volumes => {
                "kept with its data (god down --volumes removes it)".to_string()
            }
            None => {
                changes.push(change);
                continue;
            }
        };
        notes.push(Note {
            kind: NoteKind::Info,
            id: change.id,
            message: kept,
        });
    }
    let rank = |c: &Change| teardown_rank(desired, c);
    changes.sort_by_key(rank);
    for change in &mut changes {
        change.cause = "god down".to_string();
    }
    let mut plan = Plan::new(None, changes, notes);
    plan.project = Some(desired.project.clone());
    plan
}

/// Where a change goes in a teardown: containers no longer in components.toml first, then the
/// others dependents first, then networks, then volumes.
fn teardown_rank(desired: &DesiredContainers, change: &Change) -> (u8, usize) {
    match change.kind {
        ResourceKind::Container => {
            let position = desired
                .containers
                .iter()
                .position(|c| Some(c.name.as_str()) == change.id.strip_prefix("container/"));
            match position {
                None => (0, 0),
                Some(i) => (1, desired.containers.len() - i),
            }
        }
        ResourceKind::Network => (2, 0),
        _ => (3, 0),
    }
}

/// What `god restart COMPONENT…` does: each named component's container restarted and waited
/// for, in dependency order. A name that is no component, or whose container does not exist,
/// is an error saying what to do.
pub fn restarts(
    desired: &DesiredContainers,
    observed: &ObservedContainers,
    components: &[String],
) -> Result<Plan, String> {
    for name in components {
        if !desired.containers.iter().any(|c| &c.component == name) {
            let known: Vec<&str> = desired
                .containers
                .iter()
                .map(|c| c.component.as_str())
                .collect();
            return Err(format!(
                "no component {name} runs in project {}\nhint: the components are: {}",
                desired.project,
                known.join(", ")
            ));
        }
    }
    let mut changes = Vec::new();
    for spec in desired
        .containers
        .iter()
        .filter(|c| components.contains(&c.component))
    {
        if !observed.managed.contains_key(&spec.component) {
            return Err(format!(
                "component {} has no container yet\nhint: `god apply` creates it",
                spec.component
            ));
        }
        let resource = super::Resource::Container(Box::new(spec.clone()));
        let mut change = Change::new(Action::Update, &resource, "god restart");
        change.before = Some(resource.clone());
        change.after = Some(resource);
        changes.push(change);
    }
    let mut plan = Plan::new(None, changes, Vec::new());
    plan.project = Some(desired.project.clone());
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::containers::{
        ContainerSpec, NetworkSpec, ObservedContainer, ObservedNetwork, ObservedVolume, VolumeSpec,
    };

    fn spec(component: &str) -> ContainerSpec {
        let mut c: ContainerSpec = serde_json::from_value(serde_json::json!({
            "name": format!("p-{component}"), "component": component, "project": "p",
            "image": "busybox", "command": [], "env": {}, "networks": {}, "ports": [],
            "volumes": [], "restart": "no", "depends_on": [], "labels": {},
            "config_hash": "h"
        }))
        .unwrap();
        c.config_hash = "h".into();
        c
    }

    fn found(spec: &ContainerSpec) -> ObservedContainer {
        ObservedContainer {
            name: spec.name.clone(),
            id: "id".into(),
            component: Some(spec.component.clone()),
            config_hash: Some("h".into()),
            config: None,
            running: true,
            completed: false,
            unhealthy: false,
        }
    }

    /// broker <- gateway <- relay, an orphan, a network and a volume of the project.
    fn stack() -> (DesiredContainers, ObservedContainers) {
        let desired = DesiredContainers {
            project: "p".into(),
            containers: vec![spec("broker"), spec("gateway"), spec("relay")],
            networks: vec![NetworkSpec {
                name: "p_bus".into(),
                key: "bus".into(),
                project: "p".into(),
                driver: "bridge".into(),
                external: false,
            }],
            volumes: vec![VolumeSpec {
                name: "p_data".into(),
                key: "data".into(),
                project: "p".into(),
                driver: "local".into(),
                external: false,
            }],
            ..DesiredContainers::default()
        };
        let mut observed = ObservedContainers {
            project: "p".into(),
            ..ObservedContainers::default()
        };
        for c in desired.containers.iter().chain([&spec("old")]) {
            observed.managed.insert(c.component.clone(), found(c));
        }
        let attached = desired.containers.iter().map(|c| c.name.clone()).collect();
        observed.networks.insert(
            "p_bus".into(),
            ObservedNetwork {
                project: Some("p".into()),
                containers: attached,
            },
        );
        observed.volumes.insert(
            "p_data".into(),
            ObservedVolume {
                project: Some("p".into()),
                key: Some("data".into()),
                containers: vec!["p-broker".into()],
                size_bytes: Some(4096),
            },
        );
        (desired, observed)
    }

    fn ids(plan: &Plan) -> Vec<&str> {
        plan.changes.iter().map(|c| c.id.as_str()).collect()
    }

    #[test]
    fn down_removes_dependents_first_then_networks_and_keeps_volumes() {
        let (desired, observed) = stack();
        let plan = teardown(&desired, &observed, false);
        assert_eq!(
            ids(&plan),
            [
                "container/p-old",
                "container/p-relay",
                "container/p-gateway",
                "container/p-broker",
                "network/p_bus"
            ]
        );
        assert!(
            plan.changes
                .iter()
                .all(|c| c.action == Action::Delete && c.blocked.is_none())
        );
        assert!(
            plan.notes
                .iter()
                .any(|n| n.id == "volume/p_data" && n.message.contains("--volumes"))
        );
    }

    #[test]
    fn down_with_volumes_removes_them_last_even_with_data() {
        let (desired, observed) = stack();
        let plan = teardown(&desired, &observed, true);
        assert_eq!(ids(&plan).last(), Some(&"volume/p_data"));
        assert!(
            plan.changes.iter().all(|c| c.blocked.is_none()),
            "{:#?}",
            plan.changes
        );
    }

    #[test]
    fn down_leaves_inactive_profiles_alone() {
        let (mut desired, observed) = stack();
        desired.containers.retain(|c| c.component != "relay");
        desired.inactive.insert("relay".into(), vec!["ui".into()]);
        let plan = teardown(&desired, &observed, false);
        assert!(!ids(&plan).contains(&"container/p-relay"));
        // The relay still uses the network: it stays.
        assert!(!ids(&plan).contains(&"network/p_bus"));
    }

    #[test]
    fn restart_goes_in_dependency_order_and_names_unknown_components() {
        let (desired, observed) = stack();
        let wanted = ["relay".to_string(), "broker".to_string()];
        let plan = restarts(&desired, &observed, &wanted).unwrap();
        assert_eq!(ids(&plan), ["container/p-broker", "container/p-relay"]);
        assert!(plan.changes.iter().all(|c| c.action == Action::Update));
        let unknown = restarts(&desired, &observed, &["nope".to_string()]).unwrap_err();
        assert!(unknown.contains("broker, gateway, relay"), "{unknown}");
        let mut missing = observed.clone();
        missing.managed.remove("gateway");
        let err = restarts(&desired, &missing, &["gateway".to_string()]).unwrap_err();
        assert!(err.contains("god apply"), "{err}");
    }
}
