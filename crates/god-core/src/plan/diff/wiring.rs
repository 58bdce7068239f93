//! The planner's wiring of god's queues (see [`crate::model::wiring`]): the grouped policies
//! for what the queues' consumers do not declare, the dead-letters exchange and its binding
//! per queue, and an older god's per-queue policies kept, or removed once they are of no use.

use std::collections::BTreeSet;

use super::{Planner, line_diff, policy_lines};
use crate::model::wiring::{
    DEAD_LETTERS_EXCHANGE, QUEUE_POLICY_PREFIX, dead_letters_binding, dead_letters_exchange,
    first_death_queue, group_members, group_policies, with_members,
};
use crate::model::{BindingSpec, DEAD_LETTER_POLICY_PREFIX, PolicySpec, format_arguments};
use crate::plan::{Action, Change, Resource};

impl Planner<'_> {
    /// The changes of god's wiring, once every queue said what it needs: queues god keeps
    /// without wanting them any more keep the wiring they have.
    pub(super) fn wiring_changes(&mut self) {
        self.keep_wiring_of_kept_queues();
        self.group_policy_changes();
        self.own_policy_removals();
        self.dead_letter_binding_changes();
    }

    fn keep_wiring_of_kept_queues(&mut self) {
        let wiring = &self.wiring;
        let kept: Vec<(String, crate::model::Arguments, Option<String>)> = self
            .observed
            .topology
            .queues
            .keys()
            .filter(|q| !self.desired.topology.queues.contains_key(*q))
            .filter(|q| !self.pruned_queues.contains(*q))
            .filter(|q| wiring.group_of(q).is_some())
            .map(|q| {
                let target = wiring.dead_letter_target(q).map(str::to_string);
                (q.clone(), wiring.settings_of(q), target)
            })
            .collect();
        for (queue, settings, target) in kept {
            if let Some(target) = target {
                self.dead_letter_targets.insert(queue.clone(), target);
            }
            self.wired.insert(queue, settings);
        }
    }

    fn group_policy_changes(&mut self) {
        let mut wanted: Vec<PolicySpec> = group_policies(&self.wired)
            .into_iter()
            .map(|p| self.keeping_pruned_members(p))
            .collect();
        // New shards first, then the ones that change, then the stale ones go: a queue moving
        // between shards of its group is named by both for a moment, never by neither.
        wanted.sort_by_key(|p| self.observed.topology.policies.contains_key(&p.name));
        for policy in &wanted {
            match self.observed.topology.policies.get(&policy.name) {
                Some(found) if self.names_no_more(found, policy) => {}
                None => {
                    let cause = format!(
                        "gives {} queue(s) what their consumers do not declare: {}",
                        policy.pattern.matches('|').count() + 1,
                        format_arguments(&policy.definition)
                    );
                    self.create(Resource::Policy(policy.clone()), cause);
                }
                Some(found) if found == policy => {}
                Some(found) => {
                    let mut c = Change::new(
                        Action::Update,
                        &Resource::Policy(policy.clone()),
                        "the queues given these settings changed",
                    );
                    c.diff = line_diff(&policy_lines(found), &policy_lines(policy));
                    c.before = Some(Resource::Policy(found.clone()));
                    c.after = Some(Resource::Policy(policy.clone()));
                    self.push(c);
                }
            }
        }
        let names: BTreeSet<&str> = wanted.iter().map(|p| p.name.as_str()).collect();
        let stale: Vec<PolicySpec> = self
            .observed
            .topology
            .policies
            .values()
            .filter(|p| p.name.starts_with(QUEUE_POLICY_PREFIX) && !names.contains(p.name.as_str()))
            .cloned()
            .collect();
        for policy in stale {
            self.delete(
                Resource::Policy(policy),
                "no queue needs these settings any more",
            );
        }
    }

    /// A grouped policy that still names the queues of its group this plan deletes: they keep
    /// their wiring until they are gone (a deletion refused keeps the queue, wired).
    fn keeping_pruned_members(&self, policy: PolicySpec) -> PolicySpec {
        let Some(found) = self.observed.topology.policies.get(&policy.name) else {
            return policy;
        };
        let mut members: BTreeSet<String> = group_members(&policy)
            .unwrap_or_default()
            .into_iter()
            .collect();
        let pruned = group_members(found)
            .unwrap_or_default()
            .into_iter()
            .filter(|m| self.pruned_queues.contains(m));
        members.extend(pruned);
        with_members(&policy, &members)
    }

    /// Whether a live grouped policy gives what `wanted` gives, naming more only of queues that
    /// no longer exist (left by deletions, harmless): no change for them alone.
    fn names_no_more(&self, found: &PolicySpec, wanted: &PolicySpec) -> bool {
        if found.definition != wanted.definition {
            return false;
        }
        let wanted_members: BTreeSet<String> = group_members(wanted)
            .unwrap_or_default()
            .into_iter()
            .collect();
        let found_members: BTreeSet<String> = group_members(found)
            .unwrap_or_default()
            .into_iter()
            .collect();
        found_members.is_superset(&wanted_members)
            && found_members
                .difference(&wanted_members)
                .all(|m| !self.observed.topology.queues.contains_key(m))
    }

    /// An older god's policy of a queue's own goes when its queue is gone, pruned, replaced,
    /// or desired without needing it; the policies of kept orphans stay.
    fn own_policy_removals(&mut self) {
        let stale: Vec<PolicySpec> = self
            .observed
            .topology
            .policies
            .values()
            .filter(|p| p.name.starts_with(DEAD_LETTER_POLICY_PREFIX))
            .filter(|p| !self.kept_own_policies.contains(&p.name))
            .filter(|p| {
                let queue = &p.name[DEAD_LETTER_POLICY_PREFIX.len()..];
                let exists = self.observed.topology.queues.contains_key(queue);
                let desired = self.desired.topology.queues.contains_key(queue);
                !exists || desired || self.pruned_queues.contains(queue)
            })
            .cloned()
            .collect();
        for policy in stale {
            self.delete(
                Resource::Policy(policy),
                "god's grouped policies and the queue's own arguments give the queue what it needs",
            );
        }
    }

    fn dead_letter_binding_changes(&mut self) {
        let wanted: BTreeSet<BindingSpec> = self
            .dead_letter_targets
            .iter()
            .map(|(queue, target)| dead_letters_binding(queue, target))
            .collect();
        let topology = &self.observed.topology;
        if !wanted.is_empty() && !topology.exchanges.contains_key(DEAD_LETTERS_EXCHANGE) {
            self.create(
                Resource::Exchange(dead_letters_exchange()),
                "leads the dead letters of god's queues to their dead-letter queues",
            );
        }
        let missing: Vec<BindingSpec> = wanted
            .iter()
            .filter(|b| !topology.bindings.contains(*b))
            .cloned()
            .collect();
        let stale: Vec<BindingSpec> = topology
            .bindings
            .iter()
            .filter(|b| first_death_queue(b).is_some() && !wanted.contains(*b))
            .cloned()
            .collect();
        for binding in missing {
            let cause = format!(
                "leads the dead letters of queue {} to {}",
                first_death_queue(&binding).unwrap_or_default(),
                binding.destination
            );
            self.create(Resource::Binding(binding), cause);
        }
        for binding in stale {
            self.delete(
                Resource::Binding(binding),
                "its queue no longer dead-letters there",
            );
        }
    }
}
