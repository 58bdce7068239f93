//! Observing and planning: whatever a run covers is observed in bulk and diffed
//! ([`plan_targets`]); a plan that would lose messages is made again with the queues' exact
//! depths.

use crate::error::{GodError, Result};
use crate::model::ObservedState;
use crate::model::containers::{DesiredContainers, ObservedContainers};
use crate::model::desired::DesiredState;
use crate::observe::docker::{Wanted, observe as observe_containers};
use crate::observe::engine;
use crate::observe::rabbit::{observe, observe_exact_depths};
use crate::plan::containers::broker_phase;
use crate::plan::containers::plan as plan_container_changes;
use crate::plan::diff::{self, PlanOptions};
use crate::plan::{Note, NoteKind, Plan};
use crate::rabbit::amqp::AmqpSession;
use crate::rabbit::endpoints::BrokerEndpoints;
use crate::rabbit::management::ManagementApi;

use super::sources::Targets;

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

/// Observes whatever the targets cover and plans it. `session` is the AMQP connection of an
/// apply, used to count messages exactly; without one, a connection is opened when needed.
/// When components.toml runs the broker and this plan starts its container, a broker that
/// does not answer is planned as an empty one: everything of the topology is created once the
/// container is up.
pub async fn plan_targets(
    targets: &Targets,
    session: Option<&AmqpSession>,
    options: PlanOptions,
) -> Result<LivePlan> {
    let mut containers = None;
    let mut container_plan = None;
    if let Some(desired) = &targets.containers {
        let docker = engine::connect().await?;
        let (observed, p) = plan_containers(&docker, desired, options).await?;
        container_plan = Some(p);
        containers = Some(observed);
    }
    let starts_broker = container_plan
        .as_ref()
        .is_some_and(|p| !broker_phase(p).is_empty());
    let mut plan = None;
    let mut broker = None;
    let mut target = targets.endpoints.management_display();
    if let Some(desired) = &targets.broker {
        let api = ManagementApi::new(&targets.endpoints)?;
        let (observed, p) =
            match plan_broker(&api, &targets.endpoints, session, desired, options).await {
                Err(GodError::Unreachable { .. }) if starts_broker => {
                    plan_for_a_broker_to_start(desired, targets, options)
                }
                other => other?,
            };
        plan = Some(p);
        broker = Some(observed);
        target = api.endpoint().to_string();
    }
    if let Some(p) = container_plan {
        plan = Some(match plan {
            // The plan lists its changes in the order apply carries them out.
            Some(broker_plan) if starts_broker => {
                let first_indices = broker_phase(&p);
                let (first, rest) = p.split(&first_indices);
                first.then(broker_plan).then(rest)
            }
            Some(broker_plan) => broker_plan.then(p),
            None => p,
        });
    }
    Ok(LivePlan {
        plan: plan.unwrap_or_else(|| Plan::new(None, Vec::new(), Vec::new())),
        broker,
        containers,
        target,
    })
}

/// The topology planned against an empty broker, with a note saying why: the broker's
/// container is not up yet, and this apply starts it first.
fn plan_for_a_broker_to_start(
    desired: &DesiredState,
    targets: &Targets,
    options: PlanOptions,
) -> (ObservedState, Plan) {
    let observed = ObservedState {
        vhost: targets.endpoints.vhost.clone(),
        ..ObservedState::default()
    };
    let mut plan = diff::plan(desired, &observed, options);
    let container = targets
        .containers
        .as_ref()
        .and_then(DesiredContainers::broker)
        .map(|c| c.name.clone())
        .unwrap_or_default();
    plan.notes.push(Note {
        kind: NoteKind::Info,
        id: format!("container/{container}"),
        message: format!(
            "the broker runs in this container, which is not up yet: apply starts it (and what it depends on) first, waits until {} answers, then creates the topology, then starts the other containers",
            targets.endpoints.management_display()
        ),
    });
    (observed, plan)
}

/// Observes the vhost and plans. A plan that replaces or deletes queues is made again with
/// their exact depths (AMQP passive declares: the statistics lag), so a converged vhost costs
/// one definitions export.
pub async fn plan_broker(
    api: &ManagementApi,
    endpoints: &BrokerEndpoints,
    session: Option<&AmqpSession>,
    desired: &DesiredState,
    options: PlanOptions,
) -> Result<(ObservedState, Plan)> {
    let mut observed = observe(api).await?;
    let plan = diff::plan(desired, &observed, options);
    let at_stake = plan.queues_losing_data();
    if at_stake.is_empty() {
        return Ok((observed, plan));
    }
    match session {
        Some(session) => observe_exact_depths(api, session, &at_stake, &mut observed).await?,
        None => {
            let session = AmqpSession::connect(endpoints, "plan").await?;
            let counted = observe_exact_depths(api, &session, &at_stake, &mut observed).await;
            session.close().await;
            counted?;
        }
    }
    let plan = diff::plan(desired, &observed, options);
    Ok((observed, plan))
}

/// Observes the project's containers and plans them.
pub async fn plan_containers(
    docker: &bollard::Docker,
    desired: &DesiredContainers,
    options: PlanOptions,
) -> Result<(ObservedContainers, Plan)> {
    let observed = observe_project(docker, desired).await?;
    let plan = plan_container_changes(desired, &observed, options);
    Ok((observed, plan))
}

/// What the engine has of the project: its containers, networks and volumes, and the foreign
/// ones named as it wants its own.
pub async fn observe_project(
    docker: &bollard::Docker,
    desired: &DesiredContainers,
) -> Result<ObservedContainers> {
    let wanted = Wanted {
        containers: desired.containers.iter().map(|c| c.name.clone()).collect(),
        networks: desired.networks.iter().map(|n| n.name.clone()).collect(),
        volumes: desired.volumes.iter().map(|v| v.name.clone()).collect(),
    };
    observe_containers(docker, &desired.project, &wanted).await
}
