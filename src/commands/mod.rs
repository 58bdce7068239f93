//! The commands behind the CLI: each loads its inputs, calls the library, prints, and says how
//! the process should exit.

pub mod apply;
pub mod doctor;
pub mod gateway;
pub mod graph;
pub mod plan;
pub mod relay;
pub mod render;
pub mod tail;
pub mod validate;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::endpoints::BrokerEndpoints;
use crate::error::{GodError, Result};
use crate::inputs::components::{
    DesiredContainers, LoadedComponents, default_project, load_components,
};
use crate::inputs::registry::DesiredState;
use crate::inputs::validate::{LoadedRegistry, load_registry};
use crate::inputs::{SourceFile, locate_registry};
use crate::model::ObservedState;
use crate::model::containers::{EnvSource, ObservedContainers};
use crate::observe::docker::observe as observe_containers;
use crate::observe::rabbit::{observe, observe_queue_stats};
use crate::plan::Plan;
use crate::plan::containers::plan as plan_containers;
use crate::plan::diff::{self, PlanOptions};
use crate::rabbit::management::ManagementApi;

/// How a command ended, as an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done, nothing failed (for `plan --detailed-exitcode`: no changes).
    Success,
    /// 1: error, or nothing applied.
    Failure,
    /// 2: `plan --detailed-exitcode` found changes.
    Changes,
    /// 3: apply stopped part-way.
    Partial,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Changes => 2,
            Exit::Partial => 3,
        }
    }
}

/// Which systems a run covers (`--only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    /// The broker topology from registry.yaml.
    Rabbitmq,
    /// The containers from components.toml.
    Docker,
}

/// What a plan or apply covers: the broker (desired state and where it is) and/or the
/// containers of a project.
pub struct Targets {
    /// The broker part.
    pub broker: Option<(DesiredState, BrokerEndpoints)>,
    /// The container part.
    pub containers: Option<DesiredContainers>,
}

/// Options every command accepts.
#[derive(Debug, Clone, Default)]
pub struct Globals {
    /// `--registry` / `GOD_REGISTRY`.
    pub registry: Option<PathBuf>,
    /// `--amqp-url` / `RABBITMQ_URL`.
    pub amqp_url: Option<String>,
    /// `--management-url` / `RABBITMQ_MANAGEMENT_URL`.
    pub management_url: Option<String>,
    /// `--components` / `GOD_COMPONENTS`.
    pub components: Option<PathBuf>,
    /// `--project` / `GOD_PROJECT`.
    pub project: Option<String>,
}

impl Globals {
    /// Finds, reads and validates the registry; prints its warnings to stderr.
    pub fn load_registry(&self) -> Result<LoadedRegistry> {
        let loaded = self.read_registry()?;
        print_warnings(&loaded.warnings);
        Ok(loaded)
    }

    /// Finds, reads and validates the registry, leaving its warnings to the caller.
    pub fn read_registry(&self) -> Result<LoadedRegistry> {
        let path = locate_registry(self.registry.as_deref())?;
        let source = SourceFile::read(&path)?;
        load_registry(source).map_err(GodError::Invalid)
    }

    /// Finds, reads and validates components.toml (explicit path, else ./components.toml when
    /// present); prints its warnings to stderr.
    pub fn load_components(&self) -> Result<Option<LoadedComponents>> {
        let loaded = self.read_components()?;
        if let Some(loaded) = &loaded {
            print_warnings(&loaded.warnings);
        }
        Ok(loaded)
    }

    /// Like [`Self::load_components`], leaving the warnings to the caller.
    pub fn read_components(&self) -> Result<Option<LoadedComponents>> {
        let path = match &self.components {
            Some(p) => p.clone(),
            None if Path::new(COMPONENTS_FILE).is_file() => PathBuf::from(COMPONENTS_FILE),
            None => return Ok(None),
        };
        let source = SourceFile::read(&path)?;
        load_components(source).map(Some).map_err(GodError::Invalid)
    }

    /// The desired containers of the project (`--project`, else the directory of the file).
    pub fn desired_containers(&self, loaded: &LoadedComponents) -> Result<DesiredContainers> {
        let project = self
            .project
            .clone()
            .unwrap_or_else(|| default_project(&loaded.source.path));
        let lookup = |var: &str| std::env::var(var).ok();
        loaded.desired(&project, &lookup).map_err(GodError::Invalid)
    }

    /// What a plan or apply covers. Without `--only`: the broker, plus the containers when
    /// components.toml describes any.
    pub fn targets(&self, only: Option<Only>) -> Result<Targets> {
        let broker = if only == Some(Only::Docker) {
            None
        } else {
            let loaded = self.load_registry()?;
            let endpoints = self.endpoints(&loaded)?;
            Some((loaded.registry.desired_state(), endpoints))
        };
        let containers = match (only, self.load_components()?) {
            (Some(Only::Rabbitmq), _) => None,
            (Some(Only::Docker), None) => {
                return Err(GodError::Usage(
                    "--only docker needs components.toml: none found in this directory\nhint: pass --components PATH (or set GOD_COMPONENTS)".to_string(),
                ));
            }
            (Some(Only::Docker), Some(loaded)) => Some(self.desired_containers(&loaded)?),
            (None, Some(loaded)) if loaded.containers().next().is_some() => {
                Some(self.desired_containers(&loaded)?)
            }
            (None, _) => None,
        };
        // The bundled services use the registry's exchange, also when only docker is planned.
        let exchange = match &broker {
            Some((state, _)) => state.topology.exchanges.keys().next().cloned(),
            None if containers.is_some() => self
                .load_registry()
                .ok()
                .map(|r| r.registry.exchange.name.clone()),
            None => None,
        };
        let containers = containers.map(|mut desired| {
            if let Some(exchange) = &exchange {
                give_builtins_the_exchange(&mut desired, exchange);
            }
            desired
        });
        Ok(Targets { broker, containers })
    }

    /// The broker endpoints, with the vhost from the registry when the URL names none.
    pub fn endpoints(&self, registry: &LoadedRegistry) -> Result<BrokerEndpoints> {
        let endpoints =
            BrokerEndpoints::resolve(self.amqp_url.as_deref(), self.management_url.as_deref())?;
        match &registry.registry.vhost {
            Some(wanted) if endpoints.vhost_explicit && *wanted != endpoints.vhost => {
                Err(GodError::Usage(format!(
                    "{} asks for vhost \"{wanted}\" but the AMQP URL {} names vhost \"{}\"\nhint: remove one of the two, or make them agree",
                    registry.source.path.display(),
                    endpoints.amqp_display(),
                    endpoints.vhost
                )))
            }
            Some(wanted) => Ok(endpoints.with_vhost(wanted)),
            None => Ok(endpoints),
        }
    }
}

fn print_warnings(warnings: &[crate::inputs::diagnostic::Diagnostic]) {
    for warning in warnings {
        eprintln!("{}", warning.render());
    }
}

/// Observes the vhost and plans. Queue depths are fetched only when the plan replaces or
/// deletes queues (then it is planned again with them), so a converged vhost costs one
/// definitions export.
pub async fn plan_live(
    api: &ManagementApi,
    desired: &DesiredState,
    options: PlanOptions,
) -> Result<(ObservedState, Plan)> {
    let mut observed = observe(api).await?;
    let plan = diff::plan(desired, &observed, options);
    if !plan.touches_queue_data() {
        return Ok((observed, plan));
    }
    observe_queue_stats(api, &mut observed).await?;
    let plan = diff::plan(desired, &observed, options);
    Ok((observed, plan))
}

/// Observes the project's containers and plans them.
pub async fn plan_containers_live(
    docker: &bollard::Docker,
    desired: &DesiredContainers,
    options: PlanOptions,
) -> Result<(ObservedContainers, Plan)> {
    let names: BTreeSet<String> = desired.containers.iter().map(|c| c.name.clone()).collect();
    let observed = observe_containers(docker, &desired.project, &names).await?;
    let plan = plan_containers(desired, &observed, options);
    Ok((observed, plan))
}

/// The bundled services publish to and read from the registry's exchange unless their
/// component says otherwise (`GOD_EXCHANGE` in its env).
fn give_builtins_the_exchange(desired: &mut DesiredContainers, exchange: &str) {
    for spec in desired
        .containers
        .iter_mut()
        .filter(|c| c.builtin.is_some())
    {
        if !spec.env.contains_key("GOD_EXCHANGE") {
            spec.env.insert(
                "GOD_EXCHANGE".into(),
                EnvSource::Value(exchange.to_string()),
            );
            spec.config_hash = spec.compute_hash(|var| std::env::var(var).ok());
        }
    }
}

/// Where components.toml is looked for when neither `--components` nor `GOD_COMPONENTS` is given.
pub const COMPONENTS_FILE: &str = "components.toml";

/// Builds the runtime the broker-facing commands run on.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| GodError::Other(format!("cannot start the async runtime: {e}")))
}
