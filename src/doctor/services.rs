//! Services checks: god's bundled gateway and relay answer their health URLs, the managed
//! containers run and are healthy, and the registry's health endpoints answer.

use std::time::Duration;

use bollard::models::HealthStatusEnum;

use super::check::{Area, Check, Problem, Verdict, first_few, within};
use crate::model::containers::{ContainerSpec, DesiredContainers, PROJECT_LABEL};
use crate::model::desired::DesiredState;
use crate::observe::engine;
use crate::rabbit::endpoints::mask_url_str;
use crate::services::builtin::Builtin;

/// The health URL of a bundled service: `--gateway-url`/`--relay-url` with its health path,
/// else its component's (see [`Builtin::health_url`]).
pub fn bundled_url(
    explicit: Option<&str>,
    component: Option<&ContainerSpec>,
    service: Builtin,
) -> Option<String> {
    match explicit {
        Some(base) => service.health_url_at(base),
        None => service.health_url(component?),
    }
}

/// `services.gateway` or `services.relay`: the bundled service answers its health URL.
pub async fn bundled(service: Builtin, url: Option<String>, limit: Duration) -> Check {
    let id = format!("services.{}", service.name());
    let what = format!("the {}", service.name());
    let fix = "run `god apply` (it starts and waits for the bundled services); `docker logs` of its container says why it is not ready";
    match url {
        Some(url) => http_service(&id, &what, &url, limit, fix).await,
        None => Check::skip(
            &id,
            Area::Services,
            format!(
                "{what} is not in components.toml (--{}-url URL checks one elsewhere)",
                service.name()
            ),
        ),
    }
}

/// `services.retry`, when the registry has services with `retry`: the mover answers its
/// health URL; without a `builtin = "retry"` component, a warning that nothing moves their
/// rejected messages (unless it runs elsewhere).
pub async fn retry_mover(expected: bool, url: Option<String>, limit: Duration) -> Option<Check> {
    if !expected {
        return None;
    }
    let check = match url {
        Some(_) => bundled(Builtin::Retry, url, limit).await,
        None => Check::new(
            "services.retry",
            Area::Services,
            Verdict::Warn,
            "services have `retry`, and components.toml runs no retry mover: their rejected messages wait in <queue>.retry unless `god retry` runs elsewhere",
        )
        .with_fix("add a component with builtin = \"retry\" (and god apply), or run `god retry`"),
    };
    Some(check)
}

/// One line per managed container: missing, stopped, unhealthy or restarting ones fail or warn.
pub async fn containers(desired: Option<&DesiredContainers>, limit: Duration) -> Check {
    let id = "services.containers";
    let Some(desired) = desired.filter(|d| !d.containers.is_empty()) else {
        return Check::skip(id, Area::Services, "components.toml runs no containers");
    };
    let docker = match within(limit, engine::connect()).await {
        Ok(d) => d,
        Err(problem) => {
            return Check::new(
                id,
                Area::Services,
                Verdict::Fail,
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
    let worst = states.iter().map(|(s, _)| *s).max().unwrap_or(Verdict::Ok);
    let lines: Vec<String> = states.into_iter().map(|(_, line)| line).collect();
    let n = desired.containers.len();
    let check = match worst {
        Verdict::Ok | Verdict::Skip => Check::ok(id, Area::Services, format!("all {n} containers of project {} are running and healthy", desired.project)),
        Verdict::Warn => Check::new(id, Area::Services, Verdict::Warn, "some containers have restarted or are near their memory limit")
            .with_fix("`docker logs <container>` shows why they crashed"),
        Verdict::Fail => Check::new(id, Area::Services, Verdict::Fail, "some containers are missing, stopped or unhealthy")
            .with_fix("run `god apply` (it creates, starts or recreates them); `docker logs <container>` says why one stopped"),
    };
    check.with_details(lines)
}

async fn container_state(
    docker: &bollard::Docker,
    spec: &ContainerSpec,
    limit: Duration,
) -> (Verdict, String) {
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
        Ok(None) => return (Verdict::Fail, format!("{name}: missing")),
        Err(problem) => return (Verdict::Fail, format!("{name}: {problem}")),
    };
    let labels = info.config.and_then(|c| c.labels).unwrap_or_default();
    if labels.get(PROJECT_LABEL) != Some(&spec.project) {
        return (
            Verdict::Fail,
            format!("{name}: a container of that name exists but god does not manage it"),
        );
    }
    let restarts = info.restart_count.unwrap_or(0);
    let state = info.state.unwrap_or_default();
    let health = state.health.and_then(|h| h.status);
    let running = state.running == Some(true);
    if state.oom_killed == Some(true) {
        return (
            Verdict::Fail,
            format!("{name}: killed for going over its memory limit, {restarts} restart(s)"),
        );
    }
    let (status, what) = match (running, health) {
        (false, _) if spec.run_once && state.exit_code == Some(0) => {
            (Verdict::Ok, "completed (a one-shot container)".to_string())
        }
        (false, _) => (
            Verdict::Fail,
            format!(
                "stopped (exit code {})",
                state.exit_code.unwrap_or_default()
            ),
        ),
        (true, Some(HealthStatusEnum::UNHEALTHY)) => {
            (Verdict::Fail, "running, unhealthy".to_string())
        }
        (true, Some(HealthStatusEnum::STARTING)) => {
            (Verdict::Warn, "running, health starting".to_string())
        }
        (true, Some(HealthStatusEnum::HEALTHY)) => (Verdict::Ok, "running, healthy".to_string()),
        (true, _) => (Verdict::Ok, "running".to_string()),
    };
    let status = if restarts > 0 {
        status.max(Verdict::Warn)
    } else {
        status
    };
    let memory = match (running, spec.runtime.memory_bytes) {
        (true, Some(of)) => within(limit, memory_use(docker, name))
            .await
            .ok()
            .flatten()
            .map(|used| (used, of)),
        _ => None,
    };
    let status = match memory {
        Some((used, of)) if used as f64 >= MEMORY_NEAR_LIMIT * of as f64 => {
            status.max(Verdict::Warn)
        }
        _ => status,
    };
    let memory_text = memory
        .map(|(used, of)| {
            format!(
                ", {:.0}% of its {} MiB memory limit",
                used as f64 * 100.0 / of as f64,
                of >> 20
            )
        })
        .unwrap_or_default();
    (
        status,
        format!("{name}: {what}, {restarts} restart(s){memory_text}"),
    )
}

/// The share of its memory limit a container may use before the doctor warns.
pub const MEMORY_NEAR_LIMIT: f64 = 0.9;

/// A container's memory in use as the kernel would count it against its limit (its page cache
/// that can be dropped left out), from one sample of the engine's statistics.
async fn memory_use(docker: &bollard::Docker, name: &str) -> crate::error::Result<Option<u64>> {
    use bollard::query_parameters::StatsOptionsBuilder;
    use futures::StreamExt;
    let options = StatsOptionsBuilder::new()
        .stream(false)
        .one_shot(true)
        .build();
    let mut stream = docker.stats(name, Some(options));
    let Some(sample) = stream.next().await else {
        return Ok(None);
    };
    let sample = sample.map_err(|e| engine::failed(&format!("reading {name}'s statistics"), e))?;
    let Some(memory) = sample.memory_stats else {
        return Ok(None);
    };
    let stats = memory.stats.unwrap_or_default();
    let cache = stats
        .get("inactive_file")
        .or_else(|| stats.get("total_inactive_file"))
        .copied()
        .unwrap_or(0);
    Ok(memory.usage.map(|u| u.saturating_sub(cache)))
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
            Verdict::Fail,
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
pub async fn endpoints(desired: Option<&DesiredState>, limit: Duration) -> Check {
    let id = "services.endpoints";
    let Some(desired) = desired else {
        return Check::skip(id, Area::Services, "registry.yaml is missing or invalid");
    };
    let urls: Vec<(&str, &str)> = desired
        .active_services()
        .filter_map(|(name, s)| Some((name.as_str(), s.health_endpoint.as_deref()?)))
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
        Err(why) => return Check::new(id, Area::Services, Verdict::Fail, why),
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
    // A warning, like a queue without a consumer: god does not run these services, and the
    // bus works without them (`--strict` fails on it).
    Check::new(
        id,
        Area::Services,
        Verdict::Warn,
        format!("{} of {} health endpoints do not answer 2xx{not_http}", failing.len(), http.len()),
    )
    .with_details(first_few(&failing))
    .with_fix("start or repair those services (their logs say why); a retired service gets `status: deprecated` in registry.yaml")
}
