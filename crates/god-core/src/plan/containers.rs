//! The container planner: pure, like the broker's. Containers are compared by the hash of their
//! desired configuration, stored in a label when god created them.

use std::collections::BTreeSet;

use super::diff::PlanOptions;
use super::{Action, Change, Note, NoteKind, Plan, Resource, line_diff};
use crate::model::containers::{
    ContainerSpec, DesiredContainers, NetworkSpec, ObservedContainers, VolumeSpec, url_moves,
};

/// Computes the changes of one project: its networks and volumes, its containers in dependency
/// order, then the prunes (containers before the networks and volumes they used).
pub fn plan(
    desired: &DesiredContainers,
    observed: &ObservedContainers,
    options: PlanOptions,
) -> Plan {
    let mut changes = Vec::new();
    let mut notes = Vec::new();
    for network in &desired.networks {
        let found = observed.networks.get(&network.name);
        let resource = Resource::Network(network.clone());
        let project = found.map(|n| n.project.as_deref());
        shared_object(&resource, network.external, project, &desired.project)
            .apply_to(&mut changes, &mut notes);
    }
    for volume in &desired.volumes {
        let found = observed.volumes.get(&volume.name);
        let resource = Resource::Volume(volume.clone());
        let project = found.map(|v| v.project.as_deref());
        shared_object(&resource, volume.external, project, &desired.project)
            .apply_to(&mut changes, &mut notes);
    }
    let mut replaced_by_rename = BTreeSet::new();
    for spec in &desired.containers {
        let renamed = former_container(spec, desired, observed);
        let change = match renamed {
            Some(former) => {
                replaced_by_rename.insert(former.to_string());
                Some(rename(spec, former, observed))
            }
            None => container_change(spec, observed),
        };
        changes.extend(change);
    }
    for (component, found) in &observed.managed {
        if desired.containers.iter().any(|c| &c.component == component)
            || replaced_by_rename.contains(component)
        {
            continue;
        }
        if let Some(profiles) = desired.inactive.get(component) {
            notes.push(Note {
                kind: NoteKind::Skipped,
                id: format!("container/{}", found.name),
                message: format!(
                    "in profile {}, not active: left as it is (--profile {} includes it)",
                    profiles.join(", "),
                    profiles[0]
                ),
            });
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
    let leaving = containers_leaving(&changes);
    prune_networks(desired, observed, options, &leaving).apply_to(&mut changes, &mut notes);
    prune_volumes(desired, observed, options, &leaving).apply_to(&mut changes, &mut notes);
    let mut plan = Plan::new(None, changes, notes);
    plan.project = Some(desired.project.clone());
    plan
}

/// The changes to carry out before the broker's, when the plan starts the broker itself (a
/// component with `broker = true` is created, recreated or started): the networks and volumes
/// it creates, the broker's container and the containers it depends on, by index. Empty when
/// the broker's container does not change: then the topology goes first, as always.
pub fn broker_phase(plan: &Plan) -> BTreeSet<usize> {
    let containers: Vec<(usize, &ContainerSpec)> = plan
        .changes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.action != Action::Delete)
        .filter_map(|(i, c)| match c.resource() {
            Some(Resource::Container(spec)) => Some((i, spec.as_ref())),
            _ => None,
        })
        .collect();
    let Some((_, broker)) = containers.iter().find(|(_, spec)| spec.broker) else {
        return BTreeSet::new();
    };
    let mut needed: BTreeSet<&str> = BTreeSet::from([broker.component.as_str()]);
    let mut pending: Vec<&str> = vec![&broker.component];
    while let Some(component) = pending.pop() {
        let deps = containers
            .iter()
            .filter(|(_, spec)| spec.component == component)
            .flat_map(|(_, spec)| spec.depends_on.iter());
        for dep in deps {
            if needed.insert(dep) {
                pending.push(dep);
            }
        }
    }
    let shared = plan.changes.iter().enumerate().filter(|(_, c)| {
        c.action == Action::Create
            && matches!(
                c.resource(),
                Some(Resource::Network(_) | Resource::Volume(_))
            )
    });
    shared
        .map(|(i, _)| i)
        .chain(
            containers
                .iter()
                .filter(|(_, spec)| needed.contains(spec.component.as_str()))
                .map(|(i, _)| *i),
        )
        .collect()
}

/// What planning one object gave: changes, notes, or neither.
#[derive(Default)]
struct Planned {
    changes: Vec<Change>,
    notes: Vec<Note>,
}

impl Planned {
    fn change(change: Change) -> Self {
        Self {
            changes: vec![change],
            notes: Vec::new(),
        }
    }

    fn note(kind: NoteKind, id: String, message: String) -> Self {
        Self {
            changes: Vec::new(),
            notes: vec![Note { kind, id, message }],
        }
    }

    fn apply_to(self, changes: &mut Vec<Change>, notes: &mut Vec<Note>) {
        changes.extend(self.changes);
        notes.extend(self.notes);
    }

    fn and(mut self, other: Planned) -> Self {
        self.changes.extend(other.changes);
        self.notes.extend(other.notes);
        self
    }
}

/// A desired network or volume: created when missing (unless external, which god never
/// creates), used as it is when it exists, with a note when it is not god's. `found` is the
/// project label of the one found (None: nothing of that name).
fn shared_object(
    resource: &Resource,
    external: bool,
    found: Option<Option<&str>>,
    project: &str,
) -> Planned {
    let what = kind_word(resource);
    let name = resource.name();
    match (found, external) {
        (None, false) => {
            let mut c = Change::new(
                Action::Create,
                resource,
                format!("{what} {} of components.toml", key_of(resource)),
            );
            c.after = Some(resource.clone());
            Planned::change(c)
        }
        (None, true) => {
            let mut c = Change::new(
                Action::Create,
                resource,
                format!("external {what} of components.toml"),
            );
            c.blocked = Some(format!(
                "external {what} {name} does not exist, and god never creates an external one: create it (docker {what} create {name}) or drop `external = true`"
            ));
            c.after = Some(resource.clone());
            Planned::change(c)
        }
        (Some(owner), false) if owner != Some(project) => Planned::note(
            NoteKind::Info,
            resource.id(),
            format!(
                "{what} {name} exists and was not made by god for this project: used as it is, never removed"
            ),
        ),
        _ => Planned::default(),
    }
}

fn kind_word(resource: &Resource) -> &'static str {
    match resource {
        Resource::Network(_) => "network",
        _ => "volume",
    }
}

fn key_of(resource: &Resource) -> &str {
    match resource {
        Resource::Network(n) => &n.key,
        Resource::Volume(v) => &v.key,
        other => other.name(),
    }
}

/// The containers this plan removes or recreates: they let go of their networks and volumes.
fn containers_leaving(changes: &[Change]) -> BTreeSet<String> {
    changes
        .iter()
        .filter(|c| matches!(c.action, Action::Delete | Action::Replace))
        .filter_map(|c| c.before.as_ref().map(|r| r.name().to_string()))
        .collect()
}

/// Those of `users` that stay: every one but the containers this plan removes or recreates.
fn staying<'a>(users: &'a [String], leaving: &BTreeSet<String>) -> Vec<&'a str> {
    users
        .iter()
        .filter(|u| !leaving.contains(*u))
        .map(String::as_str)
        .collect()
}

/// The project's networks no longer in components.toml: removed with `--prune` when nothing
/// else is attached, else kept with a note.
fn prune_networks(
    desired: &DesiredContainers,
    observed: &ObservedContainers,
    options: PlanOptions,
    leaving: &BTreeSet<String>,
) -> Planned {
    let wanted: BTreeSet<&str> = desired.networks.iter().map(|n| n.name.as_str()).collect();
    let mut out = Planned::default();
    for (name, found) in &observed.networks {
        if wanted.contains(name.as_str()) || found.project.as_deref() != Some(&desired.project) {
            continue;
        }
        let resource = Resource::Network(NetworkSpec {
            name: name.clone(),
            key: String::new(),
            project: desired.project.clone(),
            driver: String::new(),
            external: false,
        });
        let attached = staying(&found.containers, leaving);
        out = out.and(prune(
            &resource,
            options,
            "its network is gone from components.toml",
            (!attached.is_empty()).then(|| {
                format!(
                    "{} attached to it ({}): a network is removed only when nothing uses it",
                    plural(attached.len(), "container is", "containers are"),
                    attached.join(", ")
                )
            }),
        ));
    }
    out
}

/// The project's volumes no longer in components.toml: removed with `--prune` when nothing
/// mounts them and they are empty, or with `--allow-data-loss` too when they hold data.
fn prune_volumes(
    desired: &DesiredContainers,
    observed: &ObservedContainers,
    options: PlanOptions,
    leaving: &BTreeSet<String>,
) -> Planned {
    let wanted: BTreeSet<&str> = desired.volumes.iter().map(|v| v.name.as_str()).collect();
    let mut out = Planned::default();
    for (name, found) in &observed.volumes {
        if wanted.contains(name.as_str()) || found.project.as_deref() != Some(&desired.project) {
            continue;
        }
        let resource = Resource::Volume(VolumeSpec {
            name: name.clone(),
            key: found.key.clone().unwrap_or_default(),
            project: desired.project.clone(),
            driver: String::new(),
            external: false,
        });
        let size = volume_size(found.size_bytes);
        let users = staying(&found.containers, leaving);
        let refusal = if !users.is_empty() {
            Some(format!(
                "{} mounted by {}: it is removed only when nothing uses it",
                name,
                users.join(", ")
            ))
        } else if found.size_bytes != Some(0) && !options.allow_data_loss {
            Some(format!(
                "it holds {size}: --prune --allow-data-loss removes it with its data"
            ))
        } else {
            None
        };
        let cause = format!("its volume is gone from components.toml; it holds {size}");
        out = out.and(prune(&resource, options, &cause, refusal));
    }
    out
}

/// A prune of one of the project's objects: a deletion with `--prune` (refused for `refusal`
/// when there is one), else an orphan note.
fn prune(
    resource: &Resource,
    options: PlanOptions,
    cause: &str,
    refusal: Option<String>,
) -> Planned {
    if !options.prune {
        return Planned::note(
            NoteKind::Orphan,
            resource.id(),
            format!("{cause}; kept (--prune removes it)"),
        );
    }
    let mut c = Change::new(Action::Delete, resource, format!("{cause} (--prune)"));
    c.before = Some(resource.clone());
    c.blocked = refusal;
    Planned::change(c)
}

/// A volume's size for people: `12.3 MB`, `0 bytes`, or `an unknown amount of data`.
fn volume_size(bytes: Option<i64>) -> String {
    match bytes {
        None => "an unknown amount of data".to_string(),
        Some(b) if b < 1024 => plural(b.max(0) as usize, "byte", "bytes"),
        Some(b) => {
            let units = ["KB", "MB", "GB", "TB"];
            let mut value = b as f64 / 1024.0;
            let mut unit = 0;
            while value >= 1024.0 && unit < units.len() - 1 {
                value /= 1024.0;
                unit += 1;
            }
            format!("{value:.1} {}", units[unit])
        }
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
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
        let before = found.config.as_deref().unwrap_or_default();
        let diff = line_diff(before, &spec.config_lines());
        let mut why = secret_url_moves(before, spec);
        if diff.is_empty() {
            why.push("a secret value changed".to_string());
        }
        let cause = std::iter::once("its configuration differs from components.toml".to_string())
            .chain(why)
            .collect::<Vec<_>>()
            .join("; ");
        let mut c = Change::new(Action::Replace, &resource, cause);
        c.diff = diff;
        c.after = Some(resource);
        // The container to remove, by the name it has (`container_name` may have changed).
        c.before = Some(placeholder(&found.name, &spec.component, &observed.project));
        return Some(c);
    }
    let done = (found.running && !found.unhealthy) || (spec.run_once && found.completed);
    if !done {
        let cause = if spec.run_once {
            "a one-shot container that has not completed successfully: run it again"
        } else if found.running {
            "it runs, but the engine's health check reports it unhealthy (the engine does not restart it): restart it"
        } else {
            "it exists with the right configuration but is not running: start it"
        };
        let mut c = Change::new(Action::Update, &resource, cause);
        c.before = Some(resource.clone());
        c.after = Some(resource);
        return Some(c);
    }
    None
}

/// The former component (`renamed_from`) whose container a component takes over: the component
/// has none of its own yet, and the former one is no component any more.
fn former_container<'a>(
    spec: &ContainerSpec,
    desired: &'a DesiredContainers,
    observed: &ObservedContainers,
) -> Option<&'a str> {
    if observed.managed.contains_key(&spec.component) {
        return None;
    }
    desired
        .renamed_from
        .get(&spec.component)?
        .iter()
        .find(|former| {
            observed.managed.contains_key(*former)
                && !desired.containers.iter().any(|c| &c.component == *former)
        })
        .map(String::as_str)
}

/// A rename: the container of the former component is removed and the component's created.
fn rename(spec: &ContainerSpec, former: &str, observed: &ObservedContainers) -> Change {
    let found = &observed.managed[former];
    let resource = Resource::Container(Box::new(spec.clone()));
    let cause = format!(
        "component {former} is now {} in components.toml (renamed_from): its container {} is replaced by {}",
        spec.component, found.name, spec.name
    );
    let mut c = Change::new(Action::Replace, &resource, cause);
    c.after = Some(resource);
    c.before = Some(placeholder(&found.name, former, &observed.project));
    c
}

/// For each URL-valued secret that now points elsewhere: `KEY moved (vhost)`, naming the parts
/// that moved (read from the masked URLs, never the secrets).
fn secret_url_moves(before: &str, spec: &ContainerSpec) -> Vec<String> {
    spec.env
        .iter()
        .filter_map(|(key, source)| {
            let now = source.shown_url()?;
            let prefix = format!("env.{key}: ");
            let was = before
                .lines()
                .find_map(|line| line.strip_prefix(&prefix))?
                .split(' ')
                .next()?;
            let moved = url_moves(was, now);
            (!moved.is_empty()).then(|| format!("{key} moved ({})", moved.join(", ")))
        })
        .collect()
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
        networks: Default::default(),
        ports: Vec::new(),
        volumes: Vec::new(),
        restart: String::new(),
        depends_on: Vec::new(),
        conditions: Default::default(),
        run_once: false,
        broker: false,
        labels: Default::default(),
        healthcheck: None,
        user: None,
        working_dir: None,
        runtime: Default::default(),
        config_hash: String::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::containers::{EnvSource, ObservedContainer, SecretValues};

    fn spec(component: &str, mode: &str) -> ContainerSpec {
        let Resource::Container(mut c) = placeholder(&format!("p-{component}"), component, "p")
        else {
            unreachable!()
        };
        c.image = "busybox:local".into();
        c.env.insert("MODE".into(), EnvSource::Value(mode.into()));
        c.config_hash = c.compute_hash(&no_secrets());
        *c
    }

    fn no_secrets() -> SecretValues<'static> {
        SecretValues {
            env: &|_| None,
            broker_url: None,
        }
    }

    fn running(spec: &ContainerSpec) -> ObservedContainer {
        ObservedContainer {
            name: spec.name.clone(),
            id: "id".into(),
            component: Some(spec.component.clone()),
            config_hash: Some(spec.config_hash.clone()),
            config: Some(spec.config_lines()),
            running: true,
            completed: false,
            unhealthy: false,
        }
    }

    fn desired(specs: Vec<ContainerSpec>) -> DesiredContainers {
        DesiredContainers {
            project: "p".into(),
            containers: specs,
            ..Default::default()
        }
    }

    #[test]
    fn a_renamed_component_replaces_its_former_container_once() {
        let old = spec("gateway", "a");
        let mut new = spec("bloodbank", "a");
        new.name = "33god-bloodbank".into();
        let mut o = ObservedContainers {
            project: "p".into(),
            ..Default::default()
        };
        o.managed.insert("gateway".into(), running(&old));
        let without_key = plan(&desired(vec![new.clone()]), &o, PlanOptions::default());
        assert_eq!(without_key.changes.len(), 1);
        assert_eq!(without_key.changes[0].action, Action::Create);

        let mut d = desired(vec![new]);
        d.renamed_from
            .insert("bloodbank".into(), vec!["gateway".into()]);
        for prune in [false, true] {
            let p = plan(
                &d,
                &o,
                PlanOptions {
                    prune,
                    ..Default::default()
                },
            );
            assert_eq!(p.changes.len(), 1, "{:#?}", p.changes);
            let change = &p.changes[0];
            assert_eq!(change.action, Action::Replace);
            assert_eq!(change.before.as_ref().unwrap().name(), "p-gateway");
            assert!(
                change.cause.contains("component gateway is now bloodbank"),
                "{}",
                change.cause
            );
            assert!(p.notes.is_empty(), "{:#?}", p.notes);
        }
        // Once renamed, the component's own container is what is compared.
        o.managed
            .insert("bloodbank".into(), running(&d.containers[0]));
        o.managed.remove("gateway");
        assert!(plan(&d, &o, PlanOptions::default()).changes.is_empty());
    }

    #[test]
    fn a_container_of_an_inactive_profile_is_left_alone_even_with_prune() {
        let mut d = desired(Vec::new());
        d.inactive
            .insert("grafana".into(), vec!["observability".into()]);
        let mut o = ObservedContainers {
            project: "p".into(),
            ..Default::default()
        };
        o.managed
            .insert("grafana".into(), running(&spec("grafana", "x")));
        let options = PlanOptions {
            prune: true,
            ..PlanOptions::default()
        };
        let p = plan(&d, &o, options);
        assert!(p.changes.is_empty(), "{:?}", p.changes);
        assert_eq!(p.notes[0].kind, NoteKind::Skipped);
        assert!(p.notes[0].message.contains("--profile observability"));
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
    fn an_unhealthy_running_container_is_restarted_in_place() {
        let web = spec("web", "x");
        let mut o = ObservedContainers {
            project: "p".into(),
            ..Default::default()
        };
        let mut observed = running(&web);
        observed.unhealthy = true;
        o.managed.insert("web".into(), observed);
        let p = plan(&desired(vec![web]), &o, PlanOptions::default());
        assert_eq!(p.changes.len(), 1);
        assert_eq!(p.changes[0].action, Action::Update);
        assert!(
            p.changes[0].cause.contains("unhealthy"),
            "{}",
            p.changes[0].cause
        );
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
    fn a_moved_url_secret_is_named_and_a_plain_secret_only_said_to_change() {
        let mut old = spec("web", "x");
        old.env.insert(
            "URL".into(),
            EnvSource::Secret {
                from_env: "URL".into(),
                shown: Some("amqp://u:***@127.0.0.1:5672/%2f".into()),
            },
        );
        let mut o = ObservedContainers::default();
        o.managed.insert("web".into(), running(&old));
        let mut moved = old.clone();
        moved.env.insert(
            "URL".into(),
            EnvSource::Secret {
                from_env: "URL".into(),
                shown: Some("amqp://u:***@10.0.0.1:5672/probe".into()),
            },
        );
        moved.config_hash = "other".into();
        let p = plan(&desired(vec![moved]), &o, PlanOptions::default());
        assert!(
            p.changes[0].cause.ends_with("; URL moved (host, vhost)"),
            "{}",
            p.changes[0].cause
        );
        assert_eq!(
            p.changes[0].diff,
            vec![
                "- env.URL: amqp://u:***@127.0.0.1:5672/%2f (secret, from $URL)",
                "+ env.URL: amqp://u:***@10.0.0.1:5672/probe (secret, from $URL)"
            ]
        );
        let mut rotated = old.clone();
        rotated.config_hash = "rotated".into();
        let p = plan(&desired(vec![rotated]), &o, PlanOptions::default());
        assert!(p.changes[0].diff.is_empty());
        assert!(
            p.changes[0].cause.ends_with("; a secret value changed"),
            "{}",
            p.changes[0].cause
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
                ..PlanOptions::default()
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
