//! `god doctor`: checks the inputs, then the broker (with topology and flow), the containers,
//! the bundled services and the registry's health endpoints concurrently, each operation with
//! a time limit; prints a table or JSON; exits 1 when a check fails (or warns, with --strict).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use super::validate::{compose_beside, registry_summary};
use super::{Exit, Globals, runtime};
use crate::doctor::gather::{self, BrokerTarget, first_line};
use crate::doctor::render::{self, Colour};
use crate::doctor::{Area, Check, Report, Status, Thresholds};
use crate::endpoints::BrokerEndpoints;
use crate::error::{GodError, Result};
use crate::inputs::components::LoadedComponents;
use crate::inputs::diagnostic::Diagnostic;
use crate::inputs::validate::LoadedRegistry;
use crate::inputs::{SourceFile, compose};
use crate::model::containers::DesiredContainers;
use crate::model::containers::{ContainerSpec, HealthProbe};

/// Options of `god doctor`.
#[derive(Debug, Clone, clap::Args)]
pub struct DoctorArgs {
    /// Print the report as JSON (schemas/doctor.schema.json).
    #[arg(long)]
    pub json: bool,
    /// Warnings fail the run too (exit 1).
    #[arg(long)]
    pub strict: bool,
    /// Seconds each network operation may take before its check fails.
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = check_timeout)]
    pub timeout: Duration,
    /// Flow limits.
    #[command(flatten)]
    pub thresholds: Thresholds,
    /// The gateway's base URL. Default: from its component in components.toml.
    #[arg(long, value_name = "URL")]
    pub gateway_url: Option<String>,
    /// The relay's base URL. Default: from its component in components.toml.
    #[arg(long, value_name = "URL")]
    pub relay_url: Option<String>,
}

/// A check timeout: a number of seconds, at least 0.1.
fn check_timeout(text: &str) -> std::result::Result<Duration, String> {
    super::apply::seconds(text).map(|d| d.max(Duration::from_millis(100)))
}

/// The inputs that loaded, and the config checks made while loading them.
struct Inputs {
    checks: Vec<Check>,
    registry: Option<LoadedRegistry>,
    containers: Option<DesiredContainers>,
}

/// Runs every check and prints the report.
pub fn run(globals: &Globals, args: &DoctorArgs) -> Result<Exit> {
    let started = Instant::now();
    let mut inputs = load_inputs(globals);
    let endpoints = match &inputs.registry {
        Some(r) => globals.endpoints(r),
        None => BrokerEndpoints::resolve(
            globals.amqp_url.as_deref(),
            globals.management_url.as_deref(),
        ),
    };
    let mut checks = std::mem::take(&mut inputs.checks);
    checks.extend(runtime()?.block_on(live_checks(&inputs, endpoints.as_ref(), args)));
    let elapsed = started.elapsed().as_millis() as u64;
    let report = Report::new(checks, args.strict, elapsed);
    if args.json {
        println!("{}", render::json(&report));
    } else {
        let colour = if std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
            Colour::On
        } else {
            Colour::Off
        };
        print!(
            "{}",
            render::table(&report, &heading(endpoints.as_ref().ok(), &inputs), colour)
        );
    }
    Ok(if report.failed {
        Exit::Failure
    } else {
        Exit::Success
    })
}

fn heading(endpoints: Option<&BrokerEndpoints>, inputs: &Inputs) -> String {
    let mut text = "god doctor".to_string();
    if let Some(e) = endpoints {
        text.push_str(&format!(
            ": vhost \"{}\" at {}",
            e.vhost,
            e.management_display()
        ));
    }
    if let Some(c) = &inputs.containers {
        text.push_str(&format!(", project {}", c.project));
    }
    text
}

async fn live_checks(
    inputs: &Inputs,
    endpoints: std::result::Result<&BrokerEndpoints, &GodError>,
    args: &DoctorArgs,
) -> Vec<Check> {
    let limit = args.timeout;
    let registry = inputs.registry.as_ref().map(|r| &r.registry);
    let builtin = |kind: &str| {
        inputs
            .containers
            .iter()
            .flat_map(|d| &d.containers)
            .find(|c| c.builtin.as_deref() == Some(kind))
    };
    let broker = async {
        match endpoints {
            Ok(endpoints) => {
                let target = BrokerTarget {
                    endpoints,
                    registry,
                    thresholds: args.thresholds,
                    relay_expected: builtin("relay").is_some() || args.relay_url.is_some(),
                    timeout: limit,
                };
                gather::broker(&target).await
            }
            Err(e) => vec![Check::new(
                "broker.management",
                Area::Broker,
                Status::Fail,
                e.to_string(),
            )],
        }
    };
    let containers = async {
        match &inputs.containers {
            Some(d) if !d.containers.is_empty() => gather::containers(d, limit).await,
            _ => Check::skip(
                "services.containers",
                Area::Services,
                "components.toml runs no containers",
            ),
        }
    };
    let gateway_url = service_url(
        args.gateway_url.as_deref(),
        builtin("gateway"),
        "/health/ready",
    );
    let relay_url = service_url(args.relay_url.as_deref(), builtin("relay"), "/health");
    let gateway = bundled_service(
        "services.gateway",
        "the gateway",
        "--gateway-url",
        gateway_url,
        limit,
    );
    let relay = bundled_service(
        "services.relay",
        "the relay",
        "--relay-url",
        relay_url,
        limit,
    );
    let endpoint_check = async {
        match registry {
            Some(r) => gather::endpoints(r, limit).await,
            None => Check::skip(
                "services.endpoints",
                Area::Services,
                "registry.yaml is missing or invalid",
            ),
        }
    };
    let (mut checks, containers, gateway, relay, endpoint_check) =
        tokio::join!(broker, containers, gateway, relay, endpoint_check);
    checks.extend([gateway, relay, containers, endpoint_check]);
    checks
}

async fn bundled_service(
    id: &str,
    what: &str,
    flag: &str,
    url: Option<String>,
    limit: Duration,
) -> Check {
    let fix = "run `god apply` (it starts and waits for the bundled services); `docker logs` of its container says why it is not ready";
    match url {
        Some(url) => gather::http_service(id, what, &url, limit, fix).await,
        None => Check::skip(
            id,
            Area::Services,
            format!("{what} is not in components.toml ({flag} URL checks one elsewhere)"),
        ),
    }
}

/// The health URL of a bundled service: `--gateway-url`/`--relay-url`, else the host and port
/// of its component's HTTP health check, with `path`.
fn service_url(
    explicit: Option<&str>,
    component: Option<&ContainerSpec>,
    path: &str,
) -> Option<String> {
    let base = match explicit {
        Some(url) => url.to_string(),
        None => match component?.healthcheck.as_ref().map(|h| &h.probe) {
            Some(HealthProbe::Http(url)) => url.clone(),
            _ => return None,
        },
    };
    let base = url::Url::parse(&base).ok()?;
    base.join(path).ok().map(String::from)
}

/// Loads registry.yaml and components.toml without printing, and reports on them (and on
/// docker-compose.yml beside components.toml).
fn load_inputs(globals: &Globals) -> Inputs {
    let (registry_check, registry) = registry_input(globals);
    let (components_check, components) = components_input(globals);
    let compose_check = compose_input(components.as_ref());
    let (containers_problem, containers) = match components
        .as_ref()
        .map(|c| globals.desired_containers(c, registry.as_ref()))
    {
        Some(Ok(d)) => (None, Some(d)),
        Some(Err(e)) => (Some(e), None),
        None => (None, None),
    };
    let components_check = match containers_problem {
        Some(e) => Check::new(
            "config.components",
            Area::Config,
            Status::Fail,
            "components.toml cannot be turned into containers",
        )
        .with_details(e.to_string().lines().map(str::to_string).collect())
        .with_fix("set the environment variables it names (`from_env`), or fix the file"),
        None => components_check,
    };
    Inputs {
        checks: vec![registry_check, components_check, compose_check],
        registry,
        containers,
    }
}

fn registry_input(globals: &Globals) -> (Check, Option<LoadedRegistry>) {
    let id = "config.registry";
    match globals.read_registry() {
        Ok(loaded) => (
            diagnostics_check(id, registry_summary(&loaded), &loaded.warnings),
            Some(loaded),
        ),
        Err(GodError::Invalid(problems)) => (invalid(id, "registry.yaml", &problems), None),
        Err(e) => (
            unreadable(id, &e).with_fix("pass --registry PATH (or set GOD_REGISTRY)"),
            None,
        ),
    }
}

fn components_input(globals: &Globals) -> (Check, Option<LoadedComponents>) {
    let id = "config.components";
    match globals.read_components() {
        Ok(None) => (
            Check::skip(
                id,
                Area::Config,
                "no components.toml here (--components PATH)",
            ),
            None,
        ),
        Ok(Some(loaded)) => {
            let summary = format!(
                "{} is valid: {} containers",
                loaded.source.path.display(),
                loaded.containers().count()
            );
            (
                diagnostics_check(id, summary, &loaded.warnings),
                Some(loaded),
            )
        }
        Err(GodError::Invalid(problems)) => (invalid(id, "components.toml", &problems), None),
        Err(e) => (unreadable(id, &e), None),
    }
}

/// A file that could not be found or read: the first line of the error.
fn unreadable(id: &str, error: &GodError) -> Check {
    Check::new(
        id,
        Area::Config,
        Status::Fail,
        first_line(&error.to_string()).to_string(),
    )
}

fn compose_input(components: Option<&LoadedComponents>) -> Check {
    let id = "config.compose";
    let Some(loaded) = components else {
        return Check::skip(
            id,
            Area::Config,
            "no components.toml to compare docker-compose.yml with",
        );
    };
    let Some(path) = compose_beside(&loaded.source.path) else {
        return Check::skip(
            id,
            Area::Config,
            "no docker-compose.yml beside components.toml",
        );
    };
    match SourceFile::read(&path) {
        Ok(source) => {
            let warnings = compose::compare(&source, loaded);
            let summary = format!("{} agrees with components.toml", path.display());
            diagnostics_check(id, summary, &warnings)
        }
        Err(e) => unreadable(id, &e),
    }
}

/// Ok with `summary`, or a warning listing the file's warnings.
fn diagnostics_check(id: &str, summary: String, warnings: &[Diagnostic]) -> Check {
    if warnings.is_empty() {
        return Check::ok(id, Area::Config, summary);
    }
    Check::new(
        id,
        Area::Config,
        Status::Warn,
        format!("{summary}, with {} warning(s)", warnings.len()),
    )
    .with_details(warnings.iter().map(Diagnostic::headline).collect())
    .with_fix("`god validate` shows each warning with its line and a hint")
}

fn invalid(id: &str, file: &str, problems: &[Diagnostic]) -> Check {
    let errors: Vec<String> = problems
        .iter()
        .filter(|d| d.is_error())
        .map(Diagnostic::headline)
        .collect();
    Check::new(
        id,
        Area::Config,
        Status::Fail,
        format!("{file} is invalid: {} error(s)", errors.len()),
    )
    .with_details(crate::doctor::first_few(&errors))
    .with_fix("`god validate` shows each problem with its line and a hint")
}
