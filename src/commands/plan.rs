//! `god plan`: read the live broker and engine and show what apply would change.

use std::path::PathBuf;

use super::{Exit, Only, Sources, runtime};
use crate::error::Result;
use crate::plan::diff::PlanOptions;
use crate::plan::render;
use crate::plan::saved::SavedPlan;
use crate::reconcile::planning::plan_targets;
use crate::reconcile::saved::write_saved_plan;

/// Options of `god plan`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PlanArgs {
    /// Print the plan as JSON (schemas/plan.schema.json).
    #[arg(long)]
    pub json: bool,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error (for CI).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Also plan the deletion of objects god created that the registry no longer wants.
    #[arg(long)]
    pub prune: bool,
    /// Plan replacing queues that hold messages by moving them through a temporary queue
    /// (what `god apply --migrate` does).
    #[arg(long)]
    pub migrate: bool,
    /// Save the plan, with a fingerprint of the live state, for `god apply FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Plan only the broker (rabbitmq) or only the containers (docker).
    #[arg(long, value_name = "SYSTEM", value_parser = super::only_value())]
    pub only: Option<Only>,
}

/// Plans and prints.
pub fn run(sources: &Sources, args: &PlanArgs) -> Result<Exit> {
    let targets = sources.targets(args.only)?;
    let options = PlanOptions {
        prune: args.prune,
        allow_data_loss: false,
        migrate: args.migrate,
    };
    let live = runtime()?.block_on(plan_targets(&targets, None, options))?;
    if args.json {
        print!("{}", render::json(&live.plan));
    } else {
        print!("{}", render::human(&live.plan, &live.target));
    }
    let has_changes = live.plan.has_changes();
    if let Some(path) = &args.out {
        let saved = SavedPlan::new(
            live.plan,
            live.broker.as_ref(),
            live.containers.as_ref(),
            &live.target,
        );
        write_saved_plan(&saved, path)?;
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
