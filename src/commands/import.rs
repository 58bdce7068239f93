//! `god import`: god's inputs written from what exists. `god import compose` converts a
//! docker-compose.yml into components.toml; `god import registry` writes a registry from a
//! live vhost.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Exit, Sources, runtime};
use crate::error::{GodError, Result};
use crate::import::compose::convert;
use crate::import::registry::{self as registry_import, Consumer, Imported, LiveVhost};
use crate::inputs::SourceFile;
use crate::inputs::components::load_components;
use crate::inputs::diagnostic::Diagnostic;
use crate::observe::rabbit::observe;
use crate::rabbit::management::ManagementApi;

/// What to import.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ImportCommand {
    /// Convert a docker-compose.yml into components.toml: services, networks, named volumes,
    /// limits, health checks and dependencies keep Compose's key names. What components.toml
    /// cannot express is left out and listed on stderr, each at its line of the compose file.
    /// The result is checked as `god validate` would.
    Compose(ComposeArgs),
    /// Write a registry from a live vhost (the one RABBITMQ_URL names): one service per queue
    /// bound to the bus exchange with its routing keys, dead-letter queues recognised from
    /// their x-dead-letter-* arguments, the queue settings by name and the other arguments
    /// kept. What a registry cannot say goes to topology/imported.yaml beside it;
    /// server-named, exclusive and auto-delete queues and god's own objects are left out and
    /// listed on stderr. Queues named services.<group>.<name>, one routing key each, become one
    /// service <group> with queue_names (unless different connections consume them). The
    /// result is checked as `god validate` would, and against the vhost: what `god plan` would
    /// do besides adopting is listed.
    Registry(RegistryArgs),
}

/// Options of `god import registry`.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArgs {
    /// The bus exchange. Default: the topic exchange most queues are bound to.
    #[arg(long, value_name = "NAME")]
    pub exchange: Option<String>,
    /// Write the registry here (and topology/imported.yaml beside it) instead of printing it.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Overwrite the files written when they exist.
    #[arg(long)]
    pub force: bool,
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
pub fn run(sources: &Sources, command: &ImportCommand) -> Result<Exit> {
    match command {
        ImportCommand::Compose(args) => compose(args),
        ImportCommand::Registry(args) => registry(sources, args),
    }
}

/// Refuses to write over `path` unless `force`.
fn refuse_overwrite(path: &Path, force: bool) -> Result<()> {
    if path.exists() && !force {
        return Err(GodError::Usage(format!(
            "{} exists: god does not overwrite it\nhint: pass --force to replace it, or another --out",
            path.display()
        )));
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| GodError::Other(format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::write(path, text)
        .map_err(|e| GodError::Other(format!("cannot write {}: {e}", path.display())))
}

/// An import whose result does not validate: a bug of god's, reported with every problem
/// and what to send with the report.
fn importer_bug(what: &str, send: &str, problems: &[Diagnostic]) -> GodError {
    let listed: Vec<String> = problems.iter().map(|p| p.render()).collect();
    GodError::Other(format!(
        "{what} does not validate (a bug of god import; please report it with {send}):\n{}",
        listed.join("\n")
    ))
}

fn compose(args: &ComposeArgs) -> Result<Exit> {
    if let Some(path) = &args.out {
        refuse_overwrite(path, args.force)?;
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
        return Err(importer_bug(
            "the converted components.toml",
            "the compose file",
            &problems,
        ));
    }
    for problem in &converted.left_out {
        eprintln!("{}", problem.render());
    }
    match &args.out {
        Some(path) => write(path, &converted.text)?,
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

fn registry(sources: &Sources, args: &RegistryArgs) -> Result<Exit> {
    let out_path = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("registry.yaml"));
    let topology_path = registry_import::topology_path(&out_path);
    if args.out.is_some() {
        refuse_overwrite(&out_path, args.force)?;
        refuse_overwrite(&topology_path, args.force)?;
    }
    let endpoints = sources.url_endpoints()?;
    let live = runtime()?.block_on(read_live_vhost(&ManagementApi::new(&endpoints)?))?;
    let imported =
        registry_import::import(&live, args.exchange.as_deref()).map_err(GodError::Usage)?;
    let differences =
        registry_import::differences(&imported, &out_path, &live).map_err(|problems| {
            importer_bug(
                "the imported registry",
                "the vhost's definitions",
                &problems,
            )
        })?;
    for (object, why) in &imported.left_out {
        eprintln!("left out: {object}: {why}");
    }
    for (object, why) in &imported.notes {
        eprintln!("note: {object}: {why}");
    }
    for line in &differences {
        eprintln!("not said exactly: god plan would do {line}");
    }
    match &args.out {
        Some(path) => {
            write(path, &imported.registry)?;
            if let Some(text) = &imported.topology {
                write(&topology_path, text)?;
            }
        }
        None => print!("{}", imported.registry),
    }
    eprintln!(
        "{}",
        summary(
            &imported,
            &endpoints.vhost,
            args.out.as_deref(),
            &topology_path
        )
    );
    if imported.topology.is_some() && args.out.is_none() {
        eprintln!(
            "hint: what the registry cannot say was not printed: pass --out to write it to {} too",
            topology_path.display()
        );
    }
    Ok(Exit::Success)
}

/// The vhost's objects as `god plan` observes them, its exclusive queues, and who consumes
/// each queue.
async fn read_live_vhost(api: &ManagementApi) -> Result<LiveVhost> {
    let (state, exclusive, consumers) =
        tokio::join!(observe(api), api.exclusive_queues(), api.consumers());
    let state = state?;
    let mut by_queue: BTreeMap<String, Vec<Consumer>> = BTreeMap::new();
    for c in consumers? {
        by_queue.entry(c.queue.name).or_default().push(Consumer {
            connection: c.channel_details.connection_name,
            prefetch: c.prefetch_count,
        });
    }
    Ok(LiveVhost {
        state,
        exclusive: exclusive?,
        consumers: by_queue,
    })
}

fn summary(imported: &Imported, vhost: &str, out: Option<&Path>, topology: &Path) -> String {
    let into = match out {
        Some(path) if imported.topology.is_some() => {
            format!(" into {} and {}", path.display(), topology.display())
        }
        Some(path) => format!(" into {}", path.display()),
        None => String::new(),
    };
    format!(
        "imported {} service(s) and {} dead-letter queue(s) of vhost {vhost:?} (bus exchange {}){into}; {} object(s) left out{}",
        imported.services,
        imported.dead_letter_queues,
        imported.exchange,
        imported.left_out.len(),
        if imported.left_out.is_empty() {
            ""
        } else {
            " (listed above)"
        }
    )
}
