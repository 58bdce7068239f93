//! The planner's queues: each desired queue created, adopted, kept with a note, or replaced,
//! and god's policy for it wanted when its declaration does not say what god gives it.

use serde_json::Value;

use super::{Planner, plural, queue_lines};
use crate::model::desired::QueueRole;
use crate::model::queue_type::{LEADER_LOCATOR_ARG, LeaderLocator, QueueType};
use crate::model::wiring::{DEAD_LETTERS_EXCHANGE, argument_form};
use crate::model::{Arguments, DLK_ARG, DLX_ARG, QueueSpec, format_arguments, normalize_arguments};
use crate::plan::{Action, Change, NoteKind, Resource, line_diff};

impl Planner<'_> {
    pub(super) fn queues(&mut self) {
        for (name, wanted) in &self.desired.topology.queues {
            let (wanted, policy) = self.placed(wanted);
            match self.observed.topology.queues.get(name) {
                None => {
                    self.wire(name, &policy);
                    self.create(Resource::Queue(wanted), self.queue_cause(name));
                }
                Some(found) => self.compare_queue(found, &wanted, &policy),
            }
        }
    }

    /// A queue as it is declared on this broker, with what god's policy gives it: in a
    /// cluster, unless the inputs say otherwise, a replicated queue's leader goes to the node
    /// with the fewest leaders (`balanced`), not to the node god happens to be connected to.
    /// For the registry's queues that goes into god's policy, which their consumers need not
    /// declare; a topology file's queue is declared with it. The locator only matters at
    /// declaration, so a queue declared without it is not a difference.
    fn placed(&self, wanted: &QueueSpec) -> (QueueSpec, Arguments) {
        let mut queue = wanted.clone();
        let mut policy = self
            .desired
            .queue_policies
            .get(&queue.name)
            .cloned()
            .unwrap_or_default();
        let unplaced = !queue.arguments.contains_key(LEADER_LOCATOR_ARG)
            && !policy.contains_key(LEADER_LOCATOR_ARG)
            && !self.observed.topology.queues.contains_key(&queue.name);
        if self.observed.cluster_nodes > 1 && queue.queue_type() != QueueType::Classic && unplaced {
            let balanced = Value::from(LeaderLocator::Balanced.as_str());
            match self.desired.owners.contains_key(&queue.name) {
                true => policy.insert(LEADER_LOCATOR_ARG.into(), balanced),
                false => queue.arguments.insert(LEADER_LOCATOR_ARG.into(), balanced),
            };
        }
        (queue, policy)
    }

    /// God's settings for a live queue, keeping the leader placement its live wiring gave it
    /// at declaration: placement only matters then, so it is neither added nor taken away later.
    fn with_kept_placement(&self, queue: &str, settings: &Arguments) -> Arguments {
        let mut settings = settings.clone();
        let live = self.wiring.settings_of(queue).remove(LEADER_LOCATOR_ARG);
        if let Some(locator) = live.filter(|_| !settings.contains_key(LEADER_LOCATOR_ARG)) {
            settings.insert(LEADER_LOCATOR_ARG.into(), locator);
        }
        settings
    }

    /// Gives `queue` god's `settings` through the grouped policies: dead-lettering into a queue
    /// through the default exchange becomes the dead-letters exchange and its binding.
    fn wire(&mut self, queue: &str, settings: &Arguments) {
        if settings.is_empty() {
            return;
        }
        let mut effective = settings.clone();
        let through_default = effective.get(DLX_ARG).and_then(Value::as_str) == Some("");
        if let Some(target) = effective
            .get(DLK_ARG)
            .and_then(Value::as_str)
            .filter(|_| through_default)
            .map(str::to_string)
        {
            effective.remove(DLK_ARG);
            effective.insert(DLX_ARG.into(), Value::from(DEAD_LETTERS_EXCHANGE));
            self.dead_letter_targets.insert(queue.to_string(), target);
        }
        self.wired.insert(queue.to_string(), effective);
    }

    fn queue_cause(&self, queue: &str) -> String {
        match self.desired.owners.get(queue) {
            Some(owner) => match &owner.role {
                QueueRole::Main { .. } => format!("queue of service {}", owner.service),
                QueueRole::DeadLetter { of } => {
                    format!("dead-letter queue of {of} (service {})", owner.service)
                }
                QueueRole::Retry { of, stage: 0 } => format!(
                    "where `god retry` takes the rejected messages of {of} (service {})",
                    owner.service
                ),
                QueueRole::Retry { of, stage } => {
                    format!("retry stage {stage} of {of} (service {})", owner.service)
                }
            },
            None => format!(
                "declared in {}",
                self.desired.source_of(&format!("queue/{queue}"))
            ),
        }
    }

    /// A live queue is the desired one when they agree on everything but what god's policy
    /// gives (the live queue may carry it as arguments of its own: it is kept so, and needs no
    /// policy for what they say) and where its leader went.
    fn compare_queue(&mut self, found: &QueueSpec, wanted: &QueueSpec, policy: &Arguments) {
        let policy = &self.with_kept_placement(&found.name, policy);
        let identity = |q: &QueueSpec| {
            normalize_arguments(&q.identity_arguments())
                .into_iter()
                .filter(|(key, _)| !policy.contains_key(key))
                .collect::<Arguments>()
        };
        let same = found.durable == wanted.durable
            && found.auto_delete == wanted.auto_delete
            && identity(found) == identity(wanted);
        if !same {
            self.wire(&found.name, policy);
            self.replace_queue(found, wanted);
            return;
        }
        // What the queue has already: its own arguments, and an older god's policy of its own
        // for what they do not say (arguments win over policies).
        let arguments = normalize_arguments(&found.arguments);
        let own_policy = self.wiring.own_policy_of(&found.name);
        let mut carried = own_policy
            .map(|p| normalize_arguments(&argument_form(&p.definition)))
            .unwrap_or_default();
        carried.extend(arguments.clone());
        let wanted_policy = normalize_arguments(policy);
        let missing = wanted_policy.iter().any(|(k, _)| !carried.contains_key(k));
        if missing {
            self.wire(&found.name, policy);
        } else if let Some(own) =
            own_policy.filter(|_| wanted_policy.keys().any(|k| !arguments.contains_key(k)))
        {
            self.kept_own_policies.insert(own.name.clone());
        }
        let overriding: Vec<String> = wanted_policy
            .iter()
            .filter_map(|(k, v)| Some((k, carried.get(k).filter(|c| *c != v)?)))
            .map(|(k, c)| format!("{k}={c}"))
            .collect();
        if !overriding.is_empty() {
            self.note(
                NoteKind::Info,
                format!("queue/{}", found.name),
                format!(
                    "it carries {} of its own (arguments, or an older god's policy for it), which win over god's settings ({}): the queue is kept as it is (RabbitMQ cannot change a queue's arguments); its consumers must declare its arguments",
                    overriding.join(", "),
                    format_arguments(&wanted_policy)
                ),
            );
        }
        if !self.observed.managed_queues.contains_key(&found.name) {
            let source = self.desired.source_of(&format!("queue/{}", found.name));
            let cause = if missing {
                format!(
                    "exists and matches {source}; what its consumers do not declare comes from god's policy, no replacement needed"
                )
            } else {
                format!("exists and matches {source}")
            };
            self.adopt(Resource::Queue(found.clone()), cause);
        }
    }

    fn replace_queue(&mut self, found: &QueueSpec, wanted: &QueueSpec) {
        let messages = self.observed.messages(&found.name);
        let source = self.desired.source_of(&format!("queue/{}", found.name));
        let why = format!(
            "its arguments differ from {source}, and RabbitMQ refuses to redeclare a queue with other arguments (406)"
        );
        let before = Resource::Queue(found.clone());
        let after = Resource::Queue(wanted.clone());
        let why = if self.options.migrate {
            format!(
                "{why}; --migrate moves its messages and bindings through {}{} meanwhile",
                found.name,
                crate::plan::MIGRATION_HOLDING_SUFFIX
            )
        } else {
            why
        };
        let mut c = Change::new(Action::Replace, &after, why);
        c.diff = line_diff(&queue_lines(found), &queue_lines(wanted));
        c.messages = Some(messages);
        c.before = Some(before);
        c.after = Some(after);
        if messages > 0 && !self.options.allow_data_loss && !self.options.migrate {
            c.blocked = Some(format!(
                "the queue holds {messages} message{}; replacing it would lose them. Rerun with --migrate to move them through a temporary queue, drain it, or rerun with --allow-data-loss",
                plural(messages)
            ));
        }
        if c.blocked.is_none() {
            self.replaced_queues.insert(found.name.clone());
        }
        self.push(c);
    }
}
