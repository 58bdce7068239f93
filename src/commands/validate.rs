//! `god validate`: offline checks of the inputs.

use super::{Exit, Globals};
use crate::error::Result;
use crate::inputs::registry::Status;

/// Validates the registry; prints a one-line summary when it is valid.
pub fn run(globals: &Globals) -> Result<Exit> {
    let loaded = globals.load_registry()?;
    let registry = &loaded.registry;
    let count = |s: Status| registry.services.values().filter(|x| x.status == s).count();
    let desired = registry.desired_state();
    println!(
        "{} is valid: {} services ({} active, {} planned, {} deprecated); {} queues and {} bindings desired.",
        loaded.source.path.display(),
        registry.services.len(),
        count(Status::Active),
        count(Status::Planned),
        count(Status::Deprecated),
        desired.topology.queues.len(),
        desired.topology.bindings.len()
    );
    Ok(Exit::Success)
}
