//! Input files: finding them, parsing them with source positions, validating them, and turning
//! the registry into the desired topology.

pub mod components;
pub mod compose;
pub mod cross_check;
#[cfg(test)]
mod cross_check_tests;
pub mod diagnostic;
pub mod document;
pub mod dotenv;
pub mod schema;
pub mod toml_doc;
pub mod topology;
pub mod validate;
pub mod yaml;

use std::path::{Path, PathBuf};

pub use diagnostic::SourceFile;

use crate::error::{GodError, Result};

/// Where the registry is looked for when neither `--registry` nor `GOD_REGISTRY` is given.
pub const REGISTRY_CANDIDATES: [&str; 2] = ["registry.yaml", "services/registry.yaml"];

/// Reading lives here, beside the other file lookups, so that [`diagnostic`] (which
/// [`crate::error`] carries) needs nothing of the error type.
impl SourceFile {
    /// Reads a file, with a hint when it is missing.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| GodError::InputUnreadable {
            path: path.to_path_buf(),
            hint: "pass the right file with --registry PATH (or GOD_REGISTRY)".to_string(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            text,
        })
    }
}

/// `path` made absolute against the working directory (as given when that fails).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Finds the registry: the explicit path if given, else the first of [`REGISTRY_CANDIDATES`].
pub fn locate_registry(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    REGISTRY_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            GodError::Usage(
                "no registry found: looked for ./registry.yaml and ./services/registry.yaml\n\
                 hint: run god from the platform's root, or pass --registry PATH (or set GOD_REGISTRY)"
                    .to_string(),
            )
        })
}
