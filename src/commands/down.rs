//! `god down`: stop and remove the project's containers and networks, dependents first; named
//! volumes only with `--volumes` (asked first, like apply). The broker's topology is left alone.

use std::time::Duration;

use super::apply::{exit_for, report_human};
use super::{Exit, Sources, ask_yes, runtime, seconds};
use crate::error::Result;
use crate::plan::operations::teardown;
use crate::plan::render;
use crate::reconcile::project::Project;

/// Options of `god down`.
#[derive(Debug, Clone, clap::Args)]
pub struct DownArgs {
    /// Remove the project's named volumes too, with their data (asks first).
    #[arg(long)]
    pub volumes: bool,
    /// Do not ask (required with --volumes when stdin is not a terminal).
    #[arg(long)]
    pub auto_approve: bool,
    /// Seconds to wait for an apply on the same project to finish.
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = seconds)]
    pub lock_timeout: Duration,
}

/// Plans the teardown, shows it, asks when volumes go, carries it out and reports.
pub fn run(sources: &Sources, args: &DownArgs) -> Result<Exit> {
    runtime()?.block_on(async {
        let project = Project::open(sources, Some(args.lock_timeout)).await?;
        let plan = teardown(&project.desired, &project.observe().await?, args.volumes);
        print!("{}", render::human(&plan, "the engine"));
        if !plan.has_changes() {
            println!("\nNothing to do: no container or network of the project is left.");
            return Ok(Exit::Success);
        }
        let question = "Remove these containers, networks and volumes? The volumes' data is lost.";
        if args.volumes && !args.auto_approve && !ask_yes(question)? {
            println!("Down cancelled: nothing was changed.");
            return Ok(Exit::Failure);
        }
        let outcomes = project.execute(&plan).await;
        print!("{}", report_human(&plan, &outcomes, "Down"));
        Ok(exit_for(&outcomes))
    })
}
