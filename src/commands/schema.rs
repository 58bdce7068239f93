//! `god schema check`: the contract check the platform's CI runs. Each event type and version
//! present in both revisions of a schema tree is compared; a breaking change fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::Exit;
use crate::contracts::compare::compare;
use crate::contracts::tree::SchemaTree;
use crate::error::{GodError, Result};

/// What to do with schema trees.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SchemaCommand {
    /// Compare a schema tree with an earlier revision: for each event type and version present
    /// in both, a breaking change (a new required property, a removed property, a narrowed
    /// type, a removed enum value, a tightened bound, additionalProperties closed) is printed
    /// with its file and JSON pointer, and fails. A new version file is free.
    ///
    /// Exit codes: 0 compatible; 1 a breaking change, or a tree that does not load.
    Check(CheckArgs),
}

/// Options of `god schema check`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// The earlier revision: a directory, or git:REV for the same tree at a revision of the
    /// repository that holds --schemas (git:HEAD, git:origin/main).
    #[arg(long, value_name = "OLD")]
    pub base: String,
    /// The tree as it is now.
    #[arg(long, value_name = "DIR", env = "HOLYFIELDS_SCHEMA_DIR")]
    pub schemas: PathBuf,
}

/// Runs a schema command.
pub fn run(command: &SchemaCommand) -> Result<Exit> {
    match command {
        SchemaCommand::Check(args) => check(args),
    }
}

fn check(args: &CheckArgs) -> Result<Exit> {
    let new = load(&args.schemas)?;
    let checkout;
    let old_dir = match args.base.strip_prefix("git:") {
        Some(revision) => {
            checkout = checkout_of(&args.schemas, revision)?;
            checkout.path().to_path_buf()
        }
        None => PathBuf::from(&args.base),
    };
    let old = load(&old_dir)?;
    let comparison = compare(&old, &new);
    for change in &comparison.breaking {
        println!("{}#{}: {}", change.file, change.pointer, change.what);
    }
    for added in &comparison.added {
        eprintln!("new: {added} (a new version or type is free)");
    }
    let verdict = format!(
        "{} event type version(s) compared with {}: {} breaking change(s)",
        comparison.compared,
        args.base,
        comparison.breaking.len()
    );
    if comparison.breaking.is_empty() {
        println!("{verdict}");
        Ok(Exit::Success)
    } else {
        eprintln!(
            "{verdict}\nhint: publish the change as a new version (.v<N+1>) instead, so that producers and consumers move one at a time"
        );
        Ok(Exit::Failure)
    }
}

/// A tree that loads without errors (its warnings printed).
fn load(dir: &Path) -> Result<SchemaTree> {
    let tree = SchemaTree::load(dir).map_err(GodError::Usage)?;
    if tree.has_errors() {
        return Err(GodError::Invalid(tree.problems));
    }
    for warning in &tree.problems {
        eprintln!("{}", warning.render());
    }
    Ok(tree)
}

/// The files of `dir` as they were at `revision` of the repository that holds it, in a
/// temporary directory.
fn checkout_of(dir: &Path, revision: &str) -> Result<tempfile::TempDir> {
    let git = |args: &[&str]| -> Result<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .map_err(|e| GodError::Other(format!("cannot run git: {e}")))?;
        if !out.status.success() {
            return Err(GodError::Usage(format!(
                "git {}: {}\nhint: --base git:REV takes a revision of the repository that holds {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim(),
                dir.display()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let prefix = git(&["rev-parse", "--show-prefix"])?.trim().to_string();
    let listed = git(&[
        "ls-tree",
        "-r",
        "--name-only",
        "--full-name",
        revision,
        "--",
        ".",
    ])?;
    let checkout = tempfile::tempdir()
        .map_err(|e| GodError::Other(format!("cannot make a temporary directory: {e}")))?;
    for path in listed.lines().filter(|p| p.ends_with(".json")) {
        let text = git(&["show", &format!("{revision}:{path}")])?;
        let relative = path.strip_prefix(&prefix).unwrap_or(path);
        let target = checkout.path().join(relative);
        let written = target
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&target, text));
        written.map_err(|e| GodError::Other(format!("cannot write {}: {e}", target.display())))?;
    }
    Ok(checkout)
}
