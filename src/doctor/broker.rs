//! Broker checks: the management API answers and accepts god's credentials, AMQP too, the
//! nodes run without resource alarms, the vhost exists. When the vhost can be read, the
//! topology and flow checks follow.

use std::time::Duration;

use super::check::{Area, Check, Problem, Verdict, within};
use super::flow::Thresholds;
use super::{cluster, flow, rabbitmq4, topology};
use crate::error::GodError;
use crate::model::desired::DesiredState;
use crate::observe::rabbit::observe;
use crate::plan::diff::{self, PlanOptions};
use crate::rabbit::amqp::AmqpSession;
use crate::rabbit::endpoints::BrokerEndpoints;
use crate::rabbit::management::{ManagementApi, NodeEntry, Overview};

/// What the broker, topology and flow checks need.
pub struct Target<'a> {
    /// Where the broker is.
    pub endpoints: &'a BrokerEndpoints,
    /// The desired state, when the registry validated.
    pub desired: Option<&'a DesiredState>,
    /// Flow limits.
    pub thresholds: Thresholds,
    /// A relay should be running (components.toml runs one, or `--relay-url` names one).
    pub relay_expected: bool,
    /// Limit of each operation.
    pub timeout: Duration,
}

/// Fix of a refused login.
const CREDENTIALS_FIX: &str = "the password was probably rotated: update RABBITMQ_URL (and RABBITMQ_MANAGEMENT_URL when it carries credentials) for god, and the broker URL in every service's and container's environment (components.toml `env`), then `god apply` to restart the containers";

/// Broker checks, then (when the vhost can be read) topology and flow checks.
pub async fn checks(target: &Target<'_>) -> Vec<Check> {
    let api = match ManagementApi::new(target.endpoints) {
        Ok(api) => api,
        Err(e) => {
            return vec![Check::new(
                "broker.management",
                Area::Broker,
                Verdict::Fail,
                e.to_string(),
            )];
        }
    };
    let (overview, amqp) = tokio::join!(
        within(target.timeout, api.overview()),
        within(
            target.timeout,
            AmqpSession::connect(target.endpoints, "doctor")
        ),
    );
    let mut checks = management_checks(target.endpoints, api.endpoint(), &overview);
    checks.push(amqp_check(target.endpoints, &amqp));
    let session = amqp.ok();
    if overview.is_ok() {
        let (nodes, alarms) = tokio::join!(
            within(target.timeout, api.nodes()),
            alarm_check(&api, target.timeout)
        );
        checks.extend([node_check(&nodes), alarms]);
        let vhost = vhost_check(&api, target.endpoints, target.timeout).await;
        let vhost_ok = vhost.status == Verdict::Ok;
        checks.push(vhost);
        if vhost_ok {
            checks.extend(cluster_checks(&api, &nodes, target).await);
            checks.extend(topology_and_flow(&api, session.as_ref(), target).await);
            if let Ok(o) = &overview {
                checks.extend(rabbitmq4::checks(&api, &o.rabbitmq_version, target.timeout).await);
            }
        } else {
            checks.extend(skipped_bus_checks("the vhost does not exist"));
        }
    } else {
        checks.extend(skipped_bus_checks("the management API did not answer"));
    }
    if let Some(session) = session {
        session.close().await;
    }
    checks
}

fn skipped_bus_checks(why: &str) -> Vec<Check> {
    vec![
        Check::skip(
            "topology.all",
            Area::Topology,
            format!("not checked: {why}"),
        ),
        Check::skip("flow.all", Area::Flow, format!("not checked: {why}")),
    ]
}

/// `answering` is the management URL that answered (the first of the list when none did).
fn management_checks(
    endpoints: &BrokerEndpoints,
    answering: &str,
    overview: &Result<Overview, Problem>,
) -> Vec<Check> {
    let at = match overview {
        Err(_) => endpoints.management_display(),
        Ok(_) => answering.to_string(),
    };
    let user = &endpoints.management_credentials.user;
    let answers = || {
        Check::ok(
            "broker.management",
            Area::Broker,
            format!("management API answers at {at}"),
        )
    };
    match overview {
        Ok(o) => vec![
            Check::ok(
                "broker.management",
                Area::Broker,
                format!(
                    "management API answers at {at} (RabbitMQ {}, Erlang {})",
                    o.rabbitmq_version, o.erlang_version
                ),
            ),
            Check::ok("broker.credentials", Area::Broker, format!("user \"{user}\" is accepted")),
        ],
        Err(Problem::Failed(GodError::BadCredentials { .. })) => vec![
            answers(),
            Check::new(
                "broker.credentials",
                Area::Broker,
                Verdict::Fail,
                format!("login refused for user \"{user}\" (HTTP 401)"),
            )
            .with_fix(CREDENTIALS_FIX),
        ],
        Err(Problem::Failed(GodError::Forbidden { .. })) => vec![
            answers(),
            Check::new(
                "broker.credentials",
                Area::Broker,
                Verdict::Fail,
                format!("user \"{user}\" may not use the management API (HTTP 403)"),
            )
            .with_fix(format!("give the user a management tag: `rabbitmqctl set_user_tags {user} monitoring` (or policymaker)")),
        ],
        Err(problem) => vec![
            Check::new(
                "broker.management",
                Area::Broker,
                Verdict::Fail,
                format!("management API at {at}: {problem}"),
            )
            .with_fix("start RabbitMQ with the management plugin (`scripts/bootstrap` on this machine), or point RABBITMQ_MANAGEMENT_URL at it"),
            Check::skip("broker.credentials", Area::Broker, "not checked: the management API did not answer"),
        ],
    }
}

fn amqp_check(endpoints: &BrokerEndpoints, amqp: &Result<AmqpSession, Problem>) -> Check {
    let id = "broker.amqp";
    let at = endpoints.amqp_display();
    match amqp {
        Ok(session) => Check::ok(
            id,
            Area::Broker,
            format!("AMQP login accepted at {}", session.endpoint()),
        ),
        Err(Problem::Failed(GodError::BadCredentials { user, .. })) => Check::new(
            id,
            Area::Broker,
            Verdict::Fail,
            format!("AMQP login refused for user \"{user}\" at {at}"),
        )
        .with_fix(CREDENTIALS_FIX),
        Err(problem) => Check::new(
            id,
            Area::Broker,
            Verdict::Fail,
            format!("AMQP at {at}: {problem}"),
        )
        .with_fix(
            "start RabbitMQ (`scripts/bootstrap` on this machine), or point RABBITMQ_URL at it",
        ),
    }
}

fn node_check(nodes: &Result<Vec<NodeEntry>, Problem>) -> Check {
    let nodes = match nodes {
        Ok(nodes) => nodes,
        Err(problem) => {
            return Check::new(
                "broker.node",
                Area::Broker,
                Verdict::Fail,
                format!("node list: {problem}"),
            );
        }
    };
    let stopped: Vec<String> = nodes
        .iter()
        .filter(|n| !n.running)
        .map(|n| n.name.clone())
        .collect();
    if stopped.is_empty() {
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        Check::ok(
            "broker.node",
            Area::Broker,
            format!("running: {}", names.join(", ")),
        )
    } else {
        Check::new("broker.node", Area::Broker, Verdict::Fail, format!("{} node(s) not running", stopped.len()))
            .with_details(stopped)
            .with_fix("start the node (`rabbitmq-server`, or its container); `rabbitmq-diagnostics status` says why it stopped")
    }
}

/// Resource alarms, from the broker's own health check (current, unlike the node statistics).
async fn alarm_check(api: &ManagementApi, limit: Duration) -> Check {
    let id = "broker.alarms";
    match within(limit, api.alarms()).await {
        Ok(alarms) if alarms.is_empty() => Check::ok(id, Area::Broker, "no memory or disk alarm"),
        Ok(alarms) => {
            let lines = alarms
                .iter()
                .map(|a| format!("{}: {} alarm", a.node, a.resource))
                .collect();
            Check::new(id, Area::Broker, Verdict::Fail, "resource alarm: publishers are blocked until it clears")
                .with_details(lines)
                .with_fix("free memory or disk on the broker's host (drain or purge the largest queues), or raise vm_memory_high_watermark / lower disk_free_limit")
        }
        Err(problem) => Check::new(
            id,
            Area::Broker,
            Verdict::Fail,
            format!("alarm check: {problem}"),
        ),
    }
}

async fn vhost_check(api: &ManagementApi, endpoints: &BrokerEndpoints, limit: Duration) -> Check {
    let id = "broker.vhost";
    match within(limit, api.check_vhost()).await {
        Ok(()) => Check::ok(
            id,
            Area::Broker,
            format!("vhost \"{}\" exists", endpoints.vhost),
        ),
        Err(Problem::Failed(e @ GodError::VhostMissing { .. })) => {
            let text = e.to_string();
            let (what, hint) = text.split_once("\nhint: ").unwrap_or((&text, ""));
            Check::new(id, Area::Broker, Verdict::Fail, what.to_string()).with_fix(hint.to_string())
        }
        Err(problem) => Check::new(
            id,
            Area::Broker,
            Verdict::Fail,
            format!("vhost lookup: {problem}"),
        ),
    }
}

/// The cluster checks (none on one node), from the node list and the vhost's queue placement.
async fn cluster_checks(
    api: &ManagementApi,
    nodes: &Result<Vec<NodeEntry>, Problem>,
    target: &Target<'_>,
) -> Vec<Check> {
    let nodes = match nodes {
        Ok(nodes) if nodes.len() < 2 => return Vec::new(),
        Ok(nodes) => nodes,
        Err(problem) => return vec![cluster_unreadable(problem)],
    };
    match within(target.timeout, api.queue_placement()).await {
        Ok(queues) => cluster::checks(nodes, &queues, target.desired),
        Err(problem) => vec![cluster_unreadable(&problem)],
    }
}

/// Why the cluster checks did not run: a user without the monitoring tag (skipped), or a
/// failure (failed).
fn cluster_unreadable(problem: &Problem) -> Check {
    match problem {
        Problem::Failed(GodError::Forbidden { .. }) => Check::skip(
            "broker.cluster",
            Area::Broker,
            "not checked: the user may not list the nodes (it needs the monitoring tag)",
        ),
        problem => Check::new(
            "broker.cluster",
            Area::Broker,
            Verdict::Fail,
            format!("cannot read the cluster's state: {problem}"),
        ),
    }
}

/// The topology checks, read off the plan `god plan` would make, and the flow checks.
async fn topology_and_flow(
    api: &ManagementApi,
    session: Option<&AmqpSession>,
    target: &Target<'_>,
) -> Vec<Check> {
    let Some(desired) = target.desired else {
        return skipped_bus_checks("registry.yaml is missing or invalid");
    };
    let observed = match within(target.timeout, observe(api)).await {
        Ok(o) => o,
        Err(problem) => {
            return vec![Check::new(
                "topology.read",
                Area::Topology,
                Verdict::Fail,
                format!("cannot read the vhost: {problem}"),
            )];
        }
    };
    let plan = diff::plan(desired, &observed, PlanOptions::default());
    let mut checks = topology::checks(desired, &plan);
    checks.extend(topology::declared_checks(desired, &observed, &plan));
    checks.push(topology::arguments_check(desired, &observed));
    let facts = flow::gather(api, session, &observed, desired);
    match within(target.timeout, facts).await {
        Ok(facts) => checks.extend(flow::checks(
            desired,
            &facts,
            &target.thresholds,
            target.relay_expected,
        )),
        Err(problem) => checks.push(Check::new(
            "flow.read",
            Area::Flow,
            Verdict::Fail,
            format!("cannot read queue statistics: {problem}"),
        )),
    }
    checks
}
