//! A plan: the value that says what `apply` will do. It is computed by a pure function
//! ([`diff::plan`]), printed by [`render`], saved and checked by [`saved`].

#[cfg(test)]
mod cluster_tests;
pub mod containers;
pub mod diff;
pub mod graph;
pub mod heal;
pub mod operations;
pub mod render;
pub mod saved;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use similar::{ChangeTag, TextDiff};

use crate::model::containers::{ContainerSpec, NetworkSpec, VolumeSpec};
use crate::model::wiring::{first_death_queue, group_members};
use crate::model::{BindingSpec, ExchangeSpec, LimitSpec, PolicySpec, QueueSpec};

/// The holding queue of a queue replaced with `--migrate` is `<queue>.god-migrating`.
pub const MIGRATION_HOLDING_SUFFIX: &str = ".god-migrating";

/// Version of the plan's JSON format (`schemas/plan.schema.json`).
pub const PLAN_FORMAT_VERSION: u32 = 1;

/// What a change does to its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Declare an object that does not exist.
    Create,
    /// Record an existing, matching object as managed by god.
    Adopt,
    /// Change an object in place.
    Update,
    /// Delete and declare again (the only way to change a queue's arguments).
    Replace,
    /// Delete an object.
    Delete,
}

impl Action {
    /// The marker shown in the human plan.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Adopt | Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
        }
    }
}

/// The kind of object a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    /// Changes an exchange.
    Exchange,
    /// Changes a queue.
    Queue,
    /// Changes a binding (identified by all its fields).
    Binding,
    /// Changes a policy of the vhost.
    Policy,
    /// Changes an operator policy (a cap on what policies and clients set).
    #[serde(rename = "operator_policy")]
    OperatorPolicy,
    /// A limit of the vhost.
    Limit,
    /// Changes a container of the project.
    Container,
    /// A network of the container project.
    Network,
    /// A named volume of the container project.
    Volume,
}

impl ResourceKind {
    /// The word its identifiers start with (`queue` in `queue/NAME`).
    pub fn id_prefix(self) -> &'static str {
        match self {
            ResourceKind::Exchange => "exchange",
            ResourceKind::Queue => "queue",
            ResourceKind::Binding => "binding",
            ResourceKind::Policy => "policy",
            ResourceKind::OperatorPolicy => "operator_policy",
            ResourceKind::Limit => "limit",
            ResourceKind::Container => "container",
            ResourceKind::Network => "network",
            ResourceKind::Volume => "volume",
        }
    }

    /// Whether objects of this kind live on the broker (as opposed to the Docker engine).
    pub fn is_broker(self) -> bool {
        !matches!(
            self,
            ResourceKind::Container | ResourceKind::Network | ResourceKind::Volume
        )
    }
}

/// A broker object, tagged with its kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Resource {
    /// An exchange to declare, delete or adopt.
    Exchange(ExchangeSpec),
    /// A queue to declare, replace, delete or adopt.
    Queue(QueueSpec),
    /// A binding to add or remove.
    Binding(BindingSpec),
    /// A policy to set or clear.
    Policy(PolicySpec),
    /// An operator policy to set or clear.
    #[serde(rename = "operator_policy")]
    OperatorPolicy(PolicySpec),
    /// A limit of the vhost.
    Limit(LimitSpec),
    /// A container to create, recreate or remove.
    Container(Box<ContainerSpec>),
    /// A network of the container project.
    Network(NetworkSpec),
    /// A named volume of the container project.
    Volume(VolumeSpec),
}

impl Resource {
    /// Which kind of object it is, for grouping and filtering changes.
    pub fn kind(&self) -> ResourceKind {
        match self {
            Resource::Exchange(_) => ResourceKind::Exchange,
            Resource::Queue(_) => ResourceKind::Queue,
            Resource::Binding(_) => ResourceKind::Binding,
            Resource::Policy(_) => ResourceKind::Policy,
            Resource::OperatorPolicy(_) => ResourceKind::OperatorPolicy,
            Resource::Limit(_) => ResourceKind::Limit,
            Resource::Container(_) => ResourceKind::Container,
            Resource::Network(_) => ResourceKind::Network,
            Resource::Volume(_) => ResourceKind::Volume,
        }
    }

    /// Its name (for a binding: its destination).
    pub fn name(&self) -> &str {
        match self {
            Resource::Exchange(e) => &e.name,
            Resource::Queue(q) => &q.name,
            Resource::Policy(p) | Resource::OperatorPolicy(p) => &p.name,
            Resource::Limit(l) => &l.name,
            Resource::Binding(b) => &b.destination,
            Resource::Container(c) => &c.name,
            Resource::Network(n) => &n.name,
            Resource::Volume(v) => &v.name,
        }
    }

    /// A stable identifier: `kind/name`, for bindings `binding/source/type/destination/key`.
    pub fn id(&self) -> String {
        match self {
            Resource::Binding(b) => binding_id(b),
            other => object_id(other.kind(), other.name()),
        }
    }
}

/// The identifier of a named object (not a binding): `kind/name`.
pub fn object_id(kind: ResourceKind, name: &str) -> String {
    format!("{}/{name}", kind.id_prefix())
}

/// The identifier of a binding (its arguments are appended when it has any).
pub fn binding_id(b: &BindingSpec) -> String {
    let kind = b.destination_type.as_str();
    let mut id = format!(
        "binding/{}/{kind}/{}/{}",
        b.source, b.destination, b.routing_key
    );
    if !b.arguments.is_empty() {
        id.push_str(&crate::model::format_arguments(&b.arguments));
    }
    id
}

/// One change of a plan, with its cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// What is done.
    pub action: Action,
    /// The kind of object.
    pub kind: ResourceKind,
    /// Stable identifier of the object.
    pub id: String,
    /// Why: what in the inputs or on the broker calls for it.
    pub cause: String,
    /// The object as it is (update, replace, delete, adopt).
    pub before: Option<Resource>,
    /// The object as it will be (create, adopt, update, replace).
    pub after: Option<Resource>,
    /// Messages the queue held when planned (queue replace and delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<u64>,
    /// Readable line diff of the object's properties (update, replace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<String>,
    /// Set when apply will refuse this change, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
}

impl Change {
    /// A change with no before/after detail yet.
    pub fn new(action: Action, resource: &Resource, cause: impl Into<String>) -> Self {
        Self {
            action,
            kind: resource.kind(),
            id: resource.id(),
            cause: cause.into(),
            before: None,
            after: None,
            messages: None,
            diff: Vec::new(),
            blocked: None,
        }
    }

    /// The object the change is about: as it will be, or as it was for a deletion.
    pub fn resource(&self) -> Option<&Resource> {
        self.after.as_ref().or(self.before.as_ref())
    }

    /// The name of the object (for a binding: its destination).
    pub fn name(&self) -> &str {
        self.resource().map(Resource::name).unwrap_or_default()
    }
}

/// What kind of remark a note is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoteKind {
    /// A managed object no longer in the inputs, kept.
    Orphan,
    /// A planned service: nothing is created for it.
    Skipped,
    /// A deprecated service: nothing is created, existing queues are kept.
    Deprecated,
    /// Something god noticed and leaves alone.
    Info,
    /// An object on a node that is down: not observed whole, left alone until it is back.
    Unavailable,
}

/// A remark that is not a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// Kind of remark.
    pub kind: NoteKind,
    /// The object or service it is about.
    pub id: String,
    /// What to know.
    pub message: String,
}

/// Counts for the closing line, the way terraform counts (a replace is one add and one destroy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Existing objects god starts managing as they are (terraform's "to import").
    #[serde(default)]
    pub adopt: usize,
    /// Objects created (and re-created by a replace).
    pub add: usize,
    /// Objects changed in place.
    pub change: usize,
    /// Objects deleted (and deleted by a replace).
    pub destroy: usize,
}

impl Summary {
    /// `N to adopt, ` (or `N adopted, `) before the other counts, when there are adoptions.
    pub fn adopted_prefix(&self, verb: &str) -> String {
        match self.adopt {
            0 => String::new(),
            n => format!("{n} {verb}, "),
        }
    }

    /// The counts of these actions.
    pub fn of(actions: impl Iterator<Item = Action>) -> Self {
        let mut summary = Summary::default();
        for action in actions {
            match action {
                Action::Create => summary.add += 1,
                Action::Adopt => summary.adopt += 1,
                Action::Update => summary.change += 1,
                Action::Delete => summary.destroy += 1,
                Action::Replace => {
                    summary.add += 1;
                    summary.destroy += 1;
                }
            }
        }
        summary
    }
}

/// A plan for one vhost and one container project: the changes in the order they will be
/// applied, and the notes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Format version of this document.
    pub format_version: u32,
    /// The vhost the plan is for; None when it covers containers only (written as "").
    #[serde(with = "vhost_or_empty")]
    pub vhost: Option<String>,
    /// The container project the plan is for, when it covers containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Changes, in execution order.
    pub changes: Vec<Change>,
    /// Orphans, skipped and deprecated services, other remarks.
    pub notes: Vec<Note>,
    /// Counts.
    pub summary: Summary,
}

impl Plan {
    /// Builds a plan and its summary from its changes.
    pub fn new(vhost: Option<&str>, changes: Vec<Change>, notes: Vec<Note>) -> Self {
        let summary = Summary::of(changes.iter().map(|c| c.action));
        Self {
            format_version: PLAN_FORMAT_VERSION,
            vhost: vhost.map(str::to_string),
            project: None,
            changes,
            notes,
            summary,
        }
    }

    /// This plan followed by another's changes and notes (containers after the broker, so that
    /// services find their queues), with the summary counted again.
    pub fn then(self, other: Plan) -> Plan {
        let mut changes = self.changes;
        changes.extend(other.changes);
        let mut notes = self.notes;
        notes.extend(other.notes);
        let vhost = self.vhost.or(other.vhost);
        let mut plan = Plan::new(vhost.as_deref(), changes, notes);
        plan.project = self.project.or(other.project);
        plan
    }

    /// The changes at `indices` as one plan and the others as another (notes go with the
    /// second), each keeping this plan's vhost and project.
    pub fn split(self, indices: &std::collections::BTreeSet<usize>) -> (Plan, Plan) {
        let (first, rest): (Vec<_>, Vec<_>) = self
            .changes
            .into_iter()
            .enumerate()
            .partition(|(i, _)| indices.contains(i));
        let unzip = |v: Vec<(usize, Change)>| v.into_iter().map(|(_, c)| c).collect::<Vec<_>>();
        let mut a = Plan::new(self.vhost.as_deref(), unzip(first), Vec::new());
        let mut b = Plan::new(self.vhost.as_deref(), unzip(rest), self.notes);
        a.project = self.project.clone();
        b.project = self.project;
        (a, b)
    }

    /// The queues this plan replaces or deletes: their messages are at stake, so the plan
    /// needs their exact depths.
    pub fn queues_losing_data(&self) -> std::collections::BTreeSet<String> {
        self.changes
            .iter()
            .filter(|c| matches!(c.action, Action::Replace | Action::Delete))
            .filter_map(|c| match &c.before {
                Some(Resource::Queue(q)) => Some(q.name.clone()),
                _ => None,
            })
            .collect()
    }

    /// Whether applying would change anything.
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    /// Whether any change is on the Docker engine (containers, networks, volumes).
    pub fn has_container_changes(&self) -> bool {
        self.changes.iter().any(|c| !c.kind.is_broker())
    }
}

/// The plan's vhost in JSON: a string, empty when the plan covers containers only
/// (`schemas/plan.schema.json`).
mod vhost_or_empty {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(vhost: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(vhost.as_deref().unwrap_or_default())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let vhost = String::deserialize(d)?;
        Ok((!vhost.is_empty()).then_some(vhost))
    }
}

/// For each change, the indices of the deletions that must have succeeded before it runs: the
/// dead-letter queue of a queue, an older god's dead-letter policy for a queue, and the
/// dead-letters exchange's binding for it go only once that queue is gone, god's grouped policy
/// only once every queue it names is (a kept queue never dead-letters into nothing).
pub fn removal_prerequisites(changes: &[Change]) -> Vec<Vec<usize>> {
    let deleted = |kind: ResourceKind| {
        changes
            .iter()
            .enumerate()
            .filter(move |(_, c)| c.action == Action::Delete && c.kind == kind)
    };
    let queue_deletion = |name: &str| {
        deleted(ResourceKind::Queue)
            .find(|(_, c)| c.name() == name)
            .map(|(i, _)| i)
    };
    // Which deleted queue sends its rejected messages where: by its arguments or god's policy.
    let mut sources: Vec<(&str, &str)> = deleted(ResourceKind::Queue)
        .filter_map(|(_, c)| match &c.before {
            Some(Resource::Queue(q)) => Some((q.name.as_str(), q.dead_letter_queue()?)),
            _ => None,
        })
        .collect();
    sources.extend(
        deleted(ResourceKind::Policy).filter_map(|(_, c)| match &c.before {
            Some(Resource::Policy(p)) => p.dead_letter_route(),
            _ => None,
        }),
    );
    sources.extend(
        deleted(ResourceKind::Binding).filter_map(|(_, c)| match &c.before {
            Some(Resource::Binding(b)) => Some((first_death_queue(b)?, b.destination.as_str())),
            _ => None,
        }),
    );
    changes
        .iter()
        .map(|c| match (&c.action, &c.before) {
            (Action::Delete, Some(Resource::Policy(p))) => match group_members(p) {
                Some(members) => members.iter().filter_map(|m| queue_deletion(m)).collect(),
                None => p
                    .dead_letter_route()
                    .and_then(|r| queue_deletion(r.0))
                    .into_iter()
                    .collect(),
            },
            (Action::Delete, Some(Resource::Binding(b))) => first_death_queue(b)
                .and_then(queue_deletion)
                .into_iter()
                .collect(),
            (Action::Delete, Some(Resource::Queue(q))) => sources
                .iter()
                .find(|(source, target)| *target == q.name && *source != q.name)
                .and_then(|(source, _)| queue_deletion(source))
                .into_iter()
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// The changed lines between two property listings, `- old` and `+ new`.
pub fn line_diff(before: &str, after: &str) -> Vec<String> {
    TextDiff::from_lines(before, after)
        .iter_all_changes()
        .filter_map(|change| {
            let sign = match change.tag() {
                ChangeTag::Delete => "-",
                ChangeTag::Insert => "+",
                ChangeTag::Equal => return None,
            };
            Some(format!("{sign} {}", change.value().trim_end()))
        })
        .collect()
}
