//! Carrying out a plan under a [`Session`]: the broker's container first when the plan starts
//! it, then the topology, then the other containers; one outcome per change.

use crate::apply::rabbit::{ApplyOptions, RabbitExecutor};
use crate::apply::{Outcome, docker};
use crate::error::Result;
use crate::model::containers::SecretValues;
use crate::observe::engine;
use crate::plan::Plan;
use crate::plan::containers::broker_phase;
use crate::rabbit::endpoints::BrokerEndpoints;

use super::session::Session;
use super::sources::environment;

/// Carries out a plan: the broker's changes, then (unless one of them failed) the containers'.
/// When the plan starts the broker's own container, that container (with what it depends on)
/// goes first, and the broker is connected to once it answers. Returns one outcome per change.
/// `endpoints` name the broker; their URL is what the bundled services are given.
pub async fn execute(
    plan: &Plan,
    session: &mut Session,
    endpoints: &BrokerEndpoints,
    options: ApplyOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<Outcome>> {
    let broker_url = endpoints.amqp_urls_secret();
    let first = broker_phase(plan);
    let engine = tokio::sync::OnceCell::new();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; plan.changes.len()];
    if !first.is_empty() {
        session.release_broker().await;
        let started = containers(
            &engine,
            plan,
            &|i| first.contains(&i),
            &broker_url,
            progress,
        )
        .await?;
        merge(&mut outcomes, started);
        if outcomes.iter().flatten().any(Outcome::is_failure) {
            return Ok(finish(outcomes));
        }
        if plan.changes.iter().any(|c| c.kind.is_broker())
            && let Err(e) = session.connect_broker(endpoints).await
        {
            let why = format!("the broker's container started, but the broker did not answer: {e}");
            for (slot, change) in outcomes.iter_mut().zip(&plan.changes) {
                if change.kind.is_broker() {
                    *slot = Some(Outcome::Failed(why.clone()));
                }
            }
            return Ok(finish(outcomes));
        }
    }
    if let Some(s) = &session.broker {
        let done = RabbitExecutor::new(&s.api, &s.amqp, options, progress)
            .execute(plan)
            .await;
        merge(&mut outcomes, done);
    }
    let broker_failed = outcomes.iter().flatten().any(Outcome::is_failure);
    if plan.has_container_changes() && !broker_failed {
        let rest = containers(
            &engine,
            plan,
            &|i| !first.contains(&i),
            &broker_url,
            progress,
        )
        .await?;
        merge(&mut outcomes, rest);
    }
    Ok(finish(outcomes))
}

/// Runs the engine's changes of the plan that `include` selects (by index), connecting to the
/// engine the first time it is needed.
async fn containers(
    engine: &tokio::sync::OnceCell<bollard::Docker>,
    plan: &Plan,
    include: &(dyn Fn(usize) -> bool + Sync),
    broker_url: &str,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<Option<Outcome>>> {
    let docker = engine.get_or_try_init(engine::connect).await?;
    let secrets = SecretValues {
        env: &environment,
        broker_url: Some(broker_url),
    };
    Ok(docker::execute(docker, plan, include, &secrets, progress).await)
}

fn merge(outcomes: &mut [Option<Outcome>], more: Vec<Option<Outcome>>) {
    for (slot, outcome) in outcomes.iter_mut().zip(more) {
        if outcome.is_some() {
            *slot = outcome;
        }
    }
}

fn finish(outcomes: Vec<Option<Outcome>>) -> Vec<Outcome> {
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::NotAttempted))
        .collect()
}
