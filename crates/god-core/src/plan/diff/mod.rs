//! The planner: a pure function from (desired, observed) to a [`Plan`]. No I/O happens here.

use std::collections::{BTreeMap, BTreeSet};

use super::{Action, Change, Note, NoteKind, Plan, Resource, ResourceKind, line_diff};
use crate::model::desired::{DesiredState, Lifecycle, RETRY_EXCHANGE};
use crate::model::queue_type::QueueType;
use crate::model::wiring::{QUEUE_POLICY_PREFIX, Wiring};
use crate::model::{
    Arguments, BindingSpec, DEAD_LETTER_POLICY_PREFIX, ExchangeSpec, MANAGED_RECORD_EXCHANGE,
    ObservedState, Origin, PolicySpec, QueueSpec, Topology, format_arguments, record_exchange,
};

mod queues;
mod wiring;

/// Choices that change what the plan contains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Delete objects god created that the inputs no longer want.
    pub prune: bool,
    /// Allow changes that lose messages (replacing or deleting queues that hold some).
    pub allow_data_loss: bool,
    /// Replace queues that hold messages by moving the messages through a temporary queue.
    pub migrate: bool,
}

/// Computes the changes that take the observed vhost to the desired state.
pub fn plan(desired: &DesiredState, observed: &ObservedState, options: PlanOptions) -> Plan {
    let mut planner = Planner {
        desired,
        observed,
        options,
        changes: Vec::new(),
        notes: Vec::new(),
        replaced_queues: BTreeSet::new(),
        wiring: observed.topology.wiring(),
        wired: BTreeMap::new(),
        dead_letter_targets: BTreeMap::new(),
        kept_own_policies: BTreeSet::new(),
        pruned_queues: BTreeSet::new(),
    };
    planner.exchanges();
    planner.queues();
    planner.bindings();
    planner.orphans();
    planner.keep_dead_letter_queues_of_kept_queues();
    planner.wiring_changes();
    planner.declared_settings();
    planner.inactive_services();
    planner.interrupted_migrations();
    planner.record_exchange();
    let Planner {
        mut changes,
        mut notes,
        ..
    } = planner;
    changes.sort_by_key(|c| execution_phase(c, desired));
    let changes = withhold_unavailable(after_prerequisites(changes), observed);
    notes.extend(delivery_limit_note(&changes, desired, observed));
    notes.extend(observed.unavailable.iter().map(|(queue, why)| Note {
        kind: NoteKind::Unavailable,
        id: format!("queue/{queue}"),
        message: why.clone(),
    }));
    Plan::new(Some(&observed.vhost), changes, notes)
}

/// What declaring services' quorum queues without a delivery limit means on the live broker's
/// version: unlimited redeliveries on 3.x, 20 on 4.0 and later (then the message is
/// dead-lettered). Dead-letter queues are left out: nothing redelivers from them in a loop.
fn delivery_limit_note(
    changes: &[Change],
    desired: &DesiredState,
    observed: &ObservedState,
) -> Option<Note> {
    let version = observed.broker_version.as_deref()?;
    let unlimited: Vec<&str> = changes
        .iter()
        .filter(|c| matches!(c.action, Action::Create | Action::Replace))
        .filter_map(|c| match &c.after {
            Some(Resource::Queue(q))
                if q.queue_type() == QueueType::Quorum
                    && !q.arguments.contains_key("x-delivery-limit")
                    && !desired
                        .queue_policies
                        .get(&q.name)
                        .is_some_and(|p| p.contains_key("x-delivery-limit"))
                    && !desired.is_dead_letter_queue(&q.name) =>
            {
                Some(q.name.as_str())
            }
            _ => None,
        })
        .collect();
    if unlimited.is_empty() {
        return None;
    }
    let major: u32 = version.split('.').next()?.parse().ok()?;
    let meaning = if major >= 4 {
        "RabbitMQ 4.0 and later limit redeliveries to 20, then dead-letter the message"
    } else {
        "a message that keeps failing is redelivered forever (RabbitMQ 4.0 and later stop at 20)"
    };
    Some(Note {
        kind: NoteKind::Info,
        id: "delivery_limit".into(),
        message: format!(
            "{} quorum queue(s) declared without a delivery limit ({}): on RabbitMQ {version}, this broker, {meaning}; set `delivery_limit` (registry.yaml or topology/) to choose",
            unlimited.len(),
            first_names(&unlimited)
        ),
    })
}

/// Up to three names, then how many more.
fn first_names(names: &[&str]) -> String {
    let shown = names.iter().take(3).copied().collect::<Vec<_>>().join(", ");
    match names.len() {
        n if n > 3 => format!("{shown} and {} more", n - 3),
        _ => shown,
    }
}

/// The changes without what a node that is down hides: the broker lists an unavailable queue
/// without its bindings and god's records of it, so adopting it or binding it again would
/// only answer that absence, and are left out. A change the inputs really ask of it (a
/// replacement, a deletion), or a removal that waits for one, stays in the plan, refused until
/// the node is back.
fn withhold_unavailable(changes: Vec<Change>, observed: &ObservedState) -> Vec<Change> {
    if observed.unavailable.is_empty() {
        return changes;
    }
    let unavailable_queue = |c: &Change| {
        (matches!(c.kind, ResourceKind::Queue | ResourceKind::Binding)
            && observed.unavailable.contains_key(c.name()))
        .then(|| c.name().to_string())
    };
    let prerequisites = super::removal_prerequisites(&changes);
    let waits_for: Vec<Option<String>> = changes
        .iter()
        .zip(&prerequisites)
        .map(|(c, firsts)| {
            unavailable_queue(c)
                .or_else(|| firsts.iter().find_map(|i| unavailable_queue(&changes[*i])))
        })
        .collect();
    changes
        .into_iter()
        .zip(waits_for)
        .filter_map(|(mut c, queue)| {
            let Some(queue) = queue else {
                return Some(c);
            };
            if matches!(c.action, Action::Adopt | Action::Create) && c.name() == queue {
                return None;
            }
            c.blocked = Some(format!(
                "queue {queue} is unavailable ({}): this change waits until it is back",
                observed.unavailable[&queue]
            ));
            Some(c)
        })
        .collect()
}

/// Order of execution: additions first (exchanges, dead-letter queues, queues, policies,
/// bindings, adoptions), then removals (bindings, policies, queues, exchanges), so that no
/// routing key is ever unbound while its replacement is pending.
fn execution_phase(change: &Change, desired: &DesiredState) -> u8 {
    use ResourceKind::{Binding, Exchange, Limit, OperatorPolicy, Policy, Queue};
    let own_policy = change.name().starts_with(DEAD_LETTER_POLICY_PREFIX)
        || change.name().starts_with(QUEUE_POLICY_PREFIX);
    match (change.action, change.kind) {
        (Action::Create | Action::Replace, Exchange) => 0,
        // God's policy for a queue is in place when the queue is declared: its leader is
        // placed by it, and no message meets the queue without its dead-lettering.
        (Action::Create | Action::Update, Policy) if own_policy => 1,
        (Action::Replace, Queue) => 2,
        (Action::Create, Queue) if desired.is_dead_letter_queue(change.name()) => 3,
        (Action::Create, Queue) => 4,
        (Action::Create | Action::Update, Policy | OperatorPolicy | Limit) => 5,
        (Action::Create, Binding) => 6,
        (Action::Adopt, _) => 7,
        (Action::Delete, Binding) => 8,
        (Action::Delete, Policy)
            if own_policy && change.name().starts_with(QUEUE_POLICY_PREFIX) =>
        {
            11
        }
        (Action::Delete, Policy | OperatorPolicy | Limit) => 9,
        (Action::Delete, Queue) => 10,
        (Action::Delete, Exchange) => 12,
        _ => 13,
    }
}

/// The changes with each removal moved after the removal it waits for (see
/// [`super::removal_prerequisites`]), the order otherwise kept.
fn after_prerequisites(changes: Vec<Change>) -> Vec<Change> {
    let prerequisites = super::removal_prerequisites(&changes);
    let mut placed = vec![false; changes.len()];
    let mut order = Vec::with_capacity(changes.len());
    fn place(i: usize, prerequisites: &[Vec<usize>], placed: &mut [bool], order: &mut Vec<usize>) {
        if placed[i] {
            return;
        }
        placed[i] = true;
        for first in &prerequisites[i] {
            place(*first, prerequisites, placed, order);
        }
        order.push(i);
    }
    for i in 0..changes.len() {
        place(i, &prerequisites, &mut placed, &mut order);
    }
    let mut slots: Vec<Option<Change>> = changes.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

struct Planner<'a> {
    desired: &'a DesiredState,
    observed: &'a ObservedState,
    options: PlanOptions,
    changes: Vec<Change>,
    notes: Vec<Note>,
    replaced_queues: BTreeSet<String>,
    /// God's wiring of the live queues.
    wiring: Wiring<'a>,
    /// What god's grouped policies give each queue that needs them (argument form).
    wired: BTreeMap<String, Arguments>,
    /// Where the dead-letters exchange leads each queue's dead letters.
    dead_letter_targets: BTreeMap<String, String>,
    /// An older god's policies of a queue's own that still give it what it needs.
    kept_own_policies: BTreeSet<String>,
    pruned_queues: BTreeSet<String>,
}

impl Planner<'_> {
    fn push(&mut self, change: Change) {
        self.changes.push(change);
    }

    fn note(&mut self, kind: NoteKind, id: impl Into<String>, message: impl Into<String>) {
        self.notes.push(Note {
            kind,
            id: id.into(),
            message: message.into(),
        });
    }

    /// God's record exchange is its bookkeeping, not one of the inputs' objects: the executor
    /// declares it with the first change that adds (a declaration that changes nothing when it
    /// exists), so the plan only says so.
    fn record_exchange(&mut self) {
        let wanted = record_exchange();
        match self.observed.topology.exchanges.get(&wanted.name) {
            None if self.changes.iter().all(|c| c.action == Action::Delete) => {}
            None => self.note(
                NoteKind::Info,
                format!("exchange/{MANAGED_RECORD_EXCHANGE}"),
                "god declares this internal exchange with the first change: its bindings record what god manages",
            ),
            Some(found) if *found != wanted => self.note(
                NoteKind::Info,
                format!("exchange/{MANAGED_RECORD_EXCHANGE}"),
                "exists with other properties than god's record exchange; god leaves it as it is",
            ),
            Some(_) => {}
        }
    }

    fn exchanges(&mut self) {
        for (name, wanted) in &self.desired.topology.exchanges {
            let managed = self.observed.managed_exchanges.contains_key(name);
            let id = format!("exchange/{name}");
            match self.observed.topology.exchanges.get(name) {
                None if *name == self.desired.exchange => self.create(
                    Resource::Exchange(wanted.clone()),
                    "the bus exchange of registry.yaml",
                ),
                None if name == RETRY_EXCHANGE => self.create(
                    Resource::Exchange(wanted.clone()),
                    "expired retry stages send messages back to their queue through it (retry in registry.yaml)",
                ),
                None => self.create(
                    Resource::Exchange(wanted.clone()),
                    format!("declared in {}", self.desired.source_of(&id)),
                ),
                Some(found) if found == wanted => {
                    if !managed {
                        self.adopt(
                            Resource::Exchange(found.clone()),
                            format!("exists and matches {}", self.desired.source_of(&id)),
                        );
                    }
                }
                Some(found) => self.replace_exchange(found, wanted),
            }
        }
    }

    fn replace_exchange(&mut self, found: &ExchangeSpec, wanted: &ExchangeSpec) {
        let bound = self
            .observed
            .topology
            .bindings
            .iter()
            .filter(|b| b.source == found.name || b.destination == found.name)
            .count();
        let before = Resource::Exchange(found.clone());
        let after = Resource::Exchange(wanted.clone());
        let source = self.desired.source_of(&after.id());
        let mut c = Change::new(
            Action::Replace,
            &after,
            format!(
                "its properties differ from {source}; an exchange cannot be redeclared with other properties"
            ),
        );
        c.diff = line_diff(&exchange_lines(found), &exchange_lines(wanted));
        c.before = Some(before);
        c.after = Some(after);
        if !self.options.allow_data_loss {
            c.blocked = Some(format!(
                "replacing an exchange drops its {bound} bindings (other applications' included) and events published meanwhile; rerun with --allow-data-loss"
            ));
        }
        self.push(c);
    }

    fn bindings(&mut self) {
        let desired = &self.desired.topology.bindings;
        let observed = &self.observed.topology.bindings;
        for b in desired {
            if !observed.contains(b) || self.replaced_queues.contains(&b.destination) {
                let cause = match self.desired.owners.get(&b.destination) {
                    Some(o) if b.source == RETRY_EXCHANGE => {
                        format!(
                            "brings messages back from the retry stages (service {})",
                            o.service
                        )
                    }
                    Some(o) => format!("routing key {:?} of service {}", b.routing_key, o.service),
                    None => format!(
                        "declared in {}",
                        self.desired.source_of(&super::binding_id(b))
                    ),
                };
                self.create(Resource::Binding(b.clone()), cause);
            }
        }
        for b in observed {
            if self.is_stale_binding(b) {
                let cause = match self.desired.owners.get(&b.destination) {
                    Some(o) => format!(
                        "routing key {:?} is no longer in registry.yaml for service {}",
                        b.routing_key, o.service
                    ),
                    None => NO_LONGER_DECLARED.to_string(),
                };
                self.delete(Resource::Binding(b.clone()), cause);
            }
        }
    }

    /// A binding god removes: between two objects the inputs declare (an exchange and a queue
    /// or another exchange), that the inputs do not list. Bindings to or from anything else are
    /// not god's.
    fn is_stale_binding(&self, b: &BindingSpec) -> bool {
        let topology = &self.desired.topology;
        let declared_destination = match b.destination_type {
            crate::model::DestinationType::Queue => {
                topology.queues.contains_key(&b.destination)
                    && !self.replaced_queues.contains(&b.destination)
            }
            crate::model::DestinationType::Exchange => {
                topology.exchanges.contains_key(&b.destination)
            }
        };
        topology.exchanges.contains_key(&b.source)
            && declared_destination
            && !topology.bindings.contains(b)
    }

    fn orphans(&mut self) {
        let deprecated = self.deprecated_queues();
        for (name, origin) in &self.observed.managed_queues {
            if self.desired.topology.queues.contains_key(name)
                || !self.observed.topology.queues.contains_key(name)
            {
                continue;
            }
            let why = match deprecated.get(name) {
                Some(service) => format!("service {service} is deprecated"),
                None => "no active service in registry.yaml, and no file of topology/, declares it"
                    .to_string(),
            };
            self.orphan_queue(name, *origin, &why);
        }
        for (name, origin) in &self.observed.managed_exchanges {
            if self.desired.topology.exchanges.contains_key(name)
                || !self.observed.topology.exchanges.contains_key(name)
            {
                continue;
            }
            if self.options.prune && *origin == Origin::Created {
                let found = self.observed.topology.exchanges[name].clone();
                self.unbind_from_managed(name);
                self.delete(
                    Resource::Exchange(found),
                    format!("{NO_LONGER_DECLARED} (--prune)"),
                );
            } else {
                self.orphan_note(&format!("exchange/{name}"), *origin, NO_LONGER_DECLARED);
            }
        }
    }

    /// Before a pruned exchange goes, its bindings to objects god manages go: god made them.
    /// Bindings to anything else stay, and keep the exchange (it is deleted only when unused).
    fn unbind_from_managed(&mut self, exchange: &str) {
        let bindings: Vec<BindingSpec> = self
            .observed
            .topology
            .bindings
            .iter()
            .filter(|b| b.source == exchange)
            .filter(|b| match b.destination_type {
                crate::model::DestinationType::Queue => {
                    self.observed.managed_queues.contains_key(&b.destination)
                }
                crate::model::DestinationType::Exchange => {
                    self.observed.managed_exchanges.contains_key(&b.destination)
                }
            })
            .cloned()
            .collect();
        for b in bindings {
            self.delete(
                Resource::Binding(b),
                format!("its exchange {exchange} is pruned"),
            );
        }
    }

    fn orphan_queue(&mut self, name: &str, origin: Origin, why: &str) {
        if !(self.options.prune && origin == Origin::Created) {
            self.orphan_note(&format!("queue/{name}"), origin, why);
            return;
        }
        let messages = self.observed.messages(name);
        let found = self.observed.topology.queues[name].clone();
        let blocked = (messages > 0 && !self.options.allow_data_loss).then(|| {
            format!(
                "the queue holds {messages} message{}; it is kept. Drain it, or rerun with --allow-data-loss",
                plural(messages)
            )
        });
        if blocked.is_none() {
            self.pruned_queues.insert(name.to_string());
        }
        let mut c = Change::new(
            Action::Delete,
            &Resource::Queue(found.clone()),
            format!("{why} (--prune)"),
        );
        c.before = Some(Resource::Queue(found));
        c.messages = Some(messages);
        c.blocked = blocked;
        self.push(c);
    }

    /// A queue that stays keeps the queue it dead-letters into: that queue's deletion is refused
    /// (it goes in the apply that deletes its source, after it), so that no kept queue
    /// dead-letters into nothing.
    fn keep_dead_letter_queues_of_kept_queues(&mut self) {
        loop {
            let deleted: BTreeSet<String> = self
                .changes
                .iter()
                .filter(|c| c.action == Action::Delete && c.kind == ResourceKind::Queue)
                .filter(|c| c.blocked.is_none())
                .map(|c| c.name().to_string())
                .collect();
            let kept_source = self
                .observed
                .topology
                .queues
                .values()
                .filter(|q| !deleted.contains(&q.name) && !self.replaced_queues.contains(&q.name))
                .filter_map(|q| Some((q.name.as_str(), self.wiring.dead_letter_queue_of(q)?)))
                .find(|(_, target)| deleted.contains(*target));
            let Some((source, target)) = kept_source else {
                return;
            };
            let why = format!(
                "queue {source} dead-letters into it and is kept; it goes with {source}, after it"
            );
            let target = target.to_string();
            if let Some(change) = self.changes.iter_mut().find(|c| {
                c.action == Action::Delete && c.kind == ResourceKind::Queue && c.name() == target
            }) {
                change.blocked = Some(why);
            }
            self.pruned_queues.remove(&target);
        }
    }

    fn orphan_note(&mut self, id: &str, origin: Origin, why: &str) {
        let message = match (origin, self.options.prune) {
            (Origin::Created, _) => format!("{why}; kept (god created it: --prune deletes it)"),
            (Origin::Adopted, false) => {
                format!("{why}; kept (adopted by god, which never deletes what it did not create)")
            }
            (Origin::Adopted, true) => format!(
                "{why}; kept even with --prune: god adopted it and never deletes what it did not create"
            ),
        };
        self.note(NoteKind::Orphan, id, message);
    }

    fn deprecated_queues(&self) -> BTreeMap<String, String> {
        self.desired
            .inactive
            .iter()
            .filter(|s| s.status == Lifecycle::Deprecated)
            .flat_map(|s| s.queues.iter().map(|q| (q.clone(), s.service.clone())))
            .collect()
    }

    /// The policies, operator policies and limits the inputs declare: created, adopted when
    /// they exist (and set to the inputs' definition), updated, and pruned like queues: only
    /// what god created, only with `--prune`.
    fn declared_settings(&mut self) {
        let wanted: Vec<Resource> = settings(&self.desired.topology).collect();
        let found: BTreeMap<String, Resource> = settings(&self.observed.topology)
            .map(|r| (r.id(), r))
            .collect();
        for want in &wanted {
            self.declared_setting(want, found.get(&want.id()));
        }
        let wanted_ids: BTreeSet<String> = wanted.iter().map(Resource::id).collect();
        for (id, origin) in &self.observed.managed_objects {
            let Some(found) = found.get(id).filter(|_| !wanted_ids.contains(id)) else {
                continue;
            };
            if self.options.prune && *origin == Origin::Created {
                self.delete(found.clone(), format!("{NO_LONGER_DECLARED} (--prune)"));
            } else {
                self.orphan_note(id, *origin, NO_LONGER_DECLARED);
            }
        }
    }

    fn declared_setting(&mut self, want: &Resource, found: Option<&Resource>) {
        let id = want.id();
        let source = self.desired.source_of(&id).to_string();
        let managed = self.observed.managed_objects.contains_key(&id);
        match found {
            None => self.create(want.clone(), format!("declared in {source}")),
            Some(found) if found == want => {
                if !managed {
                    self.adopt(found.clone(), format!("exists and matches {source}"));
                }
            }
            Some(found) => {
                // An object god does not manage yet is adopted with the inputs' definition:
                // `--prune` never deletes it.
                let (action, cause) = if managed {
                    (
                        Action::Update,
                        format!("its definition differs from {source}"),
                    )
                } else {
                    (
                        Action::Adopt,
                        format!(
                            "exists with another definition; god adopts it and sets the one of {source}"
                        ),
                    )
                };
                let mut c = Change::new(action, want, cause);
                c.diff = line_diff(&setting_lines(found), &setting_lines(want));
                c.before = Some(found.clone());
                c.after = Some(want.clone());
                self.push(c);
            }
        }
    }

    /// Holding queues a migration left behind (god stopped part-way): their messages wait
    /// there, and nothing moves them back by itself.
    fn interrupted_migrations(&mut self) {
        let left: Vec<(String, String)> = self
            .observed
            .topology
            .queues
            .keys()
            .filter_map(|name| {
                let queue = name.strip_suffix(super::MIGRATION_HOLDING_SUFFIX)?;
                Some((name.clone(), queue.to_string()))
            })
            .collect();
        for (holding, queue) in left {
            self.note(
                NoteKind::Info,
                format!("queue/{holding}"),
                format!(
                    "a migration of {queue} stopped part-way: its messages may wait here. Move them back to {queue} (a shovel, or `rabbitmqadmin` get and publish), then delete {holding}"
                ),
            );
        }
    }

    fn inactive_services(&mut self) {
        for service in &self.desired.inactive {
            let existing: Vec<&str> = service
                .queues
                .iter()
                .filter(|q| self.observed.topology.queues.contains_key(*q))
                .map(String::as_str)
                .collect();
            let (kind, message) = match service.status {
                Lifecycle::Planned => (
                    NoteKind::Skipped,
                    "planned: nothing is created for it".to_string(),
                ),
                _ if existing.is_empty() => (
                    NoteKind::Deprecated,
                    "deprecated: its queues are not created".to_string(),
                ),
                _ => (
                    NoteKind::Deprecated,
                    format!(
                        "deprecated: not created where missing; existing queues are kept ({})",
                        existing.join(", ")
                    ),
                ),
            };
            self.note(kind, format!("service/{}", service.service), message);
        }
    }

    fn create(&mut self, resource: Resource, cause: impl Into<String>) {
        let mut c = Change::new(Action::Create, &resource, cause);
        c.after = Some(resource);
        self.push(c);
    }

    fn adopt(&mut self, resource: Resource, cause: impl Into<String>) {
        let mut c = Change::new(Action::Adopt, &resource, cause);
        c.before = Some(resource.clone());
        c.after = Some(resource);
        self.push(c);
    }

    fn delete(&mut self, resource: Resource, cause: impl Into<String>) {
        let mut c = Change::new(Action::Delete, &resource, cause);
        c.before = Some(resource);
        self.push(c);
    }
}

/// Why an object god manages is an orphan.
const NO_LONGER_DECLARED: &str = "no longer in registry.yaml or topology/";

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn exchange_lines(e: &ExchangeSpec) -> String {
    format!(
        "type: {}\ndurable: {}\nauto_delete: {}\ninternal: {}\n{}",
        e.kind,
        e.durable,
        e.auto_delete,
        e.internal,
        argument_lines(&e.arguments)
    )
}

fn queue_lines(q: &QueueSpec) -> String {
    format!(
        "durable: {}\nauto_delete: {}\n{}",
        q.durable,
        q.auto_delete,
        argument_lines(&q.arguments)
    )
}

/// The policies, operator policies and vhost limits of a topology, as resources.
fn settings(topology: &Topology) -> impl Iterator<Item = Resource> + '_ {
    let policies = topology.policies.values().cloned().map(Resource::Policy);
    let operator_policies = topology
        .operator_policies
        .values()
        .cloned()
        .map(Resource::OperatorPolicy);
    policies
        .chain(operator_policies)
        .chain(topology.limits.iter().map(limit))
}

/// A vhost limit as a resource.
fn limit((name, value): (&String, &i64)) -> Resource {
    Resource::Limit(crate::model::LimitSpec {
        name: name.clone(),
        value: *value,
    })
}

/// The property listing of a policy, operator policy or limit.
fn setting_lines(resource: &Resource) -> String {
    match resource {
        Resource::Policy(p) | Resource::OperatorPolicy(p) => policy_lines(p),
        Resource::Limit(l) => format!("value: {}\n", l.value),
        _ => String::new(),
    }
}

fn policy_lines(p: &PolicySpec) -> String {
    format!(
        "pattern: {}\napply-to: {}\npriority: {}\ndefinition: {}\n",
        p.pattern,
        p.apply_to,
        p.priority,
        format_arguments(&p.definition)
    )
}

fn argument_lines(arguments: &crate::model::Arguments) -> String {
    arguments
        .iter()
        .map(|(k, v)| format!("arguments.{k}: {v}\n"))
        .collect()
}
