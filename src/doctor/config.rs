//! Config checks: registry.yaml and components.toml validate and turn into desired state, and
//! docker-compose.yml agrees with components.toml. Loading the inputs is these checks.

use super::check::{Area, Check, Verdict, first_few, first_line};
use crate::error::GodError;
use crate::inputs::SourceFile;
use crate::inputs::components::LoadedComponents;
use crate::inputs::compose;
use crate::inputs::diagnostic::Diagnostic;
use crate::inputs::validate::LoadedRegistry;
use crate::model::containers::DesiredContainers;
use crate::model::desired::DesiredState;
use crate::rabbit::endpoints::BrokerEndpoints;
use crate::reconcile::sources::{Sources, add_relay_histories};

/// The inputs that loaded, and the config checks made while loading them.
pub struct Inputs {
    /// `config.registry`, `config.components`, `config.compose`.
    pub checks: Vec<Check>,
    /// The registry's desired state of the broker, when the registry validated.
    pub desired: Option<DesiredState>,
    /// The desired containers, when components.toml turned into some.
    pub containers: Option<DesiredContainers>,
    /// The broker's endpoints (the registry's vhost on the URLs), or why they are invalid.
    pub endpoints: Result<BrokerEndpoints, GodError>,
}

/// Loads registry.yaml and components.toml without printing, and reports on them (and on
/// docker-compose.yml beside components.toml).
pub fn load(sources: &Sources) -> Inputs {
    let (registry_check, registry) = registry_input(sources);
    let (components_check, components) = components_input(sources);
    let compose_check = compose_input(components.as_ref());
    let endpoints = sources.endpoints_for(registry.as_ref());
    let broker = registry.as_ref().map(LoadedRegistry::desired_state);
    let desired = components.as_ref().map(|c| match &endpoints {
        Ok(endpoints) => sources
            .desired_containers(c, broker.as_ref(), endpoints)
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    });
    let (containers_problem, containers) = match desired {
        Some(Ok(d)) => (None, Some(d)),
        Some(Err(e)) => (Some(e), None),
        None => (None, None),
    };
    let components_check = match containers_problem {
        Some(e) => Check::new(
            "config.components",
            Area::Config,
            Verdict::Fail,
            "components.toml cannot be turned into containers",
        )
        .with_details(e.lines().map(str::to_string).collect())
        .with_fix("set the environment variables it names (`from_env`), or fix the file"),
        None => components_check,
    };
    let mut broker = broker;
    if let (Some(broker), Some(containers)) = (broker.as_mut(), containers.as_ref()) {
        add_relay_histories(broker, containers);
    }
    Inputs {
        checks: vec![registry_check, components_check, compose_check],
        desired: broker,
        containers,
        endpoints,
    }
}

fn registry_input(sources: &Sources) -> (Check, Option<LoadedRegistry>) {
    let id = "config.registry";
    match sources.read_registry() {
        Ok(loaded) => (
            diagnostics_check(id, loaded.summary(), &loaded.warnings),
            Some(loaded),
        ),
        Err(GodError::Invalid(problems)) => (invalid(id, "registry.yaml", &problems), None),
        Err(e) => (
            unreadable(id, &e).with_fix("pass --registry PATH (or set GOD_REGISTRY)"),
            None,
        ),
    }
}

fn components_input(sources: &Sources) -> (Check, Option<LoadedComponents>) {
    let id = "config.components";
    match sources.read_components() {
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
        Verdict::Fail,
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
    let Some(path) = compose::beside(&loaded.source.path) else {
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
        Verdict::Warn,
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
        Verdict::Fail,
        format!("{file} is invalid: {} error(s)", errors.len()),
    )
    .with_details(first_few(&errors))
    .with_fix("`god validate` shows each problem with its line and a hint")
}
