//! `.env`: the variables components.toml interpolates (`${VAR}`, `from_env`), read as Docker
//! Compose reads the `.env` beside its file. The process environment wins over the file; the
//! file is read once per run (`--env-file FILE` names another).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{GodError, Result};

/// The file's name beside components.toml.
pub const DEFAULT_NAME: &str = ".env";

/// A `.env` file that was read.
#[derive(Debug, Clone)]
pub struct EnvFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its variables (the last definition of a name wins).
    pub values: BTreeMap<String, String>,
}

static LOADED: OnceLock<EnvFile> = OnceLock::new();

impl EnvFile {
    /// Reads and parses the file: `KEY=VALUE` lines, `#` comments, quotes, `export KEY=…`,
    /// `${VAR}` in values. A line that does not parse is an error naming the file and the line.
    pub fn read(path: &Path) -> Result<Self> {
        let problem = |why: String| {
            GodError::Usage(format!(
                "{}: {why}\nhint: write KEY=VALUE lines (quotes and # comments allowed), as for docker compose",
                path.display()
            ))
        };
        let iter = dotenvy::from_path_iter(path).map_err(|e| problem(e.to_string()))?;
        let mut values = BTreeMap::new();
        for item in iter {
            match item {
                Ok((key, value)) => {
                    values.insert(key, value);
                }
                Err(dotenvy::Error::LineParse(line, at)) => {
                    let number =
                        line_number(path, &line).map_or(String::new(), |n| format!("line {n}: "));
                    return Err(problem(format!(
                        "{number}cannot read {line:?} (at character {at})"
                    )));
                }
                Err(e) => return Err(problem(e.to_string())),
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            values,
        })
    }

    /// Makes this file the one variables are looked up in for the rest of the run.
    pub fn install(self) {
        let _ = LOADED.set(self);
    }
}

/// The 1-based number of the line of `path` that starts with `line`.
fn line_number(path: &Path, line: &str) -> Option<usize> {
    let text = std::fs::read_to_string(path).ok()?;
    let first = line.lines().next()?;
    text.lines().position(|l| l == first).map(|i| i + 1)
}

/// The value of `variable` in the run's `.env`, if one was read and defines it.
pub fn lookup(variable: &str) -> Option<String> {
    LOADED.get()?.values.get(variable).cloned()
}

/// The run's `.env`, if one was read.
pub fn loaded_path() -> Option<&'static Path> {
    LOADED.get().map(|f| f.path.as_path())
}
