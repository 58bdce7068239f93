//! The broker executor. Additions are declared over AMQP, pipelined on several channels
//! ([`super::declare`]), policies first in one definitions document; removals go one by one
//! through the management API, except bindings, which AMQP removes exactly, arguments included.

use serde_json::{Value, json};

use super::Outcome;
use super::declare::{DECLARE_CHANNELS, Declaration, declare_all};
use super::migrate::{self, Evacuated};
use crate::error::GodError;
use crate::model::QueueSpec;
use crate::model::queue_type::QueueType;
use crate::model::{
    DEAD_LETTER_POLICY_PREFIX, DestinationType, Origin, object_record_binding, record_binding,
};
use crate::observe::rabbit::ready_messages;
use crate::plan::{Action, Change, Plan, Resource, removal_prerequisites};
use crate::rabbit::amqp::{AmqpSession, unbind};
use crate::rabbit::management::ManagementApi;

/// Choices made at apply time.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    /// Replace and delete queues even when they hold messages.
    pub allow_data_loss: bool,
    /// Replace queues through a holding queue that keeps their messages and bindings.
    pub migrate: bool,
}

/// Executes plans against one vhost.
pub struct RabbitExecutor<'a> {
    api: &'a ManagementApi,
    amqp: &'a AmqpSession,
    options: ApplyOptions,
    outcomes: Vec<Option<Outcome>>,
    progress: &'a (dyn Fn(u64) + Sync),
    /// Queues replaced with `--migrate` whose messages wait in their holding queue, by change.
    evacuated: Vec<(usize, Evacuated)>,
}

/// One object a change adds, the change it belongs to, and when it is declared: god's record
/// exchange (0), exchanges (1), queues (2), bindings (3); an object's record goes with it, in
/// the same unit (the declarations of a unit go in order on one channel).
struct Addition {
    change: usize,
    phase: usize,
    unit: usize,
    item: Item,
}

/// The units of replicated queues: they are declared on this many channels, one after the
/// other on each (a channel waits for the broker to start a queue's Raft group before it
/// takes the next), so that the broker's `balanced` leader placement sees every leader but
/// those of the few declarations in flight: declared all at once, they all see the same counts
/// and land on one node. On the 3-node cluster, 2,000 quorum queues took 106 s on one channel,
/// 71 s on three, 64 s on four and 70 s on sixteen, their leaders spread evenly each time.
const REPLICATED_UNITS: usize = 4;

/// The phases of declaration, in order.
const PHASES: usize = 4;

/// What is added: an object declared over AMQP, or a policy (in a definitions document).
enum Item {
    Declare(Declaration),
    Policy(Value),
}

impl<'a> RabbitExecutor<'a> {
    /// Prepares an executor; `progress` is told how many changes finished at each step.
    pub fn new(
        api: &'a ManagementApi,
        amqp: &'a AmqpSession,
        options: ApplyOptions,
        progress: &'a (dyn Fn(u64) + Sync),
    ) -> Self {
        Self {
            api,
            amqp,
            options,
            outcomes: Vec::new(),
            progress,
            evacuated: Vec::new(),
        }
    }

    /// Carries out the plan's broker changes in order, stopping at the first failure. Returns
    /// one outcome per broker change (NotAttempted after a failure), None for containers.
    pub async fn execute(mut self, plan: &Plan) -> Vec<Option<Outcome>> {
        self.outcomes = vec![None; plan.changes.len()];
        for (i, c) in plan.changes.iter().enumerate() {
            if !c.kind.is_broker() {
                continue;
            }
            if let Some(why) = &c.blocked {
                self.finish(i, Outcome::Refused(why.clone()));
            }
        }
        // Each step stops the run at its first failure; what did not run stays NotAttempted.
        if self.remove_replaced(plan).await.is_ok()
            && self.put_settings(plan).await.is_ok()
            && self.declare_additions(plan).await.is_ok()
            && self.bring_back().await.is_ok()
        {
            let _ = self.removals(plan).await;
        }
        plan.changes
            .iter()
            .zip(self.outcomes)
            .map(|(c, o)| {
                if !c.kind.is_broker() {
                    None
                } else {
                    Some(o.unwrap_or(Outcome::NotAttempted))
                }
            })
            .collect()
    }

    fn finish(&mut self, index: usize, outcome: Outcome) {
        if self.outcomes[index].is_none() {
            self.outcomes[index] = Some(outcome);
            (self.progress)(1);
        }
    }

    fn pending(&self, index: usize) -> bool {
        self.outcomes[index].is_none()
    }

    /// First half of each replace: delete the old object (a queue only while empty, unless
    /// data loss is allowed).
    async fn remove_replaced(&mut self, plan: &Plan) -> Result<(), ()> {
        for (i, c) in plan.changes.iter().enumerate() {
            if c.action != Action::Replace || !self.pending(i) {
                continue;
            }
            let result = match (&c.before, &c.after) {
                (Some(Resource::Queue(old)), Some(Resource::Queue(new)))
                    if self.options.migrate =>
                {
                    migrate::evacuate(self.api, self.amqp, old, new)
                        .await
                        .map(|evacuated| {
                            self.evacuated.push((i, evacuated));
                            Outcome::Done
                        })
                }
                (Some(Resource::Queue(q)), _) => self.delete_queue(q).await,
                _ => self
                    .api
                    .delete_exchange_forcibly(c.name())
                    .await
                    .map(|()| Outcome::Done),
            };
            match result {
                Ok(Outcome::Done) => {}
                Ok(refused) => self.finish(i, refused),
                Err(e) => return self.fail(i, e),
            }
        }
        Ok(())
    }

    /// Operator policies and vhost limits the plan sets: the management API takes them one by
    /// one (a definitions import does not carry them). Their records go in with the import.
    async fn put_settings(&mut self, plan: &Plan) -> Result<(), ()> {
        for (i, c) in plan.changes.iter().enumerate() {
            if !self.pending(i) || c.action == Action::Delete || c.after == c.before {
                continue;
            }
            let result = match &c.after {
                Some(Resource::OperatorPolicy(p)) => self.api.put_operator_policy(p).await,
                Some(Resource::Limit(l)) => self.api.put_vhost_limit(&l.name, l.value).await,
                _ => continue,
            };
            if let Err(e) = result {
                return self.fail(i, e);
            }
            if c.action == Action::Update {
                self.finish(i, Outcome::Done);
            }
        }
        Ok(())
    }

    /// Last half of each migrating replace, once the queue is declared again: its messages come
    /// back from the holding queue. Until then the replace is not done.
    async fn bring_back(&mut self) -> Result<(), ()> {
        for (i, evacuated) in std::mem::take(&mut self.evacuated) {
            if let Err(e) = migrate::bring_back(self.api, self.amqp, &evacuated).await {
                // The import marked the replace done when the queue came back: it is not.
                let why = format!("{e}; its messages wait in {}", evacuated.holding);
                self.outcomes[i] = Some(Outcome::Failed(why));
                return Err(());
            }
        }
        Ok(())
    }

    fn fail(&mut self, index: usize, error: GodError) -> Result<(), ()> {
        self.finish(index, Outcome::Failed(error.to_string()));
        Err(())
    }

    /// Everything that adds: policies first (one definitions document: queues declared after
    /// them take their settings at once), then god's record exchange and the exchanges, the
    /// queues, the bindings and god's record bindings, each phase declared over AMQP on
    /// [`DECLARE_CHANNELS`] channels. A failure stops the run after its phase; what the phase
    /// did is done.
    async fn declare_additions(&mut self, plan: &Plan) -> Result<(), ()> {
        let mut additions: Vec<Addition> = plan
            .changes
            .iter()
            .enumerate()
            .filter(|(i, _)| self.pending(*i))
            .flat_map(|(i, c)| additions(i, c))
            .collect();
        if let Some(first) = additions.first().map(|a| a.change) {
            let record = Declaration::Exchange(crate::model::record_exchange());
            let record = Addition {
                change: first,
                phase: 0,
                unit: first,
                item: Item::Declare(record),
            };
            additions.insert(0, record);
        }
        let mut remaining = vec![0usize; plan.changes.len()];
        for addition in &additions {
            remaining[addition.change] += 1;
        }
        let policies: Vec<&Addition> = additions
            .iter()
            .filter(|a| matches!(a.item, Item::Policy(_)))
            .collect();
        if !policies.is_empty() {
            if let Err(e) = self.api.import(policy_document(&policies)).await {
                let detail = format!("the import of the policies failed: {e}");
                for a in &policies {
                    self.finish(a.change, Outcome::Unknown(detail.clone()));
                }
                return Err(());
            }
            for a in &policies {
                self.added(a.change, &mut remaining);
            }
        }
        for phase in 0..PHASES {
            let in_phase: Vec<(&Addition, &Declaration)> = additions
                .iter()
                .filter(|a| a.phase == phase)
                .filter_map(|a| match &a.item {
                    Item::Declare(d) => Some((a, d)),
                    Item::Policy(_) => None,
                })
                .collect();
            if in_phase.is_empty() {
                continue;
            }
            let batch: Vec<(usize, &Declaration)> =
                in_phase.iter().map(|(a, d)| (a.unit, *d)).collect();
            let started = std::time::Instant::now();
            let results = declare_all(self.amqp, &batch, DECLARE_CHANNELS).await;
            tracing::debug!(
                "declared phase {phase}: {} objects in {:.2} s",
                batch.len(),
                started.elapsed().as_secs_f64()
            );
            let mut failed = false;
            for ((addition, _), result) in in_phase.iter().zip(results) {
                match result {
                    Ok(()) => self.added(addition.change, &mut remaining),
                    Err(e) => {
                        failed = true;
                        self.finish(addition.change, Outcome::Failed(e));
                    }
                }
            }
            if failed {
                return Err(());
            }
        }
        Ok(())
    }

    /// One object of `change` is in place: the change is done once all of them are.
    fn added(&mut self, change: usize, remaining: &mut [usize]) {
        remaining[change] -= 1;
        if remaining[change] == 0 {
            self.finish(change, Outcome::Done);
        }
    }

    /// Everything that removes, in plan order: bindings, queues and policies (a dead-letter
    /// queue or policy only once its queue is gone), exchanges.
    async fn removals(&mut self, plan: &Plan) -> Result<(), ()> {
        self.unbind(plan).await?;
        let prerequisites = removal_prerequisites(&plan.changes);
        for (i, c) in plan.changes.iter().enumerate() {
            if c.action != Action::Delete || !self.pending(i) {
                continue;
            }
            if let Some(first) = prerequisites[i]
                .iter()
                .copied()
                .find(|first| self.outcomes[*first] != Some(Outcome::Done))
            {
                let why = format!(
                    "kept: it goes only once {} is gone, and that was not deleted",
                    plan.changes[first].id
                );
                self.finish(i, Outcome::Refused(why));
                continue;
            }
            let outcome = match c.before.as_ref() {
                Some(Resource::Policy(p)) => {
                    self.api.delete_policy(&p.name).await.map(|_| Outcome::Done)
                }
                Some(Resource::OperatorPolicy(p)) => self
                    .api
                    .delete_operator_policy(&p.name)
                    .await
                    .map(|_| Outcome::Done),
                Some(Resource::Limit(l)) => self
                    .api
                    .delete_vhost_limit(&l.name)
                    .await
                    .map(|_| Outcome::Done),
                Some(Resource::Queue(q)) => self.delete_queue(q).await,
                Some(Resource::Binding(b)) => self.unbind_one(b).await,
                Some(Resource::Exchange(e)) => {
                    self.api.delete_exchange(&e.name).await.map(|deleted| {
                        refused_unless(deleted, "other objects are still bound to it; it is kept")
                    })
                }
                _ => continue,
            };
            let outcome = match outcome {
                Ok(Outcome::Done) if has_object_record(c) => {
                    self.forget(&c.id).await.map(|()| Outcome::Done)
                }
                other => other,
            };
            match outcome {
                Ok(o) => self.finish(i, o),
                Err(e) => return self.fail(i, e),
            }
        }
        Ok(())
    }

    /// Removes god's records of a deleted policy, operator policy or limit: an object of that
    /// name made later by someone else is not god's.
    async fn forget(&self, id: &str) -> Result<(), GodError> {
        let channel = self.amqp.channel().await?;
        for origin in [Origin::Created, Origin::Adopted] {
            unbind(&channel, &object_record_binding(id, origin))
                .await
                .map_err(|e| {
                    self.amqp
                        .error(e, "removing god's record of a deleted object")
                })?;
        }
        Ok(())
    }

    /// Deletes a queue unless it holds messages now (with `--allow-data-loss`, whatever it
    /// holds). A classic queue is deleted `if-empty` by the broker itself; quorum and stream
    /// queues do not implement that, so god unbinds them first (nothing new is routed to them),
    /// counts their messages exactly, and deletes them only when empty, else binds them again.
    async fn delete_queue(&self, queue: &QueueSpec) -> Result<Outcome, GodError> {
        let name = &queue.name;
        if !self.options.allow_data_loss {
            if queue.queue_type() == QueueType::Classic {
                if self.api.delete_queue(name, true).await? {
                    return Ok(Outcome::Done);
                }
                return Ok(kept(ready_messages(self.amqp, name).await?, ""));
            }
            let bindings = self.api.exchange_bindings_of(name).await?;
            let channel = self.amqp.channel().await?;
            self.amqp
                .set_bindings(
                    &channel,
                    name,
                    &bindings,
                    false,
                    "unbinding a queue before deleting it",
                )
                .await?;
            let messages = ready_messages(self.amqp, name).await?;
            if messages > 0 {
                self.amqp
                    .set_bindings(
                        &channel,
                        name,
                        &bindings,
                        true,
                        "binding a kept queue again",
                    )
                    .await?;
                return Ok(kept(messages, " with its bindings"));
            }
        }
        self.api
            .delete_queue(name, false)
            .await
            .map(|_| Outcome::Done)
    }

    /// Removes one binding over AMQP.
    async fn unbind_one(&self, binding: &crate::model::BindingSpec) -> Result<Outcome, GodError> {
        let channel = self.amqp.channel().await?;
        unbind(&channel, binding)
            .await
            .map(|()| Outcome::Done)
            .map_err(|e| self.amqp.error(e, "removing a binding"))
    }

    /// Removes bindings over AMQP, pipelined on one channel.
    async fn unbind(&mut self, plan: &Plan) -> Result<(), ()> {
        let prerequisites = removal_prerequisites(&plan.changes);
        let targets: Vec<(usize, &crate::model::BindingSpec)> = plan
            .changes
            .iter()
            .enumerate()
            .filter(|(i, c)| c.action == Action::Delete && self.pending(*i))
            // Those that wait for a queue's deletion go with the other removals.
            .filter(|(i, _)| prerequisites[*i].is_empty())
            .filter_map(|(i, c)| match &c.before {
                Some(Resource::Binding(b)) => Some((i, b)),
                _ => None,
            })
            .collect();
        if targets.is_empty() {
            return Ok(());
        }
        let channel = match self.amqp.channel().await {
            Ok(ch) => ch,
            Err(e) => return self.fail(targets[0].0, e),
        };
        let requests = targets.iter().map(|(_, b)| unbind(&channel, b));
        let results = futures::future::join_all(requests).await;
        let mut failed = false;
        for ((i, _), result) in targets.iter().zip(results) {
            match result {
                Ok(()) => self.finish(*i, Outcome::Done),
                Err(e) => {
                    failed = true;
                    self.finish(
                        *i,
                        Outcome::Failed(self.amqp.error(e, "removing a binding").to_string()),
                    );
                }
            }
        }
        if failed { Err(()) } else { Ok(()) }
    }
}

/// A queue kept because it holds messages now.
fn kept(messages: u64, with: &str) -> Outcome {
    let plural = if messages == 1 { "" } else { "s" };
    Outcome::Refused(format!(
        "the queue holds {messages} message{plural} now; it is kept{with}"
    ))
}

fn refused_unless(done: bool, why: &str) -> Outcome {
    if done {
        Outcome::Done
    } else {
        Outcome::Refused(why.to_string())
    }
}

/// The objects a change adds: the object itself, plus god's record binding for queues and
/// exchanges it creates or adopts, and for the objects it records by their identifier.
fn additions(index: usize, change: &Change) -> Vec<Addition> {
    let adds = matches!(
        change.action,
        Action::Create | Action::Replace | Action::Update | Action::Adopt
    );
    let Some(after) = change.after.as_ref().filter(|_| adds) else {
        return Vec::new();
    };
    let origin = match change.action {
        Action::Adopt => Origin::Adopted,
        _ => Origin::Created,
    };
    let declared = change.action != Action::Adopt;
    let phase = match after {
        Resource::Exchange(_) => 1,
        Resource::Queue(_) => 2,
        _ => 3,
    };
    let unit = match after {
        Resource::Queue(q) if q.queue_type() != QueueType::Classic => index % REPLICATED_UNITS,
        _ => index,
    };
    let mut items = Vec::new();
    match after {
        Resource::Exchange(e) => {
            if declared {
                items.push(Item::Declare(Declaration::Exchange(e.clone())));
            }
            if e.name != crate::model::MANAGED_RECORD_EXCHANGE
                && e.name != crate::model::wiring::DEAD_LETTERS_EXCHANGE
            {
                let record = record_binding(&e.name, DestinationType::Exchange, origin);
                items.push(Item::Declare(Declaration::Binding(record)));
            }
        }
        Resource::Queue(q) => {
            if declared {
                items.push(Item::Declare(Declaration::Queue(q.clone())));
            }
            let record = record_binding(&q.name, DestinationType::Queue, origin);
            items.push(Item::Declare(Declaration::Binding(record)));
        }
        Resource::Binding(b) => items.push(Item::Declare(Declaration::Binding(b.clone()))),
        Resource::Policy(p) => items.push(Item::Policy(
            json!({"name": p.name, "pattern": p.pattern, "apply-to": p.apply_to, "priority": p.priority, "definition": p.definition}),
        )),
        Resource::Container(_) | Resource::Network(_) | Resource::Volume(_) => {}
        Resource::OperatorPolicy(_) | Resource::Limit(_) => {}
    }
    if has_object_record(change) && matches!(change.action, Action::Create | Action::Adopt) {
        let record = object_record_binding(&change.id, origin);
        items.push(Item::Declare(Declaration::Binding(record)));
    }
    items
        .into_iter()
        .map(|item| Addition {
            change: index,
            phase,
            unit,
            item,
        })
        .collect()
}

/// Whether god records the change's object with a record of its own: policies (but its own
/// dead-letter policies, which their prefix marks), operator policies and limits.
fn has_object_record(change: &Change) -> bool {
    match change.resource() {
        Some(Resource::Policy(p)) => {
            !p.name.starts_with(DEAD_LETTER_POLICY_PREFIX)
                && !p
                    .name
                    .starts_with(crate::model::wiring::QUEUE_POLICY_PREFIX)
        }
        Some(Resource::OperatorPolicy(_) | Resource::Limit(_)) => true,
        _ => false,
    }
}

/// A definitions document holding the policies of `additions`.
fn policy_document(additions: &[&Addition]) -> Value {
    let policies: Vec<&Value> = additions
        .iter()
        .filter_map(|a| match &a.item {
            Item::Policy(body) => Some(body),
            Item::Declare(_) => None,
        })
        .collect();
    json!({"policies": policies})
}
