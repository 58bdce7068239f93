//! `god plan`: read the live broker and engine and show what apply would change.

use std::path::PathBuf;

use super::{Exit, Globals, Only, Targets, plan_containers_live, plan_live, runtime};
use crate::engine;
use crate::error::Result;
use crate::model::ObservedState;
use crate::model::containers::ObservedContainers;
use crate::plan::diff::PlanOptions;
use crate::plan::saved::SavedPlan;
use crate::plan::{Plan, render};
use crate::rabbit::management::ManagementApi;

/// Options of `god plan`.
#[derive(Debug, Clone, Default)]
pub struct PlanArgs {
    /// Print the plan as JSON.
    pub json: bool,
    /// Exit 2 when there are changes.
    pub detailed_exitcode: bool,
    /// Include deletions of objects god created that the inputs no longer want.
    pub prune: bool,
    /// Save the plan for `god apply FILE`.
    pub out: Option<PathBuf>,
    /// Narrow the run to one system.
    pub only: Option<Only>,
}

/// A plan with the observations it was made from.
pub struct LivePlan {
    /// The plan, broker changes first.
    pub plan: Plan,
    /// The broker as observed.
    pub broker: Option<ObservedState>,
    /// The containers as observed.
    pub containers: Option<ObservedContainers>,
    /// Where the broker is, for headers.
    pub target: String,
}

/// Observes whatever the targets cover and plans it.
pub async fn plan_targets(targets: &Targets, options: PlanOptions) -> Result<LivePlan> {
    let mut plan = None;
    let mut broker = None;
    let mut target = String::new();
    if let Some((desired, endpoints)) = &targets.broker {
        let api = ManagementApi::new(endpoints)?;
        let (observed, p) = plan_live(&api, desired, options).await?;
        plan = Some(p);
        broker = Some(observed);
        target = endpoints.management_display();
    }
    let mut containers = None;
    if let Some(desired) = &targets.containers {
        let docker = engine::connect().await?;
        let (observed, p) = plan_containers_live(&docker, desired, options).await?;
        plan = Some(match plan {
            Some(broker_plan) => broker_plan.then(p),
            None => p,
        });
        containers = Some(observed);
    }
    Ok(LivePlan {
        plan: plan.unwrap_or_else(|| Plan::new("", Vec::new(), Vec::new())),
        broker,
        containers,
        target,
    })
}

/// Plans and prints.
pub fn run(globals: &Globals, args: &PlanArgs) -> Result<Exit> {
    let targets = globals.targets(args.only)?;
    let options = PlanOptions {
        prune: args.prune,
        allow_data_loss: false,
    };
    let live = runtime()?.block_on(plan_targets(&targets, options))?;
    if args.json {
        print!("{}", render::json(&live.plan));
    } else {
        print!("{}", render::human(&live.plan, &live.target));
    }
    let has_changes = live.plan.has_changes();
    if let Some(path) = &args.out {
        SavedPlan::new(
            live.plan,
            live.broker.as_ref(),
            live.containers.as_ref(),
            &live.target,
        )
        .write(path)?;
        eprintln!(
            "Saved this plan to {0}. Apply exactly this plan with: god apply {0}",
            path.display()
        );
    }
    Ok(if args.detailed_exitcode && has_changes {
        Exit::Changes
    } else {
        Exit::Success
    })
}
