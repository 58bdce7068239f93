//! Where the inputs and the broker are ([`Sources`]): finding, reading and validating
//! registry.yaml, topology/ and components.toml, resolving the broker's endpoints and vhost,
//! and what a plan or apply covers ([`Targets`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::{GodError, Result};
use crate::inputs::components::{LoadedComponents, default_project, load_components};
use crate::inputs::dotenv;
use crate::inputs::topology::{TOPOLOGY_DIR, read_dir};
use crate::inputs::validate::{LoadedRegistry, load_inputs};
use crate::inputs::{SourceFile, absolute, locate_registry};
use crate::model::containers::{DesiredContainers, EnvSource, interpolate};
use crate::model::desired::DesiredState;
use crate::plan::saved::SavedPlan;
use crate::rabbit::endpoints::BrokerEndpoints;
use crate::services::builtin;
use crate::services::relay::planned::PlannedHistory;

/// Where components.toml is looked for when neither `--components` nor `GOD_COMPONENTS` is given.
pub const COMPONENTS_FILE: &str = "components.toml";

/// Where the inputs and the broker are: the global options (`--registry`, `--amqp-url`, …),
/// read by every command. The CLI's `Globals` documents each.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The service registry (default ./registry.yaml, else ./services/registry.yaml).
    pub registry: Option<PathBuf>,
    /// AMQP URLs, comma-separated; the path is the vhost.
    pub amqp_url: Option<String>,
    /// Management API URLs, comma-separated.
    pub management_url: Option<String>,
    /// The folder of topology files (default topology/ beside the registry).
    pub topology: Option<PathBuf>,
    /// The containers manifest (default ./components.toml when present).
    pub components: Option<PathBuf>,
    /// The profiles whose components run too.
    pub profiles: Vec<String>,
    /// The container project (default: the directory of components.toml).
    pub project: Option<String>,
    /// The `.env` file whose variables components.toml interpolates (default: .env beside
    /// components.toml, when present).
    pub env_file: Option<PathBuf>,
}

/// Which systems a run covers (`--only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Only {
    /// The broker topology from registry.yaml.
    Rabbitmq,
    /// The containers from components.toml.
    Docker,
}

/// What a plan or apply covers: the broker's desired state and/or the containers of a project,
/// and where the broker is (the bundled services are given its URL).
pub struct Targets {
    /// The broker part.
    pub broker: Option<DesiredState>,
    /// Where the broker is.
    pub endpoints: BrokerEndpoints,
    /// The container part.
    pub containers: Option<DesiredContainers>,
}

/// The variables components.toml reads (`${VAR}`, `from_env` secrets): god's own environment,
/// else the run's `.env` ([`Sources::load_env_file`]), as Docker Compose reads them.
pub fn environment(variable: &str) -> Option<String> {
    std::env::var(variable)
        .ok()
        .or_else(|| crate::inputs::dotenv::lookup(variable))
}

/// The upstream's name of the broker URL (Bloodbank's services), read when `RABBITMQ_URL` is
/// not set.
pub const UPSTREAM_URL_VARIABLE: &str = "RABBIT_URL";

impl Sources {
    /// Takes the broker URL from the upstream's variable (`RABBIT_URL`) when neither
    /// `--amqp-url` nor `RABBITMQ_URL` gives one, so the upstream's compose environment works.
    pub fn with_upstream_variables(mut self) -> Self {
        if self.amqp_url.is_none() {
            self.amqp_url = environment(UPSTREAM_URL_VARIABLE).filter(|v| !v.is_empty());
        }
        self
    }

    /// Reads the run's `.env`: `--env-file` (which must exist), else `.env` beside
    /// components.toml when there is one; [`environment`] looks variables up in it from then on.
    pub fn load_env_file(&self) -> Result<()> {
        let path = match &self.env_file {
            Some(path) if !path.is_file() => {
                return Err(GodError::Usage(format!(
                    "--env-file {}: no such file\nhint: pass the file of KEY=VALUE lines components.toml reads",
                    path.display()
                )));
            }
            Some(path) => path.clone(),
            None => match self.components_path() {
                Some(components) => {
                    let beside = components
                        .parent()
                        .unwrap_or(Path::new(""))
                        .join(dotenv::DEFAULT_NAME);
                    if !beside.is_file() {
                        return Ok(());
                    }
                    beside
                }
                None => return Ok(()),
            },
        };
        dotenv::EnvFile::read(&path)?.install();
        Ok(())
    }

    /// Where components.toml is: `--components`, else ./components.toml when present.
    fn components_path(&self) -> Option<PathBuf> {
        match &self.components {
            Some(p) => Some(p.clone()),
            None if Path::new(COMPONENTS_FILE).is_file() => Some(PathBuf::from(COMPONENTS_FILE)),
            None => None,
        }
    }

    /// Finds, reads and validates the registry; prints its warnings to stderr.
    pub fn load_registry(&self) -> Result<LoadedRegistry> {
        let loaded = self.read_registry()?;
        print_warnings(&loaded.warnings);
        Ok(loaded)
    }

    /// Finds, reads and validates the registry, leaving its warnings to the caller.
    pub fn read_registry(&self) -> Result<LoadedRegistry> {
        let (source, topology) = self.registry_files()?;
        load_inputs(source, topology).map_err(GodError::Invalid)
    }

    /// Finds and reads the registry and the files of topology/, unchecked.
    pub fn registry_files(&self) -> Result<(SourceFile, Vec<SourceFile>)> {
        let path = locate_registry(self.registry.as_deref())?;
        let source = SourceFile::read(&path)?;
        let dir = match &self.topology {
            Some(dir) if !dir.is_dir() => {
                return Err(GodError::Usage(format!(
                    "--topology {}: no such folder\nhint: pass the folder that holds the topology files (*.yaml)",
                    dir.display()
                )));
            }
            Some(dir) => dir.clone(),
            None => path.parent().unwrap_or(Path::new("")).join(TOPOLOGY_DIR),
        };
        Ok((source, read_dir(&dir)?))
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
        let Some(path) = self.components_path() else {
            return Ok(None);
        };
        let source = SourceFile::read(&path)?;
        load_components(source).map(Some).map_err(GodError::Invalid)
    }

    /// The desired containers of the project (`--project`, else the directory of the file),
    /// with what god gives its bundled services: the broker URL of `endpoints`, and the
    /// exchange and retry routes of the registry's desired state.
    pub fn desired_containers(
        &self,
        loaded: &LoadedComponents,
        broker: Option<&DesiredState>,
        endpoints: &BrokerEndpoints,
    ) -> Result<DesiredContainers> {
        let project = self
            .project
            .clone()
            .unwrap_or_else(|| default_project(&loaded.source.path));
        let read = std::sync::Mutex::new(BTreeSet::new());
        let recording = |variable: &str| {
            read.lock()
                .expect("variables lock")
                .insert(variable.to_string());
            environment(variable)
        };
        let mut desired = loaded
            .desired(&project, &recording, &self.profiles)
            .map_err(GodError::Invalid)?;
        let watch = self.watch_facts(loaded, &desired, read.into_inner().ok());
        let retry_routes = broker.map(|d| {
            let routes: Vec<_> = d.retry.values().collect();
            serde_json::to_string(&routes).expect("routes serialise")
        });
        let management_url = endpoints.management_bases().join(",");
        let facts = builtin::RegistryFacts {
            exchange: broker.map(|d| d.exchange.as_str()),
            retry_routes: retry_routes.as_deref(),
            watch: watch.as_ref(),
            management_url: &management_url,
        };
        builtin::give_defaults(
            &mut desired,
            facts,
            &endpoints.amqp_urls_secret(),
            &environment,
        );
        Ok(desired)
    }

    /// What a watch container of the project is given (None when none runs): the inputs god
    /// read, the project, the profiles, and the variables components.toml
    /// read from god's environment (`read`, plus those its secrets and templates name).
    fn watch_facts(
        &self,
        loaded: &LoadedComponents,
        desired: &DesiredContainers,

        read: Option<BTreeSet<String>>,
    ) -> Option<builtin::WatchFacts> {
        let runs_watch = desired
            .containers
            .iter()
            .any(|c| builtin::Builtin::of(c) == Some(builtin::Builtin::Watch));
        if !runs_watch {
            return None;
        }
        let mut variables = read.unwrap_or_default();
        for source in desired.containers.iter().flat_map(|c| c.env.values()) {
            match source {
                EnvSource::Secret { from_env, .. } => {
                    variables.insert(from_env.clone());
                }
                EnvSource::Template { template } => {
                    variables.extend(template_variables(template));
                }
                EnvSource::Value(_) | EnvSource::BrokerUrl { .. } => {}
            }
        }
        Some(builtin::WatchFacts {
            registry: locate_registry(self.registry.as_deref())
                .ok()
                .map(|r| absolute(&r)),
            components: absolute(&loaded.source.path),
            topology: self.topology.as_deref().map(absolute),
            project: desired.project.clone(),
            profiles: self.profiles.clone(),
            variables,
        })
    }

    /// What a plan or apply covers. Without `--only`: the broker, plus the containers when
    /// components.toml describes any.
    pub fn targets(&self, only: Option<Only>) -> Result<Targets> {
        let registry = match only {
            // The bundled services still take the registry's exchange and vhost when there is one.
            Some(Only::Docker) => self.read_registry().ok(),
            _ => Some(self.load_registry()?),
        };
        let endpoints = self.endpoints_for(registry.as_ref())?;
        let mut broker = registry.as_ref().map(LoadedRegistry::desired_state);
        let all_containers = match only {
            // The relays' histories stay part of the broker's plan when containers are not.
            Some(Only::Rabbitmq) => self.read_components().ok().flatten().and_then(|loaded| {
                self.desired_containers(&loaded, broker.as_ref(), &endpoints)
                    .ok()
            }),
            _ => match self.load_components()? {
                Some(loaded) if loaded.containers().next().is_some() || only.is_some() => {
                    Some(self.desired_containers(&loaded, broker.as_ref(), &endpoints)?)
                }
                Some(_) => None,
                None if only == Some(Only::Docker) => {
                    return Err(GodError::Usage(
                        "--only docker needs components.toml: none found in this directory\nhint: pass --components PATH (or set GOD_COMPONENTS)".to_string(),
                    ));
                }
                None => None,
            },
        };
        if let (Some(broker), Some(containers)) = (broker.as_mut(), all_containers.as_ref()) {
            add_relay_histories(broker, containers);
        }
        Ok(Targets {
            broker: broker.filter(|_| only != Some(Only::Docker)),
            endpoints,
            containers: all_containers.filter(|_| only != Some(Only::Rabbitmq)),
        })
    }

    /// The registry's desired state of the broker with the histories of the relays
    /// components.toml runs (left out when components.toml cannot be read).
    pub fn broker_with_relays(&self, registry: &LoadedRegistry) -> DesiredState {
        let mut broker = registry.desired_state();
        let containers = self.read_components().ok().flatten().and_then(|loaded| {
            let endpoints = self.endpoints(registry).ok()?;
            self.desired_containers(&loaded, Some(&broker), &endpoints)
                .ok()
        });
        if let Some(containers) = containers {
            add_relay_histories(&mut broker, &containers);
        }
        broker
    }

    /// The broker endpoints, with the vhost from the registry when the URL names none.
    pub fn endpoints(&self, registry: &LoadedRegistry) -> Result<BrokerEndpoints> {
        self.endpoints_on(registry.registry.vhost.as_deref(), |endpoints, wanted| {
            format!(
                "{} asks for vhost \"{wanted}\" but the AMQP URL {} names vhost \"{}\"\nhint: remove one of the two, or make them agree",
                registry.source.path.display(),
                endpoints.amqp_display(),
                endpoints.vhost
            )
        })
    }

    /// The broker endpoints of the registry when there is one, else of the URLs alone.
    pub fn endpoints_for(&self, registry: Option<&LoadedRegistry>) -> Result<BrokerEndpoints> {
        match registry {
            Some(r) => self.endpoints(r),
            None => self.url_endpoints(),
        }
    }

    /// The broker endpoints the URLs name; without any, those of the broker components.toml
    /// runs (`broker = true`, by its published ports), else the defaults.
    pub fn url_endpoints(&self) -> Result<BrokerEndpoints> {
        if self.amqp_url.is_none()
            && self.management_url.is_none()
            && let Some((amqp, management)) = self.broker_component_urls()
        {
            return BrokerEndpoints::resolve(Some(&amqp), Some(&management));
        }
        BrokerEndpoints::resolve(self.amqp_url.as_deref(), self.management_url.as_deref())
    }

    /// The URLs of the broker components.toml runs, when it runs one (a components.toml that
    /// does not load is left for the command to report).
    fn broker_component_urls(&self) -> Option<(String, String)> {
        let loaded = self.read_components().ok()??;
        loaded.broker_urls(&environment, &self.profiles)
    }

    /// The endpoints a saved plan is applied with: its vhost, on the broker the URLs name.
    pub fn saved_plan_endpoints(&self, saved: &SavedPlan) -> Result<BrokerEndpoints> {
        self.endpoints_on(saved.plan.vhost.as_deref(), |endpoints, wanted| {
            format!(
                "the saved plan is for vhost \"{wanted}\" but the AMQP URL names vhost \"{}\"",
                endpoints.vhost
            )
        })
    }

    /// The endpoints the URLs name, on the `wanted` vhost when there is one; a URL that names
    /// another vhost is a usage error, worded by `conflict`.
    fn endpoints_on(
        &self,
        wanted: Option<&str>,
        conflict: impl FnOnce(&BrokerEndpoints, &str) -> String,
    ) -> Result<BrokerEndpoints> {
        let endpoints = self.url_endpoints()?;
        match wanted {
            Some(vhost) if endpoints.vhost_explicit && endpoints.vhost != vhost => {
                Err(GodError::Usage(conflict(&endpoints, vhost)))
            }
            Some(vhost) => Ok(endpoints.with_vhost(vhost)),
            None => Ok(endpoints),
        }
    }
}

/// Adds to the broker's desired state the history stream of each relay the containers run:
/// god's plan shows it, apply declares it when missing, `--prune` keeps it while a relay uses it.
pub fn add_relay_histories(broker: &mut DesiredState, containers: &DesiredContainers) {
    let epoch = uuid::Uuid::new_v4().to_string();
    let relays = containers
        .containers
        .iter()
        .filter(|c| builtin::Builtin::of(c) == Some(builtin::Builtin::Relay));
    for history in relays.filter_map(PlannedHistory::of) {
        history.add_to(broker, &epoch);
    }
}

/// The variables a Compose-style template reads.
fn template_variables(template: &str) -> Vec<String> {
    interpolate(template, &|_| Some(String::new()))
        .map(|(_, read)| read)
        .unwrap_or_default()
}

fn print_warnings(warnings: &[crate::inputs::diagnostic::Diagnostic]) {
    for warning in warnings {
        eprintln!("{}", warning.render());
    }
}
