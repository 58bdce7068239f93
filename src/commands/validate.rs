//! `god validate`: offline checks of every input present: registry.yaml, components.toml, and
//! docker-compose.yml against components.toml.

use std::path::{Path, PathBuf};

use super::{Exit, Globals};
use crate::error::{GodError, Result};
use crate::inputs::SourceFile;
use crate::inputs::compose;
use crate::inputs::validate::LoadedRegistry;
use crate::model::desired::Lifecycle as Status;

/// Compose files compared with components.toml, looked for beside it.
const COMPOSE_FILES: [&str; 2] = ["docker-compose.yml", "compose.yml"];

/// Validates what is there; prints a one-line summary per valid file, warnings to stderr.
pub fn run(globals: &Globals) -> Result<Exit> {
    let components = globals.load_components()?;
    let registry = match globals.load_registry() {
        Ok(loaded) => Some(loaded),
        Err(GodError::Usage(_)) if globals.registry.is_none() && components.is_some() => None,
        Err(e) => return Err(e),
    };
    if let Some(loaded) = &registry {
        println!("{}", registry_summary(loaded));
    }
    if let Some(loaded) = &components {
        let containers = loaded.containers().count();
        println!(
            "{} is valid: {} components, {containers} of them containers.",
            loaded.source.path.display(),
            loaded.file.components.len()
        );
        if let Some(path) = compose_beside(&loaded.source.path) {
            let compose = SourceFile::read(&path)?;
            let warnings = compose::compare(&compose, loaded);
            for w in &warnings {
                eprintln!("{}", w.render());
            }
            if warnings.is_empty() {
                println!(
                    "{} agrees with {} on the services both describe.",
                    path.display(),
                    loaded.source.path.display()
                );
            }
        }
    }
    Ok(Exit::Success)
}

/// One line saying what a valid registry holds.
pub(crate) fn registry_summary(loaded: &LoadedRegistry) -> String {
    let registry = &loaded.registry;
    let count = |s: Status| registry.services.values().filter(|x| x.status == s).count();
    let desired = registry.desired_state();
    format!(
        "{} is valid: {} services ({} active, {} planned, {} deprecated); {} queues and {} bindings desired.",
        loaded.source.path.display(),
        registry.services.len(),
        count(Status::Active),
        count(Status::Planned),
        count(Status::Deprecated),
        desired.topology.queues.len(),
        desired.topology.bindings.len()
    )
}

/// The compose file beside components.toml, if there is one.
pub(crate) fn compose_beside(components: &Path) -> Option<PathBuf> {
    let dir = components
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    COMPOSE_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
}
