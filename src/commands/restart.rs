//! `god restart COMPONENT…`: restart containers of the project, in dependency order, each
//! waited for until healthy as apply waits.

use std::time::Duration;

use super::apply::{exit_for, report_human};
use super::{Exit, Sources, runtime, seconds};
use crate::error::{GodError, Result};
use crate::plan::operations::restarts;
use crate::plan::render;
use crate::reconcile::project::Project;

/// Options of `god restart`.
#[derive(Debug, Clone, clap::Args)]
pub struct RestartArgs {
    /// The components to restart (their names in components.toml).
    #[arg(value_name = "COMPONENT", required = true)]
    pub names: Vec<String>,
    /// Seconds to wait for an apply on the same project to finish.
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = seconds)]
    pub lock_timeout: Duration,
}

/// Restarts the components and waits for each to be healthy.
pub fn run(sources: &Sources, args: &RestartArgs) -> Result<Exit> {
    runtime()?.block_on(async {
        let project = Project::open(sources, Some(args.lock_timeout)).await?;
        let observed = project.observe().await?;
        let plan = restarts(&project.desired, &observed, &args.names).map_err(GodError::Usage)?;
        print!("{}", render::human(&plan, "the engine"));
        let outcomes = project.execute(&plan).await;
        print!("{}", report_human(&plan, &outcomes, "Restart"));
        Ok(exit_for(&outcomes))
    })
}
