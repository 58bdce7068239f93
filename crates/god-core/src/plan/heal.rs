//! What `god watch --mode heal` may carry out of a plan ([`heal`]): the changes that restore
//! without destroying (create, adopt, update in place, start or restart a container); deletions
//! only with `--prune`, replacements only with `--allow-data-loss` or `--migrate`. The rest is
//! withheld and reported.

use std::collections::BTreeSet;

use super::diff::PlanOptions;
use super::{Action, Change, Plan};

/// A plan divided for healing.
#[derive(Debug, Clone, PartialEq)]
pub struct HealPlan {
    /// The changes heal carries out, in the plan's order.
    pub safe: Plan,
    /// The changes it leaves alone, each with why.
    pub withheld: Vec<Withheld>,
}

/// A change heal does not carry out.
#[derive(Debug, Clone, PartialEq)]
pub struct Withheld {
    /// The change.
    pub change: Change,
    /// Why it is left alone, and which flag would allow it.
    pub reason: &'static str,
}

/// Why heal leaves a change alone, when it does: `None` when `options` allow it.
pub fn withheld_reason(change: &Change, options: PlanOptions) -> Option<&'static str> {
    match change.action {
        Action::Create | Action::Adopt | Action::Update => None,
        Action::Delete if options.prune => None,
        Action::Delete => Some("heal never deletes without --prune"),
        Action::Replace if options.allow_data_loss || options.migrate => None,
        Action::Replace => Some("heal never replaces without --allow-data-loss or --migrate"),
    }
}

/// Divides `plan` into what heal carries out and what it withholds.
pub fn heal(plan: Plan, options: PlanOptions) -> HealPlan {
    let safe_indices: BTreeSet<usize> = plan
        .changes
        .iter()
        .enumerate()
        .filter(|(_, c)| withheld_reason(c, options).is_none())
        .map(|(i, _)| i)
        .collect();
    let (safe, rest) = plan.split(&safe_indices);
    let withheld = rest
        .changes
        .into_iter()
        .map(|change| {
            let reason = withheld_reason(&change, options).unwrap_or_default();
            Withheld { change, reason }
        })
        .collect();
    HealPlan { safe, withheld }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::QueueSpec;
    use crate::plan::Resource;

    fn change(action: Action, name: &str) -> Change {
        let queue = Resource::Queue(QueueSpec {
            name: name.to_string(),
            durable: true,
            auto_delete: false,
            arguments: Default::default(),
        });
        Change::new(action, &queue, "test")
    }

    fn plan_of(actions: &[Action]) -> Plan {
        let changes = actions
            .iter()
            .enumerate()
            .map(|(i, a)| change(*a, &format!("q{i}")))
            .collect();
        Plan::new(Some("/"), changes, Vec::new())
    }

    fn ids(plan: &Plan) -> Vec<&str> {
        plan.changes.iter().map(|c| c.id.as_str()).collect()
    }

    const ALL: [Action; 5] = [
        Action::Create,
        Action::Adopt,
        Action::Update,
        Action::Replace,
        Action::Delete,
    ];

    #[test]
    fn without_flags_heal_restores_and_withholds_deletions_and_replacements() {
        let divided = heal(plan_of(&ALL), PlanOptions::default());
        assert_eq!(ids(&divided.safe), ["queue/q0", "queue/q1", "queue/q2"]);
        let withheld: Vec<_> = divided
            .withheld
            .iter()
            .map(|w| (w.change.id.as_str(), w.reason))
            .collect();
        assert_eq!(
            withheld,
            [
                (
                    "queue/q3",
                    "heal never replaces without --allow-data-loss or --migrate"
                ),
                ("queue/q4", "heal never deletes without --prune"),
            ]
        );
        assert_eq!(divided.safe.summary.add, 1);
    }

    #[test]
    fn each_flag_allows_only_its_own_kind_of_change() {
        let prune = PlanOptions {
            prune: true,
            ..PlanOptions::default()
        };
        let divided = heal(plan_of(&ALL), prune);
        assert_eq!(
            ids(&divided.safe),
            ["queue/q0", "queue/q1", "queue/q2", "queue/q4"]
        );
        for options in [
            PlanOptions {
                allow_data_loss: true,
                ..PlanOptions::default()
            },
            PlanOptions {
                migrate: true,
                ..PlanOptions::default()
            },
        ] {
            let divided = heal(plan_of(&ALL), options);
            assert_eq!(
                ids(&divided.safe),
                ["queue/q0", "queue/q1", "queue/q2", "queue/q3"]
            );
            assert_eq!(divided.withheld.len(), 1);
        }
    }

    #[test]
    fn the_safe_part_keeps_the_plans_order_and_notes_stay_with_the_rest() {
        let mut plan = plan_of(&[Action::Delete, Action::Create, Action::Create]);
        plan.project = Some("p".to_string());
        let divided = heal(plan, PlanOptions::default());
        assert_eq!(ids(&divided.safe), ["queue/q1", "queue/q2"]);
        assert_eq!(divided.safe.project.as_deref(), Some("p"));
        assert_eq!(divided.safe.vhost.as_deref(), Some("/"));
    }
}
