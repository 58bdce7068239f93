//! Saved plans on disk (`god plan --out FILE`, `god apply FILE`), and checking one against
//! the live state before it is applied.

use std::path::Path;

use crate::error::{GodError, Result};
use crate::observe::docker::{Wanted, observe as observe_containers};
use crate::observe::engine;
use crate::observe::rabbit::observe;
use crate::plan::ResourceKind;
use crate::plan::saved::SavedPlan;

use super::session::Session;

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
                containers: saved.engine_names(ResourceKind::Container),
                networks: saved.engine_names(ResourceKind::Network),
                volumes: saved.engine_names(ResourceKind::Volume),
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
