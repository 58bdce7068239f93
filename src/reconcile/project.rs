//! The operator's commands on a container project (`god ps`, `logs`, `restart`, `down`): the
//! project's desired containers, its lock, what the engine has of it, and carrying out a plan
//! of its containers.

use std::time::Duration;

use crate::apply::Outcome;
use crate::apply::docker;
use crate::apply::lock::{self, ProjectLock};
use crate::error::{GodError, Result};
use crate::model::containers::{DesiredContainers, ObservedContainers, SecretValues};
use crate::observe::engine;
use crate::plan::Plan;

use super::planning::observe_project;
use super::sources::{Only, Sources, environment};

/// A container project held for a command: its desired containers, the engine, and (for the
/// commands that change it) its lock, so that no apply runs meanwhile.
pub struct Project {
    /// What components.toml wants.
    pub desired: DesiredContainers,
    /// The engine.
    pub docker: bollard::Docker,
    _lock: Option<ProjectLock>,
}

impl Project {
    /// Reads components.toml (it must exist) and connects to the engine; with `lock`, waits
    /// up to that long for the project's lock.
    pub async fn open(sources: &Sources, lock: Option<Duration>) -> Result<Self> {
        let desired = sources
            .targets(Some(Only::Docker))?
            .containers
            .ok_or_else(|| {
                GodError::Usage("components.toml describes no containers".to_string())
            })?;
        let docker = engine::connect().await?;
        let _lock = match lock {
            Some(timeout) => Some(lock::acquire_project(&desired.project, timeout).await?),
            None => None,
        };
        Ok(Self {
            desired,
            docker,
            _lock,
        })
    }

    /// What the engine has of the project now.
    pub async fn observe(&self) -> Result<ObservedContainers> {
        observe_project(&self.docker, &self.desired).await
    }

    /// Carries out a plan of the project's containers, in order, stopping at the first failure.
    pub async fn execute(&self, plan: &Plan) -> Vec<Outcome> {
        let secrets = SecretValues {
            env: &environment,
            broker_url: None,
        };
        docker::execute(&self.docker, plan, &|_| true, &secrets, &|_| {})
            .await
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::NotAttempted))
            .collect()
    }
}
