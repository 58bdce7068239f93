//! The container planner: pure, like the broker's. Containers are compared by the hash of their
//! desired configuration, stored in a label when god created them.

use super::diff::PlanOptions;
use super::{Action, Change, Note, NoteKind, Plan, Resource, line_diff};
use crate::inputs::components::DesiredContainers;
use crate::model::containers::{ContainerSpec, ObservedContainers};

/// Computes the container changes of one project, in dependency order, then the prunes.
pub fn plan(
    desired: &DesiredContainers,
    observed: &ObservedContainers,
    options: PlanOptions,
) -> Plan {
    let mut changes = Vec::new();
    let mut notes = Vec::new();
    for spec in &desired.containers {
        if let Some(change) = container_change(spec, observed) {
            changes.push(change);
        }
    }
    for (component, found) in &observed.managed {
        if desired.containers.iter().any(|c| &c.component == component) {
            continue;
        }
        let id = format!("container/{}", found.name);
        if options.prune {
            let resource = placeholder(&found.name, component, &observed.project);
            let mut c = Change::new(
                Action::Delete,
                &resource,
                "its component is gone or disabled in components.toml (--prune)",
            );
            c.before = Some(resource);
            changes.push(c);
        } else {
            notes.push(Note {
                kind: NoteKind::Orphan,
                id,
                message: "its component is gone or disabled in components.toml; kept (--prune removes it)".to_string(),
            });
        }
    }
    let mut plan = Plan::new("", changes, notes);
    plan.project = Some(desired.project.clone());
    plan
}

fn container_change(spec: &ContainerSpec, observed: &ObservedContainers) -> Option<Change> {
    let resource = Resource::Container(Box::new(spec.clone()));
    let Some(found) = observed.managed.get(&spec.component) else {
        let mut c = Change::new(
            Action::Create,
            &resource,
            format!("component {} of components.toml", spec.component),
        );
        if let Some(owner) = observed.foreign_names.get(&spec.name) {
            c.blocked = Some(format!(
                "a container named {} already exists ({owner}) and is not god's; god never touches it. Rename or remove it",
                spec.name
            ));
        }
        c.after = Some(resource);
        return Some(c);
    };
    if found.config_hash.as_deref() != Some(spec.config_hash.as_str()) {
        let mut c = Change::new(
            Action::Replace,
            &resource,
            "its configuration differs from components.toml",
        );
        c.diff = line_diff(
            found.config.as_deref().unwrap_or_default(),
            &spec.config_lines(),
        );
        if c.diff.is_empty() {
            c.diff.push("~ a secret value changed".to_string());
        }
        c.after = Some(resource);
        return Some(c);
    }
    if !found.running {
        let mut c = Change::new(
            Action::Update,
            &resource,
            "it exists with the right configuration but is not running: start it",
        );
        c.before = Some(resource.clone());
        c.after = Some(resource);
        return Some(c);
    }
    None
}

/// A container known only by name (a prune target whose configuration is gone).
fn placeholder(name: &str, component: &str, project: &str) -> Resource {
    Resource::Container(Box::new(ContainerSpec {
        name: name.to_string(),
        component: component.to_string(),
        project: project.to_string(),
        image: String::new(),
        build: None,
        builtin: None,
        command: Vec::new(),
        env: Default::default(),
        network_mode: None,
        ports: Vec::new(),
        volumes: Vec::new(),
        restart: String::new(),
        depends_on: Vec::new(),
        labels: Default::default(),
        healthcheck: None,
        user: None,
        working_dir: None,
        config_hash: String::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::containers::{EnvSource, ObservedContainer};

    fn spec(component: &str, mode: &str) -> ContainerSpec {
        let Resource::Container(mut c) = placeholder(&format!("p-{component}"), component, "p")
        else {
            unreachable!()
        };
        c.image = "busybox:local".into();
        c.env.insert("MODE".into(), EnvSource::Value(mode.into()));
        c.config_hash = c.compute_hash(|_| None);
        *c
    }

    fn running(spec: &ContainerSpec) -> ObservedContainer {
        ObservedContainer {
            name: spec.name.clone(),
            id: "id".into(),
            component: Some(spec.component.clone()),
            config_hash: Some(spec.config_hash.clone()),
            config: Some(spec.config_lines()),
            running: true,
        }
    }

    fn desired(specs: Vec<ContainerSpec>) -> DesiredContainers {
        DesiredContainers {
            project: "p".into(),
            containers: specs,
        }
    }

    #[test]
    fn missing_containers_are_created_in_order_and_converged_ones_left_alone() {
        let d = desired(vec![spec("db", "x"), spec("web", "x")]);
        let p = plan(&d, &ObservedContainers::default(), PlanOptions::default());
        let ids: Vec<&str> = p.changes.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, vec!["container/p-db", "container/p-web"]);
        let mut o = ObservedContainers {
            project: "p".into(),
            ..Default::default()
        };
        for s in &d.containers {
            o.managed.insert(s.component.clone(), running(s));
        }
        assert!(plan(&d, &o, PlanOptions::default()).changes.is_empty());
    }

    #[test]
    fn a_changed_env_value_is_one_recreate_with_its_diff() {
        let old = spec("web", "demo");
        let mut o = ObservedContainers {
            project: "p".into(),
            ..Default::default()
        };
        o.managed.insert("web".into(), running(&old));
        let p = plan(
            &desired(vec![spec("web", "live")]),
            &o,
            PlanOptions::default(),
        );
        assert_eq!(p.changes.len(), 1);
        assert_eq!(p.changes[0].action, Action::Replace);
        assert_eq!(
            p.changes[0].diff,
            vec!["- env.MODE: \"demo\"", "+ env.MODE: \"live\""]
        );
    }

    #[test]
    fn foreign_containers_block_creation_and_orphans_need_prune() {
        let mut o = ObservedContainers {
            project: "p".into(),
            ..Default::default()
        };
        o.foreign_names.insert("p-web".into(), "abc123".into());
        o.managed.insert("old".into(), running(&spec("old", "x")));
        let p = plan(&desired(vec![spec("web", "x")]), &o, PlanOptions::default());
        assert!(
            p.changes[0]
                .blocked
                .as_deref()
                .unwrap()
                .contains("not god's")
        );
        assert_eq!(p.notes[0].id, "container/p-old");
        let pruned = plan(
            &desired(vec![spec("web", "x")]),
            &o,
            PlanOptions {
                prune: true,
                allow_data_loss: false,
            },
        );
        assert_eq!(pruned.changes[1].action, Action::Delete);
        assert_eq!(pruned.changes[1].id, "container/p-old");
        assert!(
            pruned.changes[1].before.is_some(),
            "the executor needs to know what to remove"
        );
    }
}
