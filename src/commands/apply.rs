//! `god apply`: plan again (or take a saved plan), confirm, execute, report.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::{Exit, Globals, plan_live, runtime};
use crate::apply::Outcome;
use crate::apply::lock;
use crate::apply::rabbit::{ApplyOptions, RabbitExecutor};
use crate::endpoints::BrokerEndpoints;
use crate::error::{GodError, Result};
use crate::inputs::registry::DesiredState;
use crate::observe::rabbit::observe;
use crate::plan::diff::PlanOptions;
use crate::plan::render;
use crate::plan::saved::SavedPlan;
use crate::plan::{Action, Plan};
use crate::rabbit::amqp::AmqpSession;
use crate::rabbit::management::ManagementApi;

/// Plans with at least this many changes show a progress bar (on a terminal).
const PROGRESS_THRESHOLD: usize = 50;

/// Options of `god apply`.
#[derive(Debug, Clone, Default)]
pub struct ApplyArgs {
    /// A plan saved by `god plan --out`, applied exactly.
    pub plan_file: Option<PathBuf>,
    /// Apply without asking.
    pub auto_approve: bool,
    /// Delete objects god created that the registry no longer wants.
    pub prune: bool,
    /// Replace or delete queues that hold messages.
    pub allow_data_loss: bool,
    /// Print the plan and the results as JSON.
    pub json: bool,
    /// How long to wait for another apply on the same vhost.
    pub lock_timeout: Duration,
}

/// What apply works from: a fresh plan from the registry, or a saved one.
enum Source {
    Registry(Box<DesiredState>),
    Saved(Box<SavedPlan>, PathBuf),
}

/// Applies and reports.
pub fn run(globals: &Globals, args: &ApplyArgs) -> Result<Exit> {
    let (source, endpoints) = match &args.plan_file {
        Some(path) => {
            let saved = SavedPlan::read(path)?;
            let endpoints = saved_plan_endpoints(globals, &saved)?;
            (Source::Saved(Box::new(saved), path.clone()), endpoints)
        }
        None => {
            let loaded = globals.load_registry()?;
            let endpoints = globals.endpoints(&loaded)?;
            (
                Source::Registry(Box::new(loaded.registry.desired_state())),
                endpoints,
            )
        }
    };
    runtime()?.block_on(apply(&source, &endpoints, args))
}

fn saved_plan_endpoints(globals: &Globals, saved: &SavedPlan) -> Result<BrokerEndpoints> {
    let endpoints = BrokerEndpoints::resolve(
        globals.amqp_url.as_deref(),
        globals.management_url.as_deref(),
    )?;
    if endpoints.vhost_explicit && endpoints.vhost != saved.plan.vhost {
        return Err(GodError::Usage(format!(
            "the saved plan is for vhost \"{}\" but the AMQP URL names vhost \"{}\"",
            saved.plan.vhost, endpoints.vhost
        )));
    }
    Ok(endpoints.with_vhost(&saved.plan.vhost))
}

async fn apply(source: &Source, endpoints: &BrokerEndpoints, args: &ApplyArgs) -> Result<Exit> {
    let api = ManagementApi::new(endpoints)?;
    api.check_vhost().await?;
    let amqp = AmqpSession::connect(endpoints, "apply").await?;
    lock::acquire(&amqp, &api, args.lock_timeout).await?;
    let plan = plan_to_apply(source, &api, args).await?;
    if !args.json {
        print!("{}", render::human(&plan, &endpoints.management_display()));
    }
    if !plan.has_changes() {
        if args.json {
            println!("{}", report_json(&plan, &[], Exit::Success));
        } else {
            println!("\nNothing to do.");
        }
        amqp.close().await;
        return Ok(Exit::Success);
    }
    if matches!(source, Source::Registry(_)) && !args.auto_approve && !confirm(&plan)? {
        println!("Apply cancelled: nothing was changed.");
        amqp.close().await;
        return Ok(Exit::Failure);
    }
    let outcomes = execute(&plan, &api, &amqp, args).await;
    amqp.close().await;
    let exit = exit_for(&outcomes);
    if args.json {
        println!("{}", report_json(&plan, &outcomes, exit));
    } else {
        print!("{}", report_human(&plan, &outcomes));
    }
    Ok(exit)
}

async fn plan_to_apply(source: &Source, api: &ManagementApi, args: &ApplyArgs) -> Result<Plan> {
    match source {
        Source::Registry(desired) => {
            let options = PlanOptions {
                prune: args.prune,
                allow_data_loss: args.allow_data_loss,
            };
            Ok(plan_live(api, desired, options).await?.1)
        }
        Source::Saved(saved, path) => {
            let observed = observe(api).await?;
            let moved = saved.moved_since(&observed);
            if moved.is_empty() {
                Ok(saved.plan.clone())
            } else {
                Err(GodError::StalePlan {
                    path: path.clone(),
                    moved: moved.join("\n"),
                })
            }
        }
    }
}

/// Asks on the terminal; refuses when there is no terminal to ask on.
fn confirm(plan: &Plan) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(GodError::NeedsApproval);
    }
    print!(
        "\nApply these changes to vhost \"{}\"? Only 'yes' is accepted: ",
        plan.vhost
    );
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| GodError::Other(format!("cannot read the answer: {e}")))?;
    Ok(answer.trim() == "yes")
}

async fn execute(
    plan: &Plan,
    api: &ManagementApi,
    amqp: &AmqpSession,
    args: &ApplyArgs,
) -> Vec<Outcome> {
    let bar = if plan.changes.len() >= PROGRESS_THRESHOLD {
        ProgressBar::new(plan.changes.len() as u64)
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
    let progress = |n: u64| bar.inc(n);
    let options = ApplyOptions {
        allow_data_loss: args.allow_data_loss,
    };
    let outcomes = RabbitExecutor::new(api, amqp, options, &progress)
        .execute(plan)
        .await;
    bar.finish_and_clear();
    outcomes
}

/// 0 when everything was done, 3 when some was done before a failure, 1 otherwise (nothing
/// done, or changes refused to protect messages).
pub fn exit_for(outcomes: &[Outcome]) -> Exit {
    let done = outcomes.iter().filter(|o| **o == Outcome::Done).count();
    let broken = outcomes.iter().any(|o| {
        matches!(
            o,
            Outcome::Failed(_) | Outcome::Unknown(_) | Outcome::NotAttempted
        )
    });
    match (done == outcomes.len(), broken, done > 0) {
        (true, _, _) => Exit::Success,
        (false, true, true) => Exit::Partial,
        _ => Exit::Failure,
    }
}

fn report_human(plan: &Plan, outcomes: &[Outcome]) -> String {
    let done: Vec<usize> = (0..outcomes.len())
        .filter(|i| outcomes[*i] == Outcome::Done)
        .collect();
    let mut counts = (0, 0, 0);
    for i in &done {
        match plan.changes[*i].action {
            Action::Create => counts.0 += 1,
            Action::Adopt | Action::Update => counts.1 += 1,
            Action::Delete => counts.2 += 1,
            Action::Replace => {
                counts.0 += 1;
                counts.2 += 1;
            }
        }
    }
    let mut out = String::new();
    let all_done = done.len() == outcomes.len();
    let broken = outcomes.iter().any(|o| {
        matches!(
            o,
            Outcome::Failed(_) | Outcome::Unknown(_) | Outcome::NotAttempted
        )
    });
    if broken {
        out.push_str(&format!(
            "\nApply stopped part-way: {} of {} changes done.\n",
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
        "\nApply {}: {} added, {} changed, {} destroyed.\n",
        if all_done { "complete" } else { "incomplete" },
        counts.0,
        counts.1,
        counts.2
    ));
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
