//! A plan: the value that says what `apply` will do. It is computed by a pure function
//! ([`diff::plan`]), printed by [`render`], saved and checked by [`saved`].

pub mod containers;
pub mod diff;
pub mod render;
pub mod saved;

use serde::{Deserialize, Serialize};
use similar::{ChangeTag, TextDiff};

use crate::model::containers::ContainerSpec;
use crate::model::{BindingSpec, ExchangeSpec, PolicySpec, QueueSpec};

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

/// A broker object, tagged with its kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Resource {
    /// An exchange.
    Exchange(ExchangeSpec),
    /// A queue.
    Queue(QueueSpec),
    /// A binding.
    Binding(BindingSpec),
    /// A policy.
    Policy(PolicySpec),
    /// A container.
    Container(Box<ContainerSpec>),
}

impl Resource {
    /// The kind as a word.
    pub fn kind(&self) -> &'static str {
        match self {
            Resource::Exchange(_) => "exchange",
            Resource::Queue(_) => "queue",
            Resource::Binding(_) => "binding",
            Resource::Policy(_) => "policy",
            Resource::Container(_) => "container",
        }
    }

    /// A stable identifier: `kind/name`, for bindings `binding/source/type/destination/key`.
    pub fn id(&self) -> String {
        match self {
            Resource::Exchange(e) => format!("exchange/{}", e.name),
            Resource::Queue(q) => format!("queue/{}", q.name),
            Resource::Policy(p) => format!("policy/{}", p.name),
            Resource::Binding(b) => binding_id(b),
            Resource::Container(c) => format!("container/{}", c.name),
        }
    }
}

/// The identifier of a binding (its arguments are appended when it has any).
pub fn binding_id(b: &BindingSpec) -> String {
    let kind = match b.destination_type {
        crate::model::DestinationType::Queue => "queue",
        crate::model::DestinationType::Exchange => "exchange",
    };
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
    /// The kind of object: exchange, queue, binding, policy.
    pub kind: String,
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
            kind: resource.kind().to_string(),
            id: resource.id(),
            cause: cause.into(),
            before: None,
            after: None,
            messages: None,
            diff: Vec::new(),
            blocked: None,
        }
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
    /// Objects created (and re-created by a replace).
    pub add: usize,
    /// Objects changed in place or adopted.
    pub change: usize,
    /// Objects deleted (and deleted by a replace).
    pub destroy: usize,
}

/// A plan for one vhost and one container project: the changes in the order they will be
/// applied, and the notes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Format version of this document.
    pub format_version: u32,
    /// The vhost the plan is for.
    pub vhost: String,
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
    pub fn new(vhost: &str, changes: Vec<Change>, notes: Vec<Note>) -> Self {
        let mut summary = Summary::default();
        for c in &changes {
            match c.action {
                Action::Create => summary.add += 1,
                Action::Adopt | Action::Update => summary.change += 1,
                Action::Delete => summary.destroy += 1,
                Action::Replace => {
                    summary.add += 1;
                    summary.destroy += 1;
                }
            }
        }
        Self {
            format_version: PLAN_FORMAT_VERSION,
            vhost: vhost.to_string(),
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
        let mut plan = Plan::new(&self.vhost, changes, notes);
        plan.project = self.project.or(other.project);
        plan
    }

    /// Whether a change replaces or deletes a queue (the plan then needs queue depths).
    pub fn touches_queue_data(&self) -> bool {
        self.changes
            .iter()
            .any(|c| c.kind == "queue" && matches!(c.action, Action::Replace | Action::Delete))
    }

    /// Whether applying would change anything.
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }
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
