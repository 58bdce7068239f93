//! Reconciling, as a library: where the inputs and the broker are ([`Globals`]), what a run
//! covers ([`Targets`]), observing and planning it ([`plan_targets`]), and executing a plan
//! under the apply locks ([`Session`], [`execute`]). `commands/` parse, call these, print and
//! choose the exit code.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::apply::rabbit::{ApplyOptions, RabbitExecutor};
use crate::apply::{Outcome, docker, lock};
use crate::error::{GodError, Result};
use crate::inputs::components::{LoadedComponents, default_project, load_components};
use crate::inputs::topology::{TOPOLOGY_DIR, read_dir};
use crate::inputs::validate::{LoadedRegistry, load_inputs};
use crate::inputs::{SourceFile, locate_registry};
use crate::model::ObservedState;
use crate::model::containers::{DesiredContainers, ObservedContainers, SecretValues};
use crate::model::desired::DesiredState;
use crate::observe::docker::{Wanted, observe as observe_containers};
use crate::observe::engine;
use crate::observe::rabbit::{observe, observe_exact_depths};
use crate::plan::containers::broker_phase;
use crate::plan::containers::plan as plan_container_changes;
use crate::plan::diff::{self, PlanOptions};
use crate::plan::saved::SavedPlan;
use crate::plan::{Note, NoteKind, Plan};
use crate::rabbit::amqp::AmqpSession;
use crate::rabbit::endpoints::BrokerEndpoints;
use crate::rabbit::management::ManagementApi;
use crate::services::builtin;

/// Where components.toml is looked for when neither `--components` nor `GOD_COMPONENTS` is given.
pub const COMPONENTS_FILE: &str = "components.toml";

/// Options every command accepts: where the inputs are and where the broker is.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct Globals {
    /// The service registry. Default: ./registry.yaml, else ./services/registry.yaml.
    #[arg(
        long,
        global = true,
        env = "GOD_REGISTRY",
        value_name = "PATH",
        hide_env_values = true
    )]
    pub registry: Option<PathBuf>,
    /// AMQP URL; its path is the vhost. Nodes of a cluster: comma-separated, the first that
    /// answers is used. The upstream's RABBIT_URL is read when RABBITMQ_URL is not set.
    /// Default: the broker components.toml runs (`broker = true`), by its published ports, else
    /// amqp://guest:guest@127.0.0.1:5672/%2f
    #[arg(
        long,
        global = true,
        env = "RABBITMQ_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub amqp_url: Option<String>,
    /// Management API URL; credentials come from the AMQP URL unless given here. Nodes of a
    /// cluster: comma-separated, the first that answers is used. Default: the broker
    /// components.toml runs, else http://127.0.0.1:15672
    #[arg(
        long,
        global = true,
        env = "RABBITMQ_MANAGEMENT_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub management_url: Option<String>,
    /// The folder of topology files (every *.yaml in it). Default: topology/ beside the
    /// registry, when present.
    #[arg(
        long,
        global = true,
        env = "GOD_TOPOLOGY",
        value_name = "DIR",
        hide_env_values = true
    )]
    pub topology: Option<PathBuf>,
    /// The containers manifest. Default: ./components.toml when present.
    #[arg(
        long,
        global = true,
        env = "GOD_COMPONENTS",
        value_name = "PATH",
        hide_env_values = true
    )]
    pub components: Option<PathBuf>,
    /// Run the components of this profile too (repeatable); a component with `profiles` runs
    /// only when one of them is named, as with `docker compose --profile`.
    #[arg(
        long = "profile",
        global = true,
        env = "GOD_PROFILES",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub profiles: Vec<String>,
    /// Container project: names are <project>-<component>. Default: the directory of components.toml.
    #[arg(
        long,
        global = true,
        env = "GOD_PROJECT",
        value_name = "NAME",
        hide_env_values = true
    )]
    pub project: Option<String>,
}

/// Which systems a run covers (`--only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
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

/// god's own environment, where `from_env` secrets are read.
pub fn environment(variable: &str) -> Option<String> {
    std::env::var(variable).ok()
}

/// The upstream's name of the broker URL (Bloodbank's services), read when `RABBITMQ_URL` is
/// not set.
pub const UPSTREAM_URL_VARIABLE: &str = "RABBIT_URL";

impl Globals {
    /// Takes the broker URL from the upstream's variable (`RABBIT_URL`) when neither
    /// `--amqp-url` nor `RABBITMQ_URL` gives one, so the upstream's compose environment works.
    pub fn read_upstream_variables(&mut self) {
        if self.amqp_url.is_none() {
            self.amqp_url = environment(UPSTREAM_URL_VARIABLE).filter(|v| !v.is_empty());
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
        let topology = read_dir(&dir)?;
        load_inputs(source, topology).map_err(GodError::Invalid)
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
        let mut desired = loaded
            .desired(&project, &environment, &self.profiles)
            .map_err(GodError::Invalid)?;
        let retry_routes = broker.map(|d| {
            let routes: Vec<_> = d.retry.values().collect();
            serde_json::to_string(&routes).expect("routes serialise")
        });
        let facts = builtin::RegistryFacts {
            exchange: broker.map(|d| d.exchange.as_str()),
            retry_routes: retry_routes.as_deref(),
        };
        builtin::give_defaults(
            &mut desired,
            facts,
            &endpoints.amqp_urls_secret(),
            &environment,
        );
        Ok(desired)
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
        let broker = registry.as_ref().map(LoadedRegistry::desired_state);
        let containers = match (only, self.load_components()?) {
            (Some(Only::Rabbitmq), _) => None,
            (Some(Only::Docker), None) => {
                return Err(GodError::Usage(
                    "--only docker needs components.toml: none found in this directory\nhint: pass --components PATH (or set GOD_COMPONENTS)".to_string(),
                ));
            }
            (Some(Only::Docker), Some(loaded)) => {
                Some(self.desired_containers(&loaded, broker.as_ref(), &endpoints)?)
            }
            (None, Some(loaded)) if loaded.containers().next().is_some() => {
                Some(self.desired_containers(&loaded, broker.as_ref(), &endpoints)?)
            }
            (None, _) => None,
        };
        let broker = match only {
            Some(Only::Docker) => None,
            _ => broker,
        };
        Ok(Targets {
            broker,
            endpoints,
            containers,
        })
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

fn print_warnings(warnings: &[crate::inputs::diagnostic::Diagnostic]) {
    for warning in warnings {
        eprintln!("{}", warning.render());
    }
}

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
    let wanted = Wanted {
        containers: desired.containers.iter().map(|c| c.name.clone()).collect(),
        networks: desired.networks.iter().map(|n| n.name.clone()).collect(),
        volumes: desired.volumes.iter().map(|v| v.name.clone()).collect(),
    };
    let observed = observe_containers(docker, &desired.project, &wanted).await?;
    let plan = plan_container_changes(desired, &observed, options);
    Ok((observed, plan))
}

/// An apply's hold on what it changes: the broker's management API and AMQP connection with
/// the vhost's apply lock, and the container project's lock.
pub struct Session {
    /// The broker part, when the apply covers the broker and it answers.
    pub broker: Option<BrokerSession>,
    _project_lock: Option<lock::ProjectLock>,
    lock_timeout: Duration,
}

/// The broker side of an apply: its API and the AMQP connection that holds the lock.
pub struct BrokerSession {
    /// The management API.
    pub api: ManagementApi,
    /// The connection holding the vhost's apply lock.
    pub amqp: AmqpSession,
}

impl BrokerSession {
    /// Checks the vhost, connects and takes the vhost's lock, waiting up to `timeout` for it.
    async fn open(endpoints: &BrokerEndpoints, timeout: Duration) -> Result<Self> {
        let api = ManagementApi::new(endpoints)?;
        api.check_vhost().await?;
        let amqp = AmqpSession::connect(endpoints, "apply").await?;
        lock::acquire(&amqp, &api, timeout).await?;
        Ok(Self { api, amqp })
    }
}

/// How the broker part of an apply is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerHold {
    /// The apply does not cover the broker.
    None,
    /// The broker must answer now.
    Now,
    /// components.toml runs the broker: when it does not answer, the apply goes on without
    /// it and connects once its container is up.
    WhenUp,
}

impl Session {
    /// Checks the vhost, connects and takes the vhost's lock (as `hold` says), then the
    /// project's lock (when `project` is given), waiting up to `timeout` for each.
    pub async fn open(
        endpoints: &BrokerEndpoints,
        hold: BrokerHold,
        project: Option<&str>,
        timeout: Duration,
    ) -> Result<Self> {
        let broker = match hold {
            BrokerHold::None => None,
            BrokerHold::Now => Some(BrokerSession::open(endpoints, timeout).await?),
            BrokerHold::WhenUp => match BrokerSession::open(endpoints, timeout).await {
                Err(GodError::Unreachable { .. }) => None,
                other => Some(other?),
            },
        };
        let _project_lock = match project {
            Some(project) => Some(lock::acquire_project(project, timeout).await?),
            None => None,
        };
        Ok(Self {
            broker,
            _project_lock,
            lock_timeout: timeout,
        })
    }

    /// Lets go of the broker (its lock and connection): its container is about to be
    /// (re)started.
    pub async fn release_broker(&mut self) {
        if let Some(broker) = self.broker.take() {
            broker.amqp.close().await;
        }
    }

    /// Connects to the broker that was just started, trying until [`BROKER_START_TIMEOUT`]
    /// has passed, and takes the vhost's lock.
    pub async fn connect_broker(&mut self, endpoints: &BrokerEndpoints) -> Result<()> {
        let deadline = tokio::time::Instant::now() + BROKER_START_TIMEOUT;
        loop {
            match BrokerSession::open(endpoints, self.lock_timeout).await {
                Ok(broker) => {
                    self.broker = Some(broker);
                    return Ok(());
                }
                Err(GodError::Unreachable { .. }) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Releases the locks (the broker's connection is closed politely).
    pub async fn close(mut self) {
        self.release_broker().await;
    }

    /// The broker's AMQP connection, when the session has one.
    pub fn amqp(&self) -> Option<&AmqpSession> {
        self.broker.as_ref().map(|b| &b.amqp)
    }
}

/// How long god waits for a broker whose container it started to answer.
pub const BROKER_START_TIMEOUT: Duration = Duration::from_secs(120);

/// Checks a saved plan against the live state: Ok when nothing it was made from moved, else
/// the error naming what moved.
pub async fn check_saved(saved: &SavedPlan, path: &Path, session: &Session) -> Result<()> {
    let broker = match &session.broker {
        Some(s) => Some(observe(&s.api).await?),
        None => None,
    };
    let containers = match &saved.plan.project {
        Some(project) => {
            let docker = engine::connect().await?;
            let wanted = Wanted {
                containers: saved.engine_names("container"),
                networks: saved.engine_names("network"),
                volumes: saved.engine_names("volume"),
            };
            Some(observe_containers(&docker, project, &wanted).await?)
        }
        None => None,
    };
    let moved = saved.moved_since(broker.as_ref(), containers.as_ref());
    if moved.is_empty() {
        Ok(())
    } else {
        Err(GodError::StalePlan {
            path: path.to_path_buf(),
            moved: moved.join("\n"),
        })
    }
}

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

/// Writes a saved plan (`god plan --out FILE`).
pub fn write_saved_plan(saved: &SavedPlan, path: &Path) -> Result<()> {
    std::fs::write(path, saved.to_json())
        .map_err(|e| GodError::Other(format!("cannot write the plan to {}: {e}", path.display())))
}

/// Reads a saved plan (`god apply FILE`), refusing files that are not one.
pub fn read_saved_plan(path: &Path) -> Result<SavedPlan> {
    let text = std::fs::read_to_string(path).map_err(|source| GodError::InputUnreadable {
        path: path.to_path_buf(),
        source,
        hint: "give the file written by `god plan --out FILE`".to_string(),
    })?;
    SavedPlan::from_json(&text).map_err(|why| {
        GodError::Usage(format!(
            "{} is not a plan saved by `god plan --out`: {why}",
            path.display()
        ))
    })
}

/// Builds the runtime the broker-facing commands run on.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| GodError::Other(format!("cannot start the async runtime: {e}")))
}
