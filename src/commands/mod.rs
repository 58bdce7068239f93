//! The commands behind the CLI: each loads its inputs, calls the library, prints, and says how
//! the process should exit.

pub mod apply;
pub mod plan;
pub mod render;
pub mod validate;

use std::path::PathBuf;

use crate::endpoints::BrokerEndpoints;
use crate::error::{GodError, Result};
use crate::inputs::registry::DesiredState;
use crate::inputs::validate::{LoadedRegistry, load_registry};
use crate::inputs::{SourceFile, locate_registry};
use crate::model::ObservedState;
use crate::observe::rabbit::{observe, observe_queue_stats};
use crate::plan::Plan;
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

/// Options every command accepts.
#[derive(Debug, Clone, Default)]
pub struct Globals {
    /// `--registry` / `GOD_REGISTRY`.
    pub registry: Option<PathBuf>,
    /// `--amqp-url` / `RABBITMQ_URL`.
    pub amqp_url: Option<String>,
    /// `--management-url` / `RABBITMQ_MANAGEMENT_URL`.
    pub management_url: Option<String>,
}

impl Globals {
    /// Finds, reads and validates the registry; prints its warnings to stderr.
    pub fn load_registry(&self) -> Result<LoadedRegistry> {
        let path = locate_registry(self.registry.as_deref())?;
        let source = SourceFile::read(&path)?;
        let loaded = load_registry(source).map_err(GodError::Invalid)?;
        for warning in &loaded.warnings {
            eprintln!("{}", warning.render());
        }
        Ok(loaded)
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

/// Builds the runtime the broker-facing commands run on.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| GodError::Other(format!("cannot start the async runtime: {e}")))
}
