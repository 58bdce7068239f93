//! `god import`: god's inputs written from what exists. `god import compose` converts a
//! docker-compose.yml into components.toml.

use std::path::PathBuf;

use super::Exit;
use crate::error::{GodError, Result};
use crate::inputs::SourceFile;
use crate::inputs::components::load_components;
use crate::inputs::compose_import::convert;

/// What to import.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ImportCommand {
    /// Convert a docker-compose.yml into components.toml: services, networks, named volumes,
    /// limits, health checks and dependencies keep Compose's key names. What components.toml
    /// cannot express is left out and listed on stderr, each at its line of the compose file.
    /// The result is checked as `god validate` would.
    Compose(ComposeArgs),
}

/// Options of `god import compose`.
#[derive(Debug, Clone, clap::Args)]
pub struct ComposeArgs {
    /// The compose file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Write components.toml here instead of printing it.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Overwrite the --out file when it exists.
    #[arg(long)]
    pub force: bool,
}

/// Runs an import.
pub fn run(command: &ImportCommand) -> Result<Exit> {
    match command {
        ImportCommand::Compose(args) => compose(args),
    }
}

fn compose(args: &ComposeArgs) -> Result<Exit> {
    if let Some(path) = args.out.as_ref().filter(|p| p.exists() && !args.force) {
        return Err(GodError::Usage(format!(
            "{} exists: god does not overwrite it\nhint: pass --force to replace it, or another --out",
            path.display()
        )));
    }
    let source = SourceFile::read(&args.file)?;
    let converted = convert(&source).map_err(|d| GodError::Invalid(vec![d]))?;
    let out_path = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("components.toml"));
    let check = SourceFile {
        path: out_path.clone(),
        text: converted.text.clone(),
    };
    if let Err(problems) = load_components(check) {
        let listed: Vec<String> = problems.iter().map(|p| p.render()).collect();
        return Err(GodError::Other(format!(
            "the converted components.toml does not validate (a bug of god import; please report it with the compose file):\n{}",
            listed.join("\n")
        )));
    }
    for problem in &converted.left_out {
        eprintln!("{}", problem.render());
    }
    match &args.out {
        Some(path) => std::fs::write(path, &converted.text)
            .map_err(|e| GodError::Other(format!("cannot write {}: {e}", path.display())))?,
        None => print!("{}", converted.text),
    }
    eprintln!(
        "converted {} service(s) of {}{}; {} thing(s) to look at{}",
        converted.services,
        args.file.display(),
        args.out
            .as_ref()
            .map(|p| format!(" into {}", p.display()))
            .unwrap_or_default(),
        converted.left_out.len(),
        if converted.left_out.is_empty() {
            ""
        } else {
            " (listed above)"
        }
    );
    Ok(Exit::Success)
}
