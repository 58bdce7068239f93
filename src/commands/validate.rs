//! `god validate`: offline checks of every input present: registry.yaml, components.toml, and
//! docker-compose.yml against components.toml.

use std::path::PathBuf;

use super::{Exit, Sources};
use crate::contracts::tree::SchemaTree;
use crate::error::{GodError, Result};
use crate::inputs::SourceFile;
use crate::inputs::compose;
use crate::inputs::diagnostic::Diagnostic;
use crate::inputs::validate::LoadedRegistry;
use crate::model::topic;

/// Options of `god validate`.
#[derive(Debug, Clone, clap::Args)]
pub struct ValidateArgs {
    /// Also check a Holyfields schema tree: a schema that does not compile, a `$ref` that does
    /// not resolve, a duplicate `$id` (errors), a `$id` that disagrees with its path, and a
    /// routing key of the registry that no event type of the tree matches (warnings).
    #[arg(long, value_name = "DIR", env = "HOLYFIELDS_SCHEMA_DIR")]
    pub schemas: Option<PathBuf>,
}

/// Validates what is there; prints a one-line summary per valid file, warnings to stderr.
pub fn run(sources: &Sources, args: &ValidateArgs) -> Result<Exit> {
    let components = sources.load_components()?;
    let registry = match sources.load_registry() {
        Ok(loaded) => Some(loaded),
        Err(GodError::Usage(_)) if sources.registry.is_none() && components.is_some() => None,
        Err(e) => return Err(e),
    };
    if let Some(loaded) = &registry {
        println!("{}", loaded.summary());
    }
    if let Some(dir) = &args.schemas {
        validate_tree(dir, registry.as_ref())?;
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

/// Loads the schema tree, prints its problems and what of the registry it cannot match; errs
/// when the tree has errors.
fn validate_tree(dir: &std::path::Path, registry: Option<&LoadedRegistry>) -> Result<()> {
    let tree = SchemaTree::load(dir).map_err(GodError::Usage)?;
    let mut problems = tree.problems.clone();
    if let Some(loaded) = registry {
        problems.extend(unmatched_keys(&tree, loaded));
    }
    if tree.problems.iter().any(Diagnostic::is_error) {
        return Err(GodError::Invalid(problems));
    }
    for warning in &problems {
        eprintln!("{}", warning.render());
    }
    println!(
        "{} is valid: {} event type(s) in {} schema file(s).",
        dir.display(),
        tree.event_types().count(),
        tree.files.len()
    );
    Ok(())
}

/// A warning for each routing key of the registry that no event type of the tree matches.
fn unmatched_keys(tree: &SchemaTree, loaded: &LoadedRegistry) -> Vec<Diagnostic> {
    let types = tree.named_types();
    let doc = crate::inputs::yaml::parse(&loaded.source.text).ok();
    let mut out = Vec::new();
    for (id, service) in &loaded.registry.services {
        for (i, key) in service.routing_keys.iter().enumerate() {
            if types.iter().any(|t| topic::matches(key, t)) {
                continue;
            }
            let pointer = format!(
                "/services/{}/routing_keys/{i}",
                crate::inputs::document::escape_pointer(id)
            );
            let at = doc
                .as_ref()
                .map(|d| d.position_of(&pointer))
                .unwrap_or_default();
            out.push(
                Diagnostic::warning(
                    &loaded.source,
                    at.line.max(1),
                    at.col.max(1),
                    format!("routing key {key:?} of service \"{id}\" matches no event type of the schema tree"),
                )
                .with_hint("a typo in the key, or an event the tree has no schema for yet"),
            );
        }
    }
    out
}
