//! The container executor: creates, recreates, starts and removes god's containers in plan
//! order (dependencies first), waits for each to be healthy before the next, and stops at the
//! first failure, naming the container and quoting the end of its log.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerState, EndpointSettings, HealthConfig, HealthStatusEnum,
    HostConfig, NetworkConnectRequest, NetworkCreateRequest, NetworkingConfig, PortBinding,
    ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptions,
};
use futures::StreamExt;

use super::Outcome;
use crate::error::{GodError, Result};
use crate::model::containers::{
    BuildSpec, COMPONENT_LABEL, CONFIG_HASH_LABEL, CONFIG_LABEL, ContainerSpec, EnvSource,
    HealthProbe, NETWORK_LABEL, NetworkSpec, PROJECT_LABEL, SecretValues, VOLUME_LABEL, VolumeSpec,
};
use crate::observe::engine;
use crate::plan::{Action, Change, Plan, Resource};

/// Log lines quoted when a container fails.
const LOG_TAIL: &str = "15";
/// How long a one-shot container may run, beyond its health check's budget.
const RUN_ONCE_BUDGET: Duration = Duration::from_secs(300);

/// Runs the engine's changes of a plan (containers, networks, volumes) that `include`
/// selects by index; returns an outcome for each of them (None for the others).
pub async fn execute(
    docker: &Docker,
    plan: &Plan,
    include: &(dyn Fn(usize) -> bool + Sync),
    secrets: &SecretValues<'_>,
    progress: &(dyn Fn(u64) + Sync),
) -> Vec<Option<Outcome>> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; plan.changes.len()];
    let mut failed = false;
    for (i, change) in plan.changes.iter().enumerate() {
        if change.kind.is_broker() || !include(i) {
            continue;
        }
        let outcome = if failed {
            Outcome::NotAttempted
        } else if let Some(why) = &change.blocked {
            Outcome::Refused(why.clone())
        } else {
            match run(docker, change, secrets).await {
                Ok(()) => Outcome::Done,
                Err(e) => {
                    failed = true;
                    Outcome::Failed(e.to_string())
                }
            }
        };
        outcomes[i] = Some(outcome);
        progress(1);
    }
    outcomes
}

async fn run(docker: &Docker, change: &Change, secrets: &SecretValues<'_>) -> Result<()> {
    match change.resource() {
        Some(Resource::Container(spec)) => {
            run_container(docker, change.action, change, spec, secrets).await
        }
        Some(Resource::Network(network)) => match change.action {
            Action::Create => create_network(docker, network).await,
            Action::Delete => remove_network(docker, &network.name).await,
            _ => Ok(()),
        },
        Some(Resource::Volume(volume)) => match change.action {
            Action::Create => create_volume(docker, volume).await,
            Action::Delete => remove_volume(docker, &volume.name).await,
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

async fn run_container(
    docker: &Docker,
    action: Action,
    change: &Change,
    spec: &ContainerSpec,
    secrets: &SecretValues<'_>,
) -> Result<()> {
    match action {
        Action::Create => create_and_start(docker, spec, secrets).await,
        Action::Replace => {
            let old = change
                .before
                .as_ref()
                .map_or(spec.name.as_str(), |r| r.name());
            remove(docker, old).await?;
            create_and_start(docker, spec, secrets).await
        }
        Action::Update => {
            restart(docker, &spec.name).await?;
            await_ready(docker, spec).await
        }
        Action::Delete => remove(docker, &spec.name).await,
        Action::Adopt => Ok(()),
    }
}

async fn create_and_start(
    docker: &Docker,
    spec: &ContainerSpec,
    secrets: &SecretValues<'_>,
) -> Result<()> {
    match (&spec.build, &spec.builtin) {
        (Some(build), _) => ensure_built(docker, &spec.image, build).await?,
        (None, Some(_)) => ensure_builtin_image(docker, &spec.image).await?,
        (None, None) => ensure_image(docker, &spec.image).await?,
    }
    let options = CreateContainerOptionsBuilder::new()
        .name(&spec.name)
        .build();
    docker
        .create_container(Some(options), create_body(spec, secrets)?)
        .await
        .map_err(|e| engine::failed(&format!("creating container {}", spec.name), e))?;
    join_other_networks(docker, spec).await?;
    start(docker, &spec.name).await?;
    await_ready(docker, spec).await
}

/// Connects a created container to its networks after the first (the engine's API before
/// 1.44 takes one network at creation), with its aliases on each.
async fn join_other_networks(docker: &Docker, spec: &ContainerSpec) -> Result<()> {
    for (network, aliases) in spec.networks.iter().skip(1) {
        let request = NetworkConnectRequest {
            container: spec.name.clone(),
            endpoint_config: Some(endpoint(aliases)),
        };
        docker
            .connect_network(network, request)
            .await
            .map_err(|e| {
                engine::failed(
                    &format!("connecting container {} to network {network}", spec.name),
                    e,
                )
            })?;
    }
    Ok(())
}

fn endpoint(aliases: &[String]) -> EndpointSettings {
    EndpointSettings {
        aliases: Some(aliases.to_vec()),
        ..EndpointSettings::default()
    }
}

/// The labels god puts on the networks and volumes it creates.
fn shared_labels(project: &str, label: &str, key: &str) -> HashMap<String, String> {
    HashMap::from([
        (PROJECT_LABEL.to_string(), project.to_string()),
        (label.to_string(), key.to_string()),
    ])
}

async fn create_network(docker: &Docker, network: &NetworkSpec) -> Result<()> {
    let request = NetworkCreateRequest {
        name: network.name.clone(),
        driver: Some(network.driver.clone()),
        labels: Some(shared_labels(&network.project, NETWORK_LABEL, &network.key)),
        ..NetworkCreateRequest::default()
    };
    docker
        .create_network(request)
        .await
        .map(|_| ())
        .map_err(|e| engine::failed(&format!("creating network {}", network.name), e))
}

async fn remove_network(docker: &Docker, name: &str) -> Result<()> {
    gone(
        docker.remove_network(name).await,
        &format!("removing network {name}"),
    )
}

async fn create_volume(docker: &Docker, volume: &VolumeSpec) -> Result<()> {
    let request = VolumeCreateRequest {
        name: Some(volume.name.clone()),
        driver: Some(volume.driver.clone()),
        labels: Some(shared_labels(&volume.project, VOLUME_LABEL, &volume.key)),
        ..VolumeCreateRequest::default()
    };
    docker
        .create_volume(request)
        .await
        .map(|_| ())
        .map_err(|e| engine::failed(&format!("creating volume {}", volume.name), e))
}

async fn remove_volume(docker: &Docker, name: &str) -> Result<()> {
    let removed = docker
        .remove_volume(name, None::<RemoveVolumeOptions>)
        .await;
    gone(removed, &format!("removing volume {name}"))
}

async fn start(docker: &Docker, name: &str) -> Result<()> {
    docker
        .start_container(name, None)
        .await
        .map_err(|e| engine::failed(&format!("starting container {name}"), e))
}

/// Starts a stopped container, or restarts a running one (an unhealthy container).
async fn restart(docker: &Docker, name: &str) -> Result<()> {
    docker
        .restart_container(name, None)
        .await
        .map_err(|e| engine::failed(&format!("starting container {name}"), e))
}

/// Removes a container. One whose component sets `stop_grace_period` is stopped first, as
/// `docker stop` (and Compose) stop it: its stop signal, then SIGKILL once that time is up, so
/// its process can finish what it was doing. Any other is removed at once, as `docker rm -f`.
async fn remove(docker: &Docker, name: &str) -> Result<()> {
    if let Some(grace) = grace_period(docker, name).await {
        // The engine waits up to the container's own stop timeout; the request may take that
        // long. Whatever this leaves running (a stop that failed) the forced removal kills.
        let patient = docker.clone().with_timeout(grace + Duration::from_secs(30));
        if let Err(e) = patient.stop_container(name, None).await {
            tracing::debug!("stopping container {name} before removing it: {e}");
        }
    }
    let options = RemoveContainerOptionsBuilder::new().force(true).build();
    gone(
        docker.remove_container(name, Some(options)).await,
        &format!("removing container {name}"),
    )
}

/// The stop timeout of its own (`stop_grace_period`) a running container has, if any.
async fn grace_period(docker: &Docker, name: &str) -> Option<Duration> {
    let container = docker.inspect_container(name, None).await.ok()?;
    let running = container.state.and_then(|s| s.running).unwrap_or(false);
    let seconds = container.config.and_then(|c| c.stop_timeout)?;
    (running && seconds > 0).then(|| Duration::from_secs(seconds.unsigned_abs()))
}

/// A removal's result: done, or nothing to remove, is Ok; any other failure names `what`.
fn gone(result: std::result::Result<(), bollard::errors::Error>, what: &str) -> Result<()> {
    match result {
        Err(e) if !engine::is_not_found(&e) => Err(engine::failed(what, e)),
        _ => Ok(()),
    }
}

/// Uses the local image, or pulls it when a registry is reachable.
async fn ensure_image(docker: &Docker, image: &str) -> Result<()> {
    if docker.inspect_image(image).await.is_ok() {
        return Ok(());
    }
    let options = CreateImageOptionsBuilder::new().from_image(image).build();
    let mut pull = docker.create_image(Some(options), None, None);
    while let Some(step) = pull.next().await {
        step.map_err(|e| {
            GodError::Other(format!(
                "image {image} is not on this engine and cannot be pulled: {e}\nhint: build it locally (docker build -t {image} .) or load it (docker load / docker import)"
            ))
        })?;
    }
    Ok(())
}

/// Builds the image from its context unless an image of that tag (same context) exists.
async fn ensure_built(docker: &Docker, image: &str, build: &BuildSpec) -> Result<()> {
    if docker.inspect_image(image).await.is_ok() {
        return Ok(());
    }
    let context = build_context_tar(&build.context).map_err(|e| {
        GodError::Other(format!(
            "cannot read the build context {}: {e}",
            build.context
        ))
    })?;
    let options = BuildImageOptionsBuilder::new()
        .dockerfile(&build.dockerfile)
        .t(image)
        .rm(true)
        .build();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    let mut output = String::new();
    while let Some(step) = stream.next().await {
        let info = step.map_err(|e| {
            GodError::Other(format!(
                "building {image} from {} failed: {e}\n{output}",
                build.context
            ))
        })?;
        if let Some(text) = info.stream {
            output.push_str(&text);
        }
        if let Some(error) = info.error_detail.and_then(|d| d.message) {
            return Err(GodError::Other(format!(
                "building {image} from {} failed: {error}\n{output}",
                build.context
            )));
        }
    }
    Ok(())
}

/// Builds god's own image when missing: a root filesystem holding only this binary and the
/// shared libraries it links (as `ldd` lists them), `FROM scratch`. No registry is involved.
async fn ensure_builtin_image(docker: &Docker, image: &str) -> Result<()> {
    if docker.inspect_image(image).await.is_ok() {
        return Ok(());
    }
    let context = tempfile::tempdir()
        .map_err(|e| GodError::Other(format!("cannot make a build directory: {e}")))?;
    crate::services::builtin::image_context(context.path())
        .map_err(|e| GodError::Other(format!("cannot assemble god's image: {e}")))?;
    let build = BuildSpec {
        context: context.path().display().to_string(),
        dockerfile: "Dockerfile".to_string(),
    };
    ensure_built(docker, image, &build).await
}

fn build_context_tar(context: &str) -> std::io::Result<Vec<u8>> {
    let mut archive = tar::Builder::new(Vec::new());
    archive.append_dir_all(".", context)?;
    archive.into_inner()
}

fn create_body(spec: &ContainerSpec, secrets: &SecretValues) -> Result<ContainerCreateBody> {
    let mut env = Vec::new();
    for (key, source) in &spec.env {
        let value = secrets.resolve(source).ok_or_else(|| {
            let origin = match source {
                EnvSource::Secret { from_env, .. } => format!("${from_env} is not set"),
                EnvSource::Template { template } => {
                    format!("{template:?} names a variable that is not set")
                }
                _ => "god has no broker URL to give it".to_string(),
            };
            GodError::Other(format!("env {key} of container {}: {origin}", spec.name))
        })?;
        env.push(format!("{key}={value}"));
    }
    let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    labels.insert(PROJECT_LABEL.into(), spec.project.clone());
    labels.insert(COMPONENT_LABEL.into(), spec.component.clone());
    labels.insert(CONFIG_HASH_LABEL.into(), spec.config_hash.clone());
    labels.insert(CONFIG_LABEL.into(), spec.config_lines());
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &spec.ports {
        bindings
            .entry(format!("{}/{}", p.container_port, p.protocol))
            .or_default()
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: Some(p.host_ip.clone()),
                host_port: Some(p.host_port.map(|h| h.to_string()).unwrap_or_default()),
            });
    }
    let restart = match spec.restart.as_str() {
        "always" => RestartPolicyNameEnum::ALWAYS,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        "no" => RestartPolicyNameEnum::NO,
        _ => RestartPolicyNameEnum::UNLESS_STOPPED,
    };
    let healthcheck = spec.healthcheck.as_ref().and_then(|h| match &h.probe {
        HealthProbe::Command(test) => Some(HealthConfig {
            test: Some(test.clone()),
            interval: Some(ms_to_ns(h.interval_ms)),
            timeout: Some(ms_to_ns(h.timeout_ms)),
            retries: Some(i64::from(h.retries)),
            start_period: Some(ms_to_ns(h.start_period_ms)),
            start_interval: None,
        }),
        HealthProbe::Http(_) => None,
    });
    Ok(ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
        env: Some(env),
        labels: Some(labels),
        user: spec.user.clone(),
        working_dir: spec.working_dir.clone(),
        exposed_ports: (!bindings.is_empty()).then(|| bindings.keys().cloned().collect()),
        healthcheck,
        hostname: spec.runtime.hostname.clone(),
        networking_config: spec
            .networks
            .iter()
            .next()
            .map(|(network, aliases)| NetworkingConfig {
                endpoints_config: Some(HashMap::from([(network.clone(), endpoint(aliases))])),
            }),
        stop_timeout: spec.runtime.stop_grace_period_s,
        host_config: Some(HostConfig {
            memory: spec.runtime.memory_bytes,
            nano_cpus: spec.runtime.nano_cpus,
            extra_hosts: (!spec.runtime.extra_hosts.is_empty())
                .then(|| spec.runtime.extra_hosts.clone()),
            ulimits: (!spec.runtime.ulimits.is_empty()).then(|| {
                spec.runtime
                    .ulimits
                    .iter()
                    .map(|(name, limit)| ResourcesUlimits {
                        name: Some(name.clone()),
                        soft: Some(limit.soft),
                        hard: Some(limit.hard),
                    })
                    .collect()
            }),
            network_mode: spec
                .network_mode
                .clone()
                .or_else(|| spec.networks.keys().next().cloned()),
            port_bindings: (!bindings.is_empty()).then_some(bindings),
            binds: (!spec.volumes.is_empty()).then(|| spec.volumes.clone()),
            restart_policy: Some(RestartPolicy {
                name: Some(restart),
                maximum_retry_count: None,
            }),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    })
}

fn ms_to_ns(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX / 1_000_000) * 1_000_000
}

/// How long a container may take to become healthy: its start period plus its retries, with
/// room for a slow engine.
fn health_deadline(spec: &ContainerSpec) -> Duration {
    let budget = match &spec.healthcheck {
        Some(h) => h.start_period_ms + (h.interval_ms + h.timeout_ms) * u64::from(h.retries + 1),
        None => 0,
    };
    Duration::from_millis(budget + 15_000)
}

/// Waits until the container is ready: a one-shot container until it exits 0, any other until
/// it is healthy.
async fn await_ready(docker: &Docker, spec: &ContainerSpec) -> Result<()> {
    if spec.run_once {
        await_completed(docker, spec).await
    } else {
        await_healthy(docker, spec).await
    }
}

/// A container's state as the engine reports it now.
async fn state_of(docker: &Docker, name: &str) -> Result<ContainerState> {
    let info = docker
        .inspect_container(name, None)
        .await
        .map_err(|e| engine::failed(&format!("inspecting container {name}"), e))?;
    Ok(info.state.unwrap_or_default())
}

/// Waits until a one-shot container exits, and fails unless its exit code is 0.
async fn await_completed(docker: &Docker, spec: &ContainerSpec) -> Result<()> {
    let deadline = Instant::now() + health_deadline(spec) + RUN_ONCE_BUDGET;
    loop {
        let state = state_of(docker, &spec.name).await?;
        if state.running != Some(true) {
            return match state.exit_code.unwrap_or_default() {
                0 => Ok(()),
                code => Err(unhealthy(docker, spec, &format!("it exited with code {code}, where its dependents need it to complete successfully")).await),
            };
        }
        if Instant::now() >= deadline {
            return Err(unhealthy(docker, spec, "it did not complete in time").await);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until the container is healthy (engine health check, or god's HTTP probe), or merely
/// running when it has no check. Fails naming it, with the end of its log.
async fn await_healthy(docker: &Docker, spec: &ContainerSpec) -> Result<()> {
    let deadline = Instant::now() + health_deadline(spec);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok();
    loop {
        let state = state_of(docker, &spec.name).await?;
        if state.running != Some(true) {
            let code = state.exit_code.unwrap_or_default();
            return Err(unhealthy(docker, spec, &format!("it stopped (exit code {code})")).await);
        }
        let health = state.health.and_then(|h| h.status);
        let ready = match spec.healthcheck.as_ref().map(|h| &h.probe) {
            None => true,
            Some(HealthProbe::Command(_)) => match health {
                Some(HealthStatusEnum::HEALTHY) => true,
                Some(HealthStatusEnum::UNHEALTHY) => {
                    return Err(unhealthy(docker, spec, "its health check failed").await);
                }
                _ => false,
            },
            Some(HealthProbe::Http(url)) => match &http {
                Some(client) => client
                    .get(url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success()),
                None => false,
            },
        };
        if ready {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(unhealthy(docker, spec, "it did not become healthy in time").await);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn unhealthy(docker: &Docker, spec: &ContainerSpec, why: &str) -> GodError {
    let options = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .tail(LOG_TAIL)
        .build();
    let mut lines = String::new();
    let mut logs = docker.logs(&spec.name, Some(options));
    while let Some(Ok(chunk)) = logs.next().await {
        lines.push_str(&chunk.to_string());
    }
    let quoted: String = lines.lines().map(|l| format!("\n    | {l}")).collect();
    GodError::Other(format!(
        "container {} is unhealthy: {why}. Nothing after it was started.\nlast log lines:{}\nhint: `docker logs {}` shows the whole log",
        spec.name,
        if quoted.is_empty() {
            "\n    (empty)".to_string()
        } else {
            quoted
        },
        spec.name
    ))
}
