//! The broker executor. Additions go in as partial definitions documents (one request per
//! chunk, the way RabbitMQ's own import works); removals go one by one through the management
//! API, except bindings, which AMQP removes exactly, arguments included.

use serde_json::{Value, json};

use super::Outcome;
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

/// Objects per definitions document. Large enough that request overhead vanishes, small enough
/// that a failure part-way leaves little in doubt.
pub const IMPORT_CHUNK: usize = 2000;

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

/// One object of a definitions document, and the change it belongs to.
struct ImportItem {
    change: usize,
    section: &'static str,
    body: Value,
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
            && self.import_additions(plan).await.is_ok()
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

    /// Everything that adds: exchanges, queues, policies, bindings and god's record bindings,
    /// imported in chunks, the first chunk declaring god's record exchange (an import leaves
    /// an existing exchange as it is). A chunk that fails leaves its changes unknown and stops
    /// the run.
    async fn import_additions(&mut self, plan: &Plan) -> Result<(), ()> {
        let mut items: Vec<ImportItem> = plan
            .changes
            .iter()
            .enumerate()
            .filter(|(i, _)| self.pending(*i))
            .flat_map(|(i, c)| import_items(i, c))
            .collect();
        if let Some(first) = items.first().map(|item| item.change) {
            let record = ImportItem {
                change: first,
                section: "exchanges",
                body: exchange_body(&crate::model::record_exchange()),
            };
            items.insert(0, record);
        }
        let mut remaining = vec![0usize; plan.changes.len()];
        for item in &items {
            remaining[item.change] += 1;
        }
        for chunk in items.chunks(IMPORT_CHUNK) {
            if let Err(e) = self.api.import(document(chunk)).await {
                let detail = format!("the import of this part failed: {e}");
                for item in chunk {
                    self.finish(item.change, Outcome::Unknown(detail.clone()));
                }
                return Err(());
            }
            for item in chunk {
                remaining[item.change] -= 1;
                if remaining[item.change] == 0 {
                    self.finish(item.change, Outcome::Done);
                }
            }
        }
        Ok(())
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

/// The definitions objects a change adds: the object itself, plus god's record binding for
/// queues and exchanges it creates or adopts.
fn import_items(index: usize, change: &Change) -> Vec<ImportItem> {
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
    let item = |section, body| ImportItem {
        change: index,
        section,
        body,
    };
    let mut items = Vec::new();
    match after {
        Resource::Exchange(e) => {
            if change.action != Action::Adopt {
                items.push(item("exchanges", exchange_body(e)));
            }
            if e.name != crate::model::MANAGED_RECORD_EXCHANGE
                && e.name != crate::model::wiring::DEAD_LETTERS_EXCHANGE
            {
                items.push(item("bindings", binding_body(&record_binding(&e.name, DestinationType::Exchange, origin))));
            }
        }
        Resource::Queue(q) => {
            if change.action != Action::Adopt {
                items.push(item("queues", json!({"name": q.name, "durable": q.durable, "auto_delete": q.auto_delete, "arguments": q.arguments})));
            }
            items.push(item("bindings", binding_body(&record_binding(&q.name, DestinationType::Queue, origin))));
        }
        Resource::Binding(b) => items.push(item("bindings", binding_body(b))),
        Resource::Container(_) | Resource::Network(_) | Resource::Volume(_) => {}
        Resource::Policy(p) => items.push(item(
            "policies",
            json!({"name": p.name, "pattern": p.pattern, "apply-to": p.apply_to, "priority": p.priority, "definition": p.definition}),
        )),
        Resource::OperatorPolicy(_) | Resource::Limit(_) => {}
    }
    if has_object_record(change) && matches!(change.action, Action::Create | Action::Adopt) {
        items.push(item(
            "bindings",
            binding_body(&object_record_binding(&change.id, origin)),
        ));
    }
    items
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

fn binding_body(b: &crate::model::BindingSpec) -> Value {
    json!({"source": b.source, "destination": b.destination, "destination_type": b.destination_type.as_str(), "routing_key": b.routing_key, "arguments": b.arguments})
}

/// A partial definitions document holding a chunk of items.
/// An exchange as a definitions document declares it.
fn exchange_body(e: &crate::model::ExchangeSpec) -> Value {
    json!({"name": e.name, "type": e.kind, "durable": e.durable, "auto_delete": e.auto_delete, "internal": e.internal, "arguments": e.arguments})
}

fn document(items: &[ImportItem]) -> Value {
    let mut doc = json!({"exchanges": [], "queues": [], "bindings": [], "policies": []});
    for item in items {
        if let Some(list) = doc[item.section].as_array_mut() {
            list.push(item.body.clone());
        }
    }
    doc
}
