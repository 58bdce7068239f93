//! `god validate`: offline checks of every input present: registry.yaml, components.toml, and
//! docker-compose.yml against components.toml.

use super::{Exit, Sources};
use crate::error::{GodError, Result};
use crate::inputs::SourceFile;
use crate::inputs::compose;

/// Validates what is there; prints a one-line summary per valid file, warnings to stderr.
pub fn run(sources: &Sources) -> Result<Exit> {
    let components = sources.load_components()?;
    let registry = match sources.load_registry() {
        Ok(loaded) => Some(loaded),
        Err(GodError::Usage(_)) if sources.registry.is_none() && components.is_some() => None,
        Err(e) => return Err(e),
    };
    if let Some(loaded) = &registry {
        println!("{}", loaded.summary());
    }
    if let Some(loaded) = &components {
        let containers = loaded.containers().count();
        println!(
            "{} is valid: {} components, {containers} of them containers.",
            loaded.source.path.display(),
            loaded.file.components.len()
        );
        if let Some(path) = compose::beside(&loaded.source.path) {
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
