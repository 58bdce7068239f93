//! `god watch`: plan every interval and whenever the inputs change; in warn mode report the
//! drift, in heal mode also carry out what is safe ([`crate::plan::heal`]) under the apply
//! locks. Drift events go to stdout as JSON lines ([`report`]), to the bus, and to the metrics
//! and health on `--listen` ([`status`]).
//!
//! Robustness: a broker or engine that is away is reported and retried with backoff; inputs
//! that stop loading, or that suddenly declare nothing, leave the last good desired state in
//! place; SIGTERM is honoured between steps (a heal that started finishes).

pub mod inputs;
pub mod report;
pub mod status;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch as signal_watch;

use crate::apply::Outcome;
use crate::apply::rabbit::ApplyOptions;
use crate::error::{GodError, Result};
use crate::plan::Plan;
use crate::plan::diff::PlanOptions;
use crate::plan::heal::{HealPlan, heal};
use crate::reconcile::execute::execute;
use crate::reconcile::planning::plan_targets;
use crate::reconcile::session::Session;
use crate::reconcile::sources::{Sources, Targets};

use inputs::{InputFiles, notifications};
use report::{ChangeReport, DETECTED, DriftEvent, FAILED, HEALED, Scope};
use status::Status;

/// How watch acts on drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Report drift; change nothing.
    Warn,
    /// Report drift and carry out the safe part of the plan.
    Heal,
}

impl Mode {
    /// Its name in events and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Warn => "warn",
            Mode::Heal => "heal",
        }
    }
}

/// How a watch runs.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Where the inputs and the broker are.
    pub sources: Sources,
    /// Time between plans.
    pub interval: Duration,
    /// Warn or heal.
    pub mode: Mode,
    /// `--prune`, `--allow-data-loss`, `--migrate`: what heal may do beyond restoring.
    pub options: PlanOptions,
    /// How long a heal waits for another apply's lock.
    pub lock_timeout: Duration,
    /// Where `/health` and `/metrics` are served.
    pub listen: Option<SocketAddr>,
}

/// The first wait after a failed tick; it doubles up to the interval.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// Runs the watch until SIGTERM or Ctrl-C.
pub async fn run(config: WatchConfig) -> Result<()> {
    let files = InputFiles::of(&config.sources)?;
    let status = Status::new(config.mode.name());
    if let Some(listen) = config.listen {
        status::serve(status.clone(), listen)
            .await
            .map_err(|e| GodError::Other(format!("god watch cannot listen on {listen}: {e}")))?;
    }
    let (_debouncer, mut edits) = match notifications(&files) {
        Ok((debouncer, edits)) => (Some(debouncer), edits),
        Err(e) => {
            eprintln!("god watch: no file notifications ({e}); edits are read at the next tick");
            (None, tokio::sync::mpsc::unbounded_channel().1)
        }
    };
    let stop = stop_signal()?;
    eprintln!(
        "god watch: {} mode, a plan every {:?} and on every edit of {}{}",
        config.mode.name(),
        config.interval,
        files.registry.display(),
        config
            .listen
            .map(|l| format!("; health and metrics on http://{l}"))
            .unwrap_or_default()
    );
    let mut watch = Watch::new(config, files, status, stop.clone());
    let mut backoff = FIRST_BACKOFF;
    while !*stop.borrow() {
        let wait = if watch.tick().await {
            backoff = FIRST_BACKOFF;
            watch.config.interval
        } else {
            let wait = backoff.min(watch.config.interval);
            backoff = (backoff * 2).min(watch.config.interval);
            wait
        };
        let deadline = tokio::time::Instant::now() + wait;
        let mut stopped = stop.clone();
        loop {
            tokio::select! {
                biased;
                _ = stopped.wait_for(|s| *s) => break,
                // Reading the files is an event too: only a change of their content plans.
                _ = edits.recv() => if watch.inputs_changed() { break },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
    }
    eprintln!("god watch: stopped");
    Ok(())
}

/// A flag that turns true on SIGTERM or Ctrl-C.
fn stop_signal() -> Result<signal_watch::Receiver<bool>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| GodError::Other(format!("cannot follow SIGTERM: {e}")))?;
    let (tx, rx) = signal_watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        let _ = tx.send(true);
    });
    Ok(rx)
}

/// A running watch: its inputs as last loaded and what it last reported.
struct Watch {
    config: WatchConfig,
    files: InputFiles,
    status: Arc<Status>,
    stop: signal_watch::Receiver<bool>,
    /// The last inputs that loaded, and the fingerprint of the files they came from.
    targets: Option<(Targets, u64)>,
    /// Why the files on disk do not load, while they do not.
    input_error: Option<String>,
    /// The fingerprint of the files last read.
    tried: u64,
    /// The changes of the last drift reported (action and id), so a drift is reported once.
    reported: Mutex<BTreeSet<String>>,
}

/// Why a tick could not plan (reported, then retried with backoff).
struct TickFailed(String);

impl Watch {
    fn new(
        config: WatchConfig,
        files: InputFiles,
        status: Arc<Status>,
        stop: signal_watch::Receiver<bool>,
    ) -> Self {
        Self {
            config,
            files,
            status,
            stop,
            targets: None,
            input_error: None,
            tried: 0,
            reported: Mutex::new(BTreeSet::new()),
        }
    }

    /// One tick: load, plan, report, heal. Whether it could plan.
    async fn tick(&mut self) -> bool {
        let mut events = Vec::new();
        self.load(&mut events);
        let result = match &self.targets {
            Some((targets, _)) => self.reconcile(targets, &mut events).await,
            None => Err(TickFailed(self.input_error.clone().unwrap_or_default())),
        };
        let planned = result.is_ok();
        let problem = match result {
            Err(TickFailed(e)) => Some(e),
            Ok(()) => self.input_error.clone(),
        };
        self.status.ended(problem);
        self.emit(events).await;
        planned
    }

    /// Whether the files differ from those the inputs were last read from.
    fn inputs_changed(&self) -> bool {
        self.files.fingerprint() != self.tried
    }

    /// Loads the inputs when their files changed. Inputs that do not load, or that declare
    /// nothing where the last good ones declared something, are reported once and leave the
    /// last good ones in place.
    fn load(&mut self, events: &mut Vec<DriftEvent>) {
        let fingerprint = self.files.fingerprint();
        if self
            .targets
            .as_ref()
            .is_some_and(|(_, f)| *f == fingerprint)
        {
            return;
        }
        self.tried = fingerprint;
        let loaded = self
            .config
            .sources
            .targets(None)
            .and_then(|t| not_emptied(t, self.targets.as_ref().map(|(t, _)| t)));
        match loaded {
            Ok(targets) => {
                self.targets = Some((targets, fingerprint));
                self.input_error = None;
            }
            Err(e) => {
                let kept = if self.targets.is_some() {
                    "watch keeps the last good desired state and prunes nothing until the inputs load again"
                } else {
                    "watch plans nothing until they load"
                };
                let message = format!("the inputs do not load: {e}\n{kept}");
                if self.input_error.as_deref() != Some(message.as_str()) {
                    events.push(
                        self.scope()
                            .event(FAILED, Vec::new(), Some(message.clone())),
                    );
                    self.status.error();
                }
                self.input_error = Some(message);
            }
        }
    }

    fn scope(&self) -> Scope {
        let targets = self.targets.as_ref().map(|(t, _)| t);
        Scope {
            mode: self.config.mode.name(),
            vhost: targets
                .filter(|t| t.broker.is_some())
                .map(|t| t.endpoints.vhost.clone()),
            project: targets
                .and_then(|t| t.containers.as_ref())
                .map(|c| c.project.clone()),
        }
    }

    /// Plans; reports a new drift; heals in heal mode.
    async fn reconcile(
        &self,
        targets: &Targets,
        events: &mut Vec<DriftEvent>,
    ) -> std::result::Result<(), TickFailed> {
        let started = std::time::Instant::now();
        let planned = self
            .unless_stopped(plan_targets(targets, None, self.config.options))
            .await;
        self.status.plan_took(started.elapsed().as_secs_f64());
        let plan = match planned {
            None => return Ok(()),
            Some(Ok(live)) => live.plan,
            Some(Err(e)) => return Err(self.failed(events, "planning", &e)),
        };
        // Healthy from here on: a heal may wait for the lock of the apply that starts this
        // very watch, and that apply waits for this health.
        self.status.ended(self.input_error.clone());
        self.report_drift(&plan, events);
        let pending = match self.config.mode {
            Mode::Warn => plan.changes.len(),
            Mode::Heal => {
                let divided = heal(plan, self.config.options);
                if divided.safe.has_changes() {
                    self.heal(targets, events).await?
                } else {
                    divided.withheld.len()
                }
            }
        };
        self.status.planned(pending);
        Ok(())
    }

    /// Reports the plan's changes as a drift, unless the same drift was reported last.
    fn report_drift(&self, plan: &Plan, events: &mut Vec<DriftEvent>) {
        let key = drift_key(plan);
        let mut reported = self.reported.lock().expect("drift lock");
        if key == *reported {
            return;
        }
        *reported = key;
        if plan.has_changes() {
            let options = (self.config.mode == Mode::Heal).then_some(self.config.options);
            events.push(detected(&self.scope(), plan, options));
        }
    }

    /// Takes the apply locks, plans again under them, and carries out the safe part. Returns
    /// the changes left pending.
    async fn heal(
        &self,
        targets: &Targets,
        events: &mut Vec<DriftEvent>,
    ) -> std::result::Result<usize, TickFailed> {
        let project = targets.containers.as_ref().map(|c| c.project.as_str());
        let opened = self
            .unless_stopped(Session::open(
                &targets.endpoints,
                targets.broker_hold(),
                project,
                self.config.lock_timeout,
            ))
            .await;
        let mut session = match opened {
            None => return Ok(0),
            Some(Ok(session)) => session,
            Some(Err(e)) => return Err(self.failed(events, "taking the apply lock", &e)),
        };
        let healed = self.heal_locked(targets, &mut session).await;
        session.close().await;
        let (divided, outcomes) = match healed {
            Ok(done) => done,
            Err(e) => return Err(self.failed(events, "healing", &e)),
        };
        Ok(self.report_heal(&divided, &outcomes, events))
    }

    async fn heal_locked(
        &self,
        targets: &Targets,
        session: &mut Session,
    ) -> Result<(HealPlan, Vec<Outcome>)> {
        let live = plan_targets(targets, session.amqp(), self.config.options).await?;
        let divided = heal(live.plan, self.config.options);
        let options = ApplyOptions {
            allow_data_loss: self.config.options.allow_data_loss,
            migrate: self.config.options.migrate,
        };
        let outcomes =
            execute(&divided.safe, session, &targets.endpoints, options, &|_| {}).await?;
        Ok((divided, outcomes))
    }

    /// Reports what heal did and what failed; returns the changes left pending.
    fn report_heal(
        &self,
        divided: &HealPlan,
        outcomes: &[Outcome],
        events: &mut Vec<DriftEvent>,
    ) -> usize {
        let changes = divided.safe.changes.iter().zip(outcomes);
        let done: Vec<ChangeReport> = changes
            .clone()
            .filter(|(_, o)| **o == Outcome::Done)
            .map(|(c, _)| ChangeReport::of(c))
            .collect();
        let failed: Vec<ChangeReport> = changes
            .filter(|(_, o)| **o != Outcome::Done)
            .map(|(c, o)| ChangeReport::failed(c, o))
            .collect();
        self.status.healed(done.len());
        let pending = failed.len() + divided.withheld.len();
        if !done.is_empty() {
            events.push(self.scope().event(HEALED, done, None));
        }
        if !failed.is_empty() {
            self.status.error();
            let error = format!("{} change(s) could not be healed", failed.len());
            events.push(self.scope().event(FAILED, failed, Some(error)));
        }
        pending
    }

    /// Reports a failure of `stage` and returns it as the tick's.
    fn failed(&self, events: &mut Vec<DriftEvent>, stage: &str, e: &GodError) -> TickFailed {
        let message = format!("{stage}: {e}");
        self.status.error();
        events.push(
            self.scope()
                .event(FAILED, Vec::new(), Some(message.clone())),
        );
        TickFailed(message)
    }

    /// Runs `step` unless SIGTERM comes first (then None).
    async fn unless_stopped<T>(&self, step: impl Future<Output = T>) -> Option<T> {
        let mut stopped = self.stop.clone();
        tokio::select! {
            biased;
            _ = stopped.wait_for(|s| *s) => None,
            done = step => Some(done),
        }
    }

    /// Writes the events on stdout and publishes them on the bus (when the inputs name it).
    async fn emit(&self, events: Vec<DriftEvent>) {
        if events.is_empty() {
            return;
        }
        for event in &events {
            println!("{}", event.line());
        }
        let Some((targets, _)) = &self.targets else {
            return;
        };
        let Some(desired) = &targets.broker else {
            return;
        };
        if let Err(e) = report::publish(&targets.endpoints, &desired.exchange, &events).await {
            eprintln!("god watch: the drift events could not be published on the bus: {e}");
        }
    }
}

/// Refuses inputs that declare no service (or no container) where the last good ones declared
/// some: an emptied file is far more often an editing mistake than a wish to prune everything.
fn not_emptied(new: Targets, last: Option<&Targets>) -> Result<Targets> {
    let Some(last) = last else {
        return Ok(new);
    };
    let services = |t: &Targets| t.broker.as_ref().map_or(0, |b| b.services.len());
    let containers = |t: &Targets| t.containers.as_ref().map_or(0, |c| c.containers.len());
    let emptied = |count: &dyn Fn(&Targets) -> usize, what: &str, file: &str| {
        (count(last) > 0 && count(&new) == 0).then(|| {
            format!(
                "{file} now declares no {what} (the last good one declared {}): taken for an editing mistake\nhint: to remove every {what} on purpose, run `god apply --prune` yourself",
                count(last)
            )
        })
    };
    let problem = emptied(&services, "service", "registry.yaml")
        .or_else(|| emptied(&containers, "container", "components.toml"));
    match problem {
        Some(problem) => Err(GodError::Other(problem)),
        None => Ok(new),
    }
}

/// The changes of a plan as a drift key: `action id` of each.
fn drift_key(plan: &Plan) -> BTreeSet<String> {
    plan.changes
        .iter()
        .map(|c| format!("{:?} {}", c.action, c.id))
        .collect()
}

/// The detected event of a plan, with heal's reasons for what it withholds.
fn detected(scope: &Scope, plan: &Plan, options: Option<PlanOptions>) -> DriftEvent {
    let changes = plan
        .changes
        .iter()
        .map(|change| ChangeReport {
            withheld: options.and_then(|o| crate::plan::heal::withheld_reason(change, o)),
            ..ChangeReport::of(change)
        })
        .collect();
    scope.event(DETECTED, changes, None)
}
