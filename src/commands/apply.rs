//! `god apply`: plan again (or take a saved plan), confirm, execute, report.

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::plan::plan_targets;
use super::{Exit, Globals, Only, Targets, runtime};
use crate::apply::rabbit::{ApplyOptions, RabbitExecutor};
use crate::apply::{Outcome, docker, lock};
use crate::endpoints::BrokerEndpoints;
use crate::engine;
use crate::error::{GodError, Result};
use crate::observe::docker::observe as observe_containers;
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
    /// Narrow the run to one system.
    pub only: Option<Only>,
}

/// What apply works from: fresh plans from the inputs, or a saved plan.
enum Source {
    Inputs(Box<Targets>),
    Saved(Box<SavedPlan>, PathBuf),
}

impl Source {
    /// The container project the apply covers, if it covers containers.
    fn project(&self) -> Option<String> {
        match self {
            Source::Inputs(targets) => targets.containers.as_ref().map(|c| c.project.clone()),
            Source::Saved(saved, _) => saved.plan.project.clone(),
        }
    }
}

/// Applies and reports.
pub fn run(globals: &Globals, args: &ApplyArgs) -> Result<Exit> {
    let (source, endpoints) = match &args.plan_file {
        Some(path) => {
            let saved = SavedPlan::read(path)?;
            let endpoints = if saved.plan.vhost.is_empty() {
                None
            } else {
                Some(saved_plan_endpoints(globals, &saved)?)
            };
            (Source::Saved(Box::new(saved), path.clone()), endpoints)
        }
        None => {
            let targets = globals.targets(args.only)?;
            let endpoints = targets.broker.as_ref().map(|(_, e)| e.clone());
            (Source::Inputs(Box::new(targets)), endpoints)
        }
    };
    runtime()?.block_on(apply(&source, endpoints.as_ref(), args))
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

/// The broker side of an apply: its API and the AMQP connection that holds the lock.
struct BrokerSession {
    api: ManagementApi,
    amqp: AmqpSession,
}

async fn apply(
    source: &Source,
    endpoints: Option<&BrokerEndpoints>,
    args: &ApplyArgs,
) -> Result<Exit> {
    let session = match endpoints {
        Some(endpoints) => {
            let api = ManagementApi::new(endpoints)?;
            api.check_vhost().await?;
            let amqp = AmqpSession::connect(endpoints, "apply").await?;
            lock::acquire(&amqp, &api, args.lock_timeout).await?;
            Some(BrokerSession { api, amqp })
        }
        None => None,
    };
    let _project_lock = match source.project() {
        Some(project) => Some(lock::acquire_project(&project, args.lock_timeout).await?),
        None => None,
    };
    let (plan, target) = plan_to_apply(source, session.as_ref(), args).await?;
    if !args.json {
        print!("{}", render::human(&plan, &target));
    }
    let exit = if !plan.has_changes() {
        if args.json {
            println!("{}", report_json(&plan, &[], Exit::Success));
        } else {
            println!("\nNothing to do.");
        }
        Exit::Success
    } else if matches!(source, Source::Inputs(_)) && !args.auto_approve && !confirm(&plan)? {
        println!("Apply cancelled: nothing was changed.");
        Exit::Failure
    } else {
        let outcomes = execute(&plan, session.as_ref(), args).await?;
        let exit = exit_for(&outcomes);
        if args.json {
            println!("{}", report_json(&plan, &outcomes, exit));
        } else {
            print!("{}", report_human(&plan, &outcomes));
        }
        exit
    };
    if let Some(s) = session {
        s.amqp.close().await;
    }
    Ok(exit)
}

async fn plan_to_apply(
    source: &Source,
    session: Option<&BrokerSession>,
    args: &ApplyArgs,
) -> Result<(Plan, String)> {
    match source {
        Source::Inputs(targets) => {
            let options = PlanOptions {
                prune: args.prune,
                allow_data_loss: args.allow_data_loss,
            };
            let live = plan_targets(targets, options).await?;
            Ok((live.plan, live.target))
        }
        Source::Saved(saved, path) => {
            let broker = match session {
                Some(s) => Some(observe(&s.api).await?),
                None => None,
            };
            let containers = match &saved.plan.project {
                Some(project) => {
                    let docker = engine::connect().await?;
                    let names: BTreeSet<String> = saved
                        .plan
                        .changes
                        .iter()
                        .filter_map(|c| c.id.strip_prefix("container/").map(str::to_string))
                        .collect();
                    Some(observe_containers(&docker, project, &names).await?)
                }
                None => None,
            };
            let moved = saved.moved_since(broker.as_ref(), containers.as_ref());
            if moved.is_empty() {
                Ok((saved.plan.clone(), saved.management_url.clone()))
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
    session: Option<&BrokerSession>,
    args: &ApplyArgs,
) -> Result<Vec<Outcome>> {
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
    let mut outcomes: Vec<Option<Outcome>> = match session {
        Some(s) => {
            RabbitExecutor::new(&s.api, &s.amqp, options, &progress)
                .execute(plan)
                .await
        }
        None => vec![None; plan.changes.len()],
    };
    let broker_failed = outcomes.iter().flatten().any(|o| {
        matches!(
            o,
            Outcome::Failed(_) | Outcome::Unknown(_) | Outcome::NotAttempted
        )
    });
    if plan.changes.iter().any(|c| c.kind == "container") && !broker_failed {
        let docker = engine::connect().await?;
        let container_outcomes = docker::execute(&docker, plan, &progress).await;
        for (slot, outcome) in outcomes.iter_mut().zip(container_outcomes) {
            if outcome.is_some() {
                *slot = outcome;
            }
        }
    }
    bar.finish_and_clear();
    Ok(outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::NotAttempted))
        .collect())
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
