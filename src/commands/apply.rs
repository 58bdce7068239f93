//! `god apply`: plan again (or take a saved plan), confirm, execute, report.

use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::{Exit, Only, Sources, runtime, seconds};
use crate::apply::Outcome;
use crate::apply::rabbit::ApplyOptions;
use crate::error::Result;
use crate::plan::containers::broker_phase;
use crate::plan::diff::PlanOptions;
use crate::plan::render;
use crate::plan::saved::SavedPlan;
use crate::plan::{NoteKind, Plan, Summary};
use crate::rabbit::endpoints::BrokerEndpoints;
use crate::reconcile::execute::execute;
use crate::reconcile::planning::plan_targets;
use crate::reconcile::saved::{check_saved, read_saved_plan};
use crate::reconcile::session::{BrokerHold, Session};
use crate::reconcile::sources::Targets;

/// Plans with at least this many changes show a progress bar (on a terminal).
const PROGRESS_THRESHOLD: usize = 50;

/// Options of `god apply`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ApplyArgs {
    /// A plan saved by `god plan --out FILE`: applied exactly, refused if the broker moved.
    #[arg(value_name = "FILE")]
    pub plan_file: Option<PathBuf>,
    /// Apply without asking (required when stdin is not a terminal).
    #[arg(long)]
    pub auto_approve: bool,
    /// Delete objects god created that the registry no longer wants.
    #[arg(long)]
    pub prune: bool,
    /// Replace or delete queues even when they hold messages (the messages are lost).
    #[arg(long)]
    pub allow_data_loss: bool,
    /// Replace queues that hold messages (a new type, new arguments) without losing them: their
    /// messages and bindings wait in `<queue>.god-migrating` while the queue is declared again.
    /// Consumers see their queue deleted and must reconnect.
    #[arg(long)]
    pub migrate: bool,
    /// Print the plan and the result of each change as JSON.
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for another apply on the same vhost to finish.
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = seconds)]
    pub lock_timeout: Duration,
    /// Apply only the broker (rabbitmq) or only the containers (docker).
    #[arg(long, value_name = "SYSTEM", value_parser = super::only_value())]
    pub only: Option<Only>,
}

/// What apply works from: fresh plans from the inputs, or a saved plan.
enum Source {
    Inputs(Box<Targets>),
    Saved(Box<SavedPlan>, PathBuf),
}

impl Source {
    /// The container project the apply covers, if it covers containers.
    fn project(&self) -> Option<&str> {
        match self {
            Source::Inputs(targets) => targets.containers.as_ref().map(|c| c.project.as_str()),
            Source::Saved(saved, _) => saved.plan.project.as_deref(),
        }
    }

    /// How the apply holds the broker: not at all, at once, or once its container is up
    /// (components.toml runs it).
    fn broker_hold(&self) -> BrokerHold {
        let (covers, runs_broker) = match self {
            Source::Inputs(targets) => return targets.broker_hold(),
            Source::Saved(saved, _) => (
                saved.plan.vhost.is_some(),
                !broker_phase(&saved.plan).is_empty(),
            ),
        };
        match (covers, runs_broker) {
            (false, _) => BrokerHold::None,
            (true, false) => BrokerHold::Now,
            (true, true) => BrokerHold::WhenUp,
        }
    }
}

/// Applies and reports.
pub fn run(sources: &Sources, args: &ApplyArgs) -> Result<Exit> {
    let (source, endpoints) = match &args.plan_file {
        Some(path) => {
            let saved = read_saved_plan(path)?;
            let endpoints = sources.saved_plan_endpoints(&saved)?;
            (Source::Saved(Box::new(saved), path.clone()), endpoints)
        }
        None => {
            let targets = sources.targets(args.only)?;
            let endpoints = targets.endpoints.clone();
            (Source::Inputs(Box::new(targets)), endpoints)
        }
    };
    runtime()?.block_on(async {
        let hold = source.broker_hold();
        let mut session =
            Session::open(&endpoints, hold, source.project(), args.lock_timeout).await?;
        let exit = apply(&mut session, &source, &endpoints, args).await;
        session.close().await;
        exit
    })
}

async fn apply(
    session: &mut Session,
    source: &Source,
    endpoints: &BrokerEndpoints,
    args: &ApplyArgs,
) -> Result<Exit> {
    let (plan, target) = match source {
        Source::Inputs(targets) => {
            let options = PlanOptions {
                prune: args.prune,
                allow_data_loss: args.allow_data_loss,
                migrate: args.migrate,
            };
            let live = plan_targets(targets, session.amqp(), options).await?;
            (live.plan, live.target)
        }
        Source::Saved(saved, path) => {
            check_saved(saved, path, session).await?;
            (saved.plan.clone(), saved.management_url.clone())
        }
    };
    if !args.json {
        print!("{}", render::human(&plan, &target));
    }
    if !plan.has_changes() {
        if args.json {
            println!("{}", report_json(&plan, &[], Exit::Success));
        } else {
            println!("\nNothing to do.");
        }
        return Ok(Exit::Success);
    }
    if matches!(source, Source::Inputs(_)) && !args.auto_approve && !confirm(&plan)? {
        println!("Apply cancelled: nothing was changed.");
        return Ok(Exit::Failure);
    }
    let bar = progress_bar(plan.changes.len());
    let options = ApplyOptions {
        allow_data_loss: args.allow_data_loss,
        migrate: args.migrate,
    };
    let progress = |n: u64| bar.inc(n);
    let outcomes = execute(&plan, session, endpoints, options, &progress).await;
    bar.finish_and_clear();
    let outcomes = outcomes?;
    let exit = exit_for(&outcomes);
    if args.json {
        println!("{}", report_json(&plan, &outcomes, exit));
    } else {
        print!("{}", report_human(&plan, &outcomes, "Apply"));
    }
    Ok(exit)
}

fn progress_bar(changes: usize) -> ProgressBar {
    let bar = if changes >= PROGRESS_THRESHOLD {
        ProgressBar::new(changes as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} applying [{bar:40}] {pos}/{len} changes ({elapsed})",
        )
        .expect("the progress template is valid")
        .progress_chars("=> "),
    );
    bar
}

/// Asks whether to apply the plan (see [`super::ask_yes`]).
fn confirm(plan: &Plan) -> Result<bool> {
    let scope = match (&plan.vhost, &plan.project) {
        (Some(vhost), _) => format!("vhost \"{vhost}\""),
        (None, Some(project)) => format!("container project \"{project}\""),
        (None, None) => "nothing".to_string(),
    };
    super::ask_yes(&format!("Apply these changes to {scope}?"))
}

/// 0 when everything was done, 3 when some was done before a failure, 1 otherwise (nothing
/// done, or changes refused to protect messages).
pub fn exit_for(outcomes: &[Outcome]) -> Exit {
    let done = outcomes.iter().filter(|o| **o == Outcome::Done).count();
    let broken = outcomes.iter().any(Outcome::is_failure);
    match (done == outcomes.len(), broken, done > 0) {
        (true, _, _) => Exit::Success,
        (false, true, true) => Exit::Partial,
        _ => Exit::Failure,
    }
}

/// What was done and what was not, for a person; `verb` names the command ("Apply", "Down").
pub fn report_human(plan: &Plan, outcomes: &[Outcome], verb: &str) -> String {
    let done: Vec<usize> = (0..outcomes.len())
        .filter(|i| outcomes[*i] == Outcome::Done)
        .collect();
    let counts = Summary::of(done.iter().map(|i| plan.changes[*i].action));
    let mut out = String::new();
    let all_done = done.len() == outcomes.len();
    if outcomes.iter().any(Outcome::is_failure) {
        out.push_str(&format!(
            "\n{verb} stopped part-way: {} of {} changes done.\n",
            done.len(),
            outcomes.len()
        ));
        out.push_str("Done:\n");
        for i in &done {
            out.push_str(&format!(
                "  {} {}\n",
                plan.changes[*i].action.symbol(),
                plan.changes[*i].id
            ));
        }
        out.push_str("Not done:\n");
    } else if !all_done {
        out.push_str("\nNot done:\n");
    }
    for (change, outcome) in plan.changes.iter().zip(outcomes) {
        let detail = match outcome {
            Outcome::Done => continue,
            Outcome::Refused(d) | Outcome::Failed(d) | Outcome::Unknown(d) => format!(": {d}"),
            Outcome::NotAttempted => String::new(),
        };
        out.push_str(&format!(
            "  {} {} ({}{detail})\n",
            change.action.symbol(),
            change.id,
            outcome.label()
        ));
    }
    out.push_str(&format!(
        "\n{verb} {}: {}{} added, {} changed, {} destroyed.\n",
        if all_done { "complete" } else { "incomplete" },
        counts.adopted_prefix("adopted"),
        counts.add,
        counts.change,
        counts.destroy
    ));
    let unavailable = plan
        .notes
        .iter()
        .filter(|n| n.kind == NoteKind::Unavailable)
        .count();
    if unavailable > 0 {
        out.push_str(&format!(
            "Left alone: {unavailable} queue(s) on a node that is down (listed above), with their bindings and god's records; plan again once the node is back.\n"
        ));
    }
    out
}

fn report_json(plan: &Plan, outcomes: &[Outcome], exit: Exit) -> String {
    let results: Vec<_> = plan
        .changes
        .iter()
        .zip(outcomes)
        .map(|(c, o)| {
            let mut v = serde_json::to_value(o).expect("outcomes serialise");
            v["id"] = json!(c.id);
            v["action"] = json!(c.action);
            v
        })
        .collect();
    let doc = json!({"plan": plan, "results": results, "exit_code": exit.code()});
    serde_json::to_string_pretty(&doc).expect("reports serialise")
}
