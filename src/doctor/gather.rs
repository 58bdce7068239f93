//! The I/O side of doctor: every network operation is bounded by the check timeout, and each
//! area is gathered independently so the caller can run them concurrently.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use bollard::models::HealthStatusEnum;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::Value;

use super::flow::{self, FlowFacts, QueueFacts, RelayQueue};
use super::{Area, Check, Status, Thresholds, first_few, topology};
use crate::endpoints::{BrokerEndpoints, mask_url_str};
use crate::engine;
use crate::error::GodError;
use crate::inputs::registry::Registry;
use crate::model::ObservedState;
use crate::model::containers::DesiredContainers;
use crate::model::containers::{ContainerSpec, PROJECT_LABEL};
use crate::model::desired::Lifecycle as ServiceStatus;
use crate::observe::rabbit::observe;
use crate::plan::diff::{self, PlanOptions};
use crate::rabbit::amqp::AmqpSession;
use crate::rabbit::management::{ManagementApi, encode};

/// Why an operation gave no answer.
#[derive(Debug)]
pub enum Problem {
    /// No answer within the check timeout.
    Timeout(Duration),
    /// The operation failed.
    Failed(GodError),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Timeout(t) => write!(f, "no answer within {}s", t.as_secs_f64()),
            Problem::Failed(e) => write!(f, "{}", first_line(&e.to_string())),
        }
    }
}

/// The first line of a message (god's errors put their hint on the next lines).
pub fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// Runs `operation` with a time limit.
pub async fn within<T>(
    limit: Duration,
    operation: impl Future<Output = crate::error::Result<T>>,
) -> Result<T, Problem> {
    match tokio::time::timeout(limit, operation).await {
        Err(_) => Err(Problem::Timeout(limit)),
        Ok(result) => result.map_err(Problem::Failed),
    }
}

/// What the broker, topology and flow checks need.
pub struct BrokerTarget<'a> {
    /// Where the broker is.
    pub endpoints: &'a BrokerEndpoints,
    /// The registry, when it validated.
    pub registry: Option<&'a Registry>,
    /// Flow limits.
    pub thresholds: Thresholds,
    /// components.toml runs a relay.
    pub relay_expected: bool,
    /// Limit of each operation.
    pub timeout: Duration,
}

/// Fix of a refused login.
const CREDENTIALS_FIX: &str = "the password was probably rotated: update RABBITMQ_URL (and RABBITMQ_MANAGEMENT_URL when it carries credentials) for god, and the broker URL in every service's and container's environment (components.toml `env`), then `god apply` to restart the containers";

/// Broker checks, then (when the vhost can be read) topology and flow checks.
pub async fn broker(target: &BrokerTarget<'_>) -> Vec<Check> {
    let api = match ManagementApi::new(target.endpoints) {
        Ok(api) => api,
        Err(e) => {
            return vec![Check::new(
                "broker.management",
                Area::Broker,
                Status::Fail,
                e.to_string(),
            )];
        }
    };
    let (overview, amqp) = tokio::join!(
        within(target.timeout, api.get_json("overview", "the overview")),
        within(
            target.timeout,
            AmqpSession::connect(target.endpoints, "doctor")
        ),
    );
    let mut checks = management_checks(target.endpoints, &overview);
    checks.push(amqp_check(target.endpoints, &amqp));
    let session = amqp.ok();
    if overview.is_ok() {
        let (node, alarms) = tokio::join!(
            node_check(&api, target.timeout),
            alarm_check(&api, target.timeout)
        );
        checks.extend([node, alarms]);
        let vhost = vhost_check(&api, target.endpoints, target.timeout).await;
        let vhost_ok = vhost.status == Status::Ok;
        checks.push(vhost);
        if vhost_ok {
            checks.extend(topology_and_flow(&api, session.as_ref(), target).await);
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

fn management_checks(endpoints: &BrokerEndpoints, overview: &Result<Value, Problem>) -> Vec<Check> {
    let at = endpoints.management_display();
    let user = &endpoints.management_credentials.user;
    match overview {
        Ok(o) => vec![
            Check::ok(
                "broker.management",
                Area::Broker,
                format!(
                    "management API answers at {at} (RabbitMQ {}, Erlang {})",
                    o["rabbitmq_version"].as_str().unwrap_or("?"),
                    o["erlang_version"].as_str().unwrap_or("?")
                ),
            ),
            Check::ok("broker.credentials", Area::Broker, format!("user \"{user}\" is accepted")),
        ],
        Err(Problem::Failed(GodError::BadCredentials { .. })) => vec![
            Check::ok("broker.management", Area::Broker, format!("management API answers at {at}")),
            Check::new(
                "broker.credentials",
                Area::Broker,
                Status::Fail,
                format!("login refused for user \"{user}\" (HTTP 401)"),
            )
            .with_fix(CREDENTIALS_FIX),
        ],
        Err(Problem::Failed(GodError::Forbidden { .. })) => vec![
            Check::ok("broker.management", Area::Broker, format!("management API answers at {at}")),
            Check::new(
                "broker.credentials",
                Area::Broker,
                Status::Fail,
                format!("user \"{user}\" may not use the management API (HTTP 403)"),
            )
            .with_fix(format!("give the user a management tag: `rabbitmqctl set_user_tags {user} monitoring` (or policymaker)")),
        ],
        Err(problem) => vec![
            Check::new(
                "broker.management",
                Area::Broker,
                Status::Fail,
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
        Ok(_) => Check::ok(id, Area::Broker, format!("AMQP login accepted at {at}")),
        Err(Problem::Failed(GodError::BadCredentials { user, .. })) => Check::new(
            id,
            Area::Broker,
            Status::Fail,
            format!("AMQP login refused for user \"{user}\" at {at}"),
        )
        .with_fix(CREDENTIALS_FIX),
        Err(problem) => Check::new(
            id,
            Area::Broker,
            Status::Fail,
            format!("AMQP at {at}: {problem}"),
        )
        .with_fix(
            "start RabbitMQ (`scripts/bootstrap` on this machine), or point RABBITMQ_URL at it",
        ),
    }
}

async fn node_check(api: &ManagementApi, limit: Duration) -> Check {
    let nodes = match within(limit, api.get_json("nodes", "the node list")).await {
        Ok(Value::Array(nodes)) => nodes,
        Ok(_) => Vec::new(),
        Err(problem) => {
            return Check::new(
                "broker.node",
                Area::Broker,
                Status::Fail,
                format!("node list: {problem}"),
            );
        }
    };
    let name = |n: &Value| n["name"].as_str().unwrap_or("?").to_string();
    let stopped: Vec<String> = nodes
        .iter()
        .filter(|n| n["running"] != true)
        .map(name)
        .collect();
    if stopped.is_empty() {
        let names: Vec<String> = nodes.iter().map(name).collect();
        Check::ok(
            "broker.node",
            Area::Broker,
            format!("running: {}", names.join(", ")),
        )
    } else {
        Check::new("broker.node", Area::Broker, Status::Fail, format!("{} node(s) not running", stopped.len()))
            .with_details(stopped)
            .with_fix("start the node (`rabbitmq-server`, or its container); `rabbitmq-diagnostics status` says why it stopped")
    }
}

/// Resource alarms, from the broker's own health check (current, unlike the node statistics).
async fn alarm_check(api: &ManagementApi, limit: Duration) -> Check {
    let id = "broker.alarms";
    match within(limit, api.health_check("alarms")).await {
        Ok((true, _)) => Check::ok(id, Area::Broker, "no memory or disk alarm"),
        Ok((false, answer)) => {
            let alarms = answer["alarms"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| {
                    format!(
                        "{}: {} alarm",
                        a["node"].as_str().unwrap_or("?"),
                        a["resource"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            Check::new(id, Area::Broker, Status::Fail, "resource alarm: publishers are blocked until it clears")
                .with_details(alarms)
                .with_fix("free memory or disk on the broker's host (drain or purge the largest queues), or raise vm_memory_high_watermark / lower disk_free_limit")
        }
        Err(problem) => Check::new(
            id,
            Area::Broker,
            Status::Fail,
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
            Check::new(id, Area::Broker, Status::Fail, what.to_string()).with_fix(hint.to_string())
        }
        Err(problem) => Check::new(
            id,
            Area::Broker,
            Status::Fail,
            format!("vhost lookup: {problem}"),
        ),
    }
}

async fn topology_and_flow(
    api: &ManagementApi,
    session: Option<&AmqpSession>,
    target: &BrokerTarget<'_>,
) -> Vec<Check> {
    let Some(registry) = target.registry else {
        return skipped_bus_checks("registry.yaml is missing or invalid");
    };
    let observed = match within(target.timeout, observe(api)).await {
        Ok(o) => o,
        Err(problem) => {
            return vec![Check::new(
                "topology.read",
                Area::Topology,
                Status::Fail,
                format!("cannot read the vhost: {problem}"),
            )];
        }
    };
    let desired = registry.desired_state();
    let plan = diff::plan(&desired, &observed, PlanOptions::default());
    let mut checks = topology::checks(&desired, &plan, &registry.exchange.name);
    let facts = flow_facts(
        api,
        session,
        &observed,
        &desired.owners,
        &registry.exchange.name,
    );
    match within(target.timeout, facts).await {
        Ok(facts) => checks.extend(flow::checks(
            registry,
            &desired,
            &facts,
            &target.thresholds,
            target.relay_expected,
        )),
        Err(problem) => checks.push(Check::new(
            "flow.read",
            Area::Flow,
            Status::Fail,
            format!("cannot read queue statistics: {problem}"),
        )),
    }
    checks
}

/// Queue depths, consumers and growth (exact depths and consumers through AMQP for god's
/// queues, since the management API's statistics lag by seconds), the durable bindings, and the
/// relays with their binding keys.
async fn flow_facts<V>(
    api: &ManagementApi,
    session: Option<&AmqpSession>,
    observed: &ObservedState,
    owners: &BTreeMap<String, V>,
    exchange: &str,
) -> crate::error::Result<FlowFacts> {
    let vhost = encode(api.vhost());
    let list = api
        .get_json(
            &format!("queues/{vhost}?columns=name,messages,consumers,messages_details.rate"),
            "the queue list",
        )
        .await?;
    let mut queues: BTreeMap<String, QueueFacts> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|q| {
            let facts = QueueFacts {
                messages: q["messages"].as_u64().unwrap_or(0),
                consumers: q["consumers"].as_u64().unwrap_or(0),
                growth: q["messages_details"]["rate"].as_f64().unwrap_or(0.0),
            };
            (q["name"].as_str().unwrap_or_default().to_string(), facts)
        })
        .collect();
    if let Some(session) = session {
        let wanted = owners
            .keys()
            .filter(|q| observed.topology.queues.contains_key(*q));
        exact_counts(session, wanted, &mut queues).await?;
    }
    let bindings = observed
        .topology
        .bindings
        .iter()
        .filter(|b| observed.topology.queues.contains_key(&b.destination))
        .cloned()
        .collect();
    let relays = relays(api, exchange).await?;
    Ok(FlowFacts {
        queues,
        bindings,
        relays,
    })
}

/// Replaces the statistics of `wanted` queues by the broker's exact counts (passive declares).
async fn exact_counts<'a>(
    session: &AmqpSession,
    wanted: impl Iterator<Item = &'a String>,
    queues: &mut BTreeMap<String, QueueFacts>,
) -> crate::error::Result<()> {
    let channel = session.channel().await?;
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    for name in wanted {
        // A queue deleted since the export closes the channel; the statistics stay then.
        let Ok(q) = channel
            .queue_declare(name.as_str().into(), options, FieldTable::default())
            .await
        else {
            return Ok(());
        };
        let entry = queues.entry(name.clone()).or_default();
        entry.consumers = u64::from(q.consumer_count());
        // Ready messages: the backlog (unacknowledged ones are with a consumer already).
        entry.messages = u64::from(q.message_count());
    }
    Ok(())
}

/// The queues consumed by a god relay (found by its consumer tag) and their binding keys.
async fn relays(api: &ManagementApi, exchange: &str) -> crate::error::Result<Vec<RelayQueue>> {
    let vhost = encode(api.vhost());
    let consumers = api
        .get_json(&format!("consumers/{vhost}"), "the consumer list")
        .await?;
    let mut relays = Vec::new();
    for c in consumers.as_array().into_iter().flatten() {
        if c["consumer_tag"] != crate::relay::CONSUMER_TAG {
            continue;
        }
        let queue = c["queue"]["name"].as_str().unwrap_or_default().to_string();
        let path = format!("queues/{vhost}/{}/bindings", encode(&queue));
        // The consumer list lags: a relay that just went away may still be in it.
        let Some(bindings) = api.get_json_if_exists(&path, "a queue's bindings").await? else {
            continue;
        };
        let keys = bindings
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| b["source"] == exchange)
            .filter_map(|b| b["routing_key"].as_str().map(str::to_string))
            .collect();
        let connection = c["channel_details"]["connection_name"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        relays.push(RelayQueue {
            queue,
            connection,
            keys,
        });
    }
    Ok(relays)
}

/// One line per managed container: missing, stopped, unhealthy or restarting ones fail or warn.
pub async fn containers(desired: &DesiredContainers, limit: Duration) -> Check {
    let id = "services.containers";
    let docker = match within(limit, engine::connect()).await {
        Ok(d) => d,
        Err(problem) => {
            return Check::new(
                id,
                Area::Services,
                Status::Fail,
                match problem {
                    // god's own error names the engine's address already.
                    Problem::Failed(_) => problem.to_string(),
                    Problem::Timeout(_) => {
                        format!("Docker engine at {}: {problem}", engine::engine_address())
                    }
                },
            )
            .with_fix(
                "start the engine (`scripts/bootstrap` on this machine), or set DOCKER_HOST",
            );
        }
    };
    let inspections = desired
        .containers
        .iter()
        .map(|spec| container_state(&docker, spec, limit));
    let states = futures::future::join_all(inspections).await;
    let worst = states.iter().map(|(s, _)| *s).max().unwrap_or(Status::Ok);
    let lines: Vec<String> = states.into_iter().map(|(_, line)| line).collect();
    let n = desired.containers.len();
    let check = match worst {
        Status::Ok | Status::Skip => Check::ok(id, Area::Services, format!("all {n} containers of project {} are running and healthy", desired.project)),
        Status::Warn => Check::new(id, Area::Services, Status::Warn, "some containers have restarted")
            .with_fix("`docker logs <container>` shows why they crashed"),
        Status::Fail => Check::new(id, Area::Services, Status::Fail, "some containers are missing, stopped or unhealthy")
            .with_fix("run `god apply` (it creates, starts or recreates them); `docker logs <container>` says why one stopped"),
    };
    check.with_details(lines)
}

async fn container_state(
    docker: &bollard::Docker,
    spec: &ContainerSpec,
    limit: Duration,
) -> (Status, String) {
    let name = &spec.name;
    let inspect = async {
        match docker.inspect_container(name, None).await {
            Ok(info) => Ok(Some(info)),
            Err(e) if engine::is_not_found(&e) => Ok(None),
            Err(e) => Err(engine::failed(&format!("inspecting {name}"), e)),
        }
    };
    let info = match within(limit, inspect).await {
        Ok(Some(info)) => info,
        Ok(None) => return (Status::Fail, format!("{name}: missing")),
        Err(problem) => return (Status::Fail, format!("{name}: {problem}")),
    };
    let labels = info.config.and_then(|c| c.labels).unwrap_or_default();
    if labels.get(PROJECT_LABEL) != Some(&spec.project) {
        return (
            Status::Fail,
            format!("{name}: a container of that name exists but god does not manage it"),
        );
    }
    let restarts = info.restart_count.unwrap_or(0);
    let state = info.state.unwrap_or_default();
    let health = state.health.and_then(|h| h.status);
    let running = state.running == Some(true);
    let (status, what) = match (running, health) {
        (false, _) => (
            Status::Fail,
            format!(
                "stopped (exit code {})",
                state.exit_code.unwrap_or_default()
            ),
        ),
        (true, Some(HealthStatusEnum::UNHEALTHY)) => {
            (Status::Fail, "running, unhealthy".to_string())
        }
        (true, Some(HealthStatusEnum::STARTING)) => {
            (Status::Warn, "running, health starting".to_string())
        }
        (true, Some(HealthStatusEnum::HEALTHY)) => (Status::Ok, "running, healthy".to_string()),
        (true, _) => (Status::Ok, "running".to_string()),
    };
    let status = if restarts > 0 {
        status.max(Status::Warn)
    } else {
        status
    };
    (status, format!("{name}: {what}, {restarts} restart(s)"))
}

/// One HTTP check: 2xx within the limit passes.
pub async fn http_service(id: &str, what: &str, url: &str, limit: Duration, fix: &str) -> Check {
    let shown = mask_url_str(url);
    let answer = match http_client(limit) {
        Ok(client) => probe(&client, url, limit).await,
        Err(why) => Err(why),
    };
    match answer {
        Ok(code) => Check::ok(
            id,
            Area::Services,
            format!("{what} at {shown} answers {code}"),
        ),
        Err(why) => Check::new(
            id,
            Area::Services,
            Status::Fail,
            format!("{what} at {shown}: {why}"),
        )
        .with_fix(fix),
    }
}

/// An HTTP client whose requests give up after `limit`.
fn http_client(limit: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(limit)
        .build()
        .map_err(|e| format!("cannot make HTTP requests: {e}"))
}

/// GETs a URL with a client made by [`http_client`]; Ok with the status when it is 2xx, else
/// why not.
async fn probe(client: &reqwest::Client, url: &str, limit: Duration) -> Result<u16, String> {
    match client.get(url).send().await {
        Ok(r) if r.status().is_success() => Ok(r.status().as_u16()),
        Ok(r) => Err(format!("answers HTTP {}", r.status().as_u16())),
        Err(e) if e.is_timeout() => Err(format!("no answer within {}s", limit.as_secs_f64())),
        Err(e) if e.is_connect() => Err("connection refused".to_string()),
        Err(e) => Err(format!("request failed ({})", e.without_url())),
    }
}

/// The registry's `endpoints.health` URLs of active services, requested concurrently.
pub async fn endpoints(registry: &Registry, limit: Duration) -> Check {
    let id = "services.endpoints";
    let urls: Vec<(&str, &str)> = registry
        .services
        .iter()
        .filter(|(_, s)| s.status == ServiceStatus::Active)
        .filter_map(|(name, s)| {
            s.endpoints
                .get("health")
                .map(|u| (name.as_str(), u.as_str()))
        })
        .collect();
    let (http, other): (Vec<_>, Vec<_>) = urls
        .iter()
        .partition(|(_, u)| u.starts_with("http://") || u.starts_with("https://"));
    if http.is_empty() {
        return Check::skip(
            id,
            Area::Services,
            "no active service has an HTTP `endpoints.health` in the registry",
        );
    }
    let client = match http_client(limit) {
        Ok(client) => client,
        Err(why) => return Check::new(id, Area::Services, Status::Fail, why),
    };
    let client = &client;
    let probes = http
        .iter()
        .map(|(name, url)| async move { (*name, *url, probe(client, url, limit).await) });
    let results = futures::future::join_all(probes).await;
    let failing: Vec<String> = results
        .iter()
        .filter_map(|(name, url, r)| {
            r.as_ref()
                .err()
                .map(|why| format!("{name}: {} {why}", mask_url_str(url)))
        })
        .collect();
    let not_http = if other.is_empty() {
        String::new()
    } else {
        format!(" ({} not HTTP, not checked)", other.len())
    };
    if failing.is_empty() {
        return Check::ok(
            id,
            Area::Services,
            format!("all {} health endpoints answer 2xx{not_http}", http.len()),
        );
    }
    Check::new(
        id,
        Area::Services,
        Status::Fail,
        format!("{} of {} health endpoints do not answer 2xx{not_http}", failing.len(), http.len()),
    )
    .with_details(first_few(&failing))
    .with_fix("start or repair those services (their logs say why); a retired service gets `status: deprecated` in registry.yaml")
}
