//! `god plan`: read the live broker and show what apply would change.

use std::path::PathBuf;

use super::{Exit, Globals, plan_live, runtime};
use crate::error::Result;
use crate::plan::diff::PlanOptions;
use crate::plan::render;
use crate::plan::saved::SavedPlan;
use crate::rabbit::management::ManagementApi;

/// Options of `god plan`.
#[derive(Debug, Clone, Default)]
pub struct PlanArgs {
    /// Print the plan as JSON.
    pub json: bool,
    /// Exit 2 when there are changes.
    pub detailed_exitcode: bool,
    /// Include deletions of objects god created that the registry no longer wants.
    pub prune: bool,
    /// Save the plan for `god apply FILE`.
    pub out: Option<PathBuf>,
}

/// Plans and prints.
pub fn run(globals: &Globals, args: &PlanArgs) -> Result<Exit> {
    let loaded = globals.load_registry()?;
    let endpoints = globals.endpoints(&loaded)?;
    let desired = loaded.registry.desired_state();
    let api = ManagementApi::new(&endpoints)?;
    let options = PlanOptions {
        prune: args.prune,
        allow_data_loss: false,
    };
    let (observed, plan) = runtime()?.block_on(plan_live(&api, &desired, options))?;
    if args.json {
        print!("{}", render::json(&plan));
    } else {
        print!("{}", render::human(&plan, &endpoints.management_display()));
    }
    let has_changes = plan.has_changes();
    if let Some(path) = &args.out {
        SavedPlan::new(plan, &observed, &endpoints.management_display()).write(path)?;
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
