//! `god new service`: a service added to registry.yaml in place (comments and layout kept),
//! checked as `god validate` checks it, with the platform's naming conventions as warnings,
//! and with `--consumer` a consumer that runs against what `god apply` creates.

use std::path::{Path, PathBuf};

use super::{Exit, Sources};
use crate::error::{GodError, Result};
use crate::inputs::SourceFile;
use crate::inputs::diagnostic::Diagnostic;
use crate::inputs::document::{PositionedDocument, escape_pointer};
use crate::inputs::validate::{LoadedRegistry, load_inputs};
use crate::inputs::yaml;
use crate::model::desired::DesiredState;
use crate::model::topic::{check_binding_key, check_queue_name};
use crate::scaffold::consumer::{Client, ConsumerFacts, files};
use crate::scaffold::service::{NewService, added};

/// What to create.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum NewCommand {
    /// Add a service to registry.yaml, in place: every comment and the file's layout stay.
    /// The result is checked as `god validate` checks it, with the platform's conventions
    /// (`services.{domain}.{name}` queues, `domain.entity.action` keys) as warnings. With
    /// --consumer, also write a consumer that runs unchanged against what `god apply` creates.
    ///
    /// Nothing is written when something is wrong: an id or queue that exists, an invalid
    /// routing key, a --out that cannot be written (exit 1).
    Service(ServiceArgs),
}

/// Options of `god new service`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceArgs {
    /// The service's id (and its `name`), e.g. order-tracker.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Its queue, e.g. services.shop.order_tracker.
    #[arg(long, value_name = "NAME")]
    pub queue: String,
    /// A routing key its queue is bound with (repeat for several), e.g. shop.order.created.
    #[arg(long = "key", value_name = "KEY", required = true)]
    pub keys: Vec<String>,
    /// The prefetch its consumers use (written to the registry, and used by the consumer).
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub prefetch: u32,
    /// What it does, in a line (its `description`).
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Also write a consumer for this client: faststream (run with `faststream run
    /// consumer:app`) or aio-pika (run with `python consumer.py`).
    #[arg(long, value_name = "CLIENT", value_parser = ["faststream", "aio-pika"], requires = "out")]
    pub consumer: Option<String>,
    /// Where the consumer goes (consumer.py, requirements.txt, README.md); made when missing.
    #[arg(long, value_name = "DIR", requires = "consumer")]
    pub out: Option<PathBuf>,
    /// Overwrite the consumer's files when they exist.
    #[arg(long)]
    pub force: bool,
}

/// Runs `god new`.
pub fn run(sources: &Sources, command: &NewCommand) -> Result<Exit> {
    match command {
        NewCommand::Service(args) => service(sources, args),
    }
}

fn service(sources: &Sources, args: &ServiceArgs) -> Result<Exit> {
    let (source, topology) = sources.registry_files()?;
    let before = load_inputs(source.clone(), topology.clone()).map_err(|problems| {
        GodError::Usage(format!(
            "{} does not validate; fix it first (`god validate` shows where):\n{}",
            source.path.display(),
            GodError::Invalid(problems)
        ))
    })?;
    refuse_taken(&before, args)?;
    let new = NewService {
        id: args.id.clone(),
        queue: args.queue.clone(),
        keys: args.keys.clone(),
        prefetch: args.prefetch,
        description: args
            .description
            .clone()
            .unwrap_or_else(|| format!("Consumes {}", args.keys.join(", "))),
    };
    let doc = yaml::parse(&source.text)
        .map_err(|e| GodError::Invalid(vec![yaml::syntax_problem(&source, &e)]))?;
    let text = added(&source.text, &doc, &new).map_err(|why| {
        GodError::Usage(format!("cannot add to {}: {why}", source.path.display()))
    })?;
    let edited = SourceFile {
        path: source.path.clone(),
        text,
    };
    let after = load_inputs(edited.clone(), topology).map_err(|problems| {
        GodError::Usage(format!(
            "the edited registry would not validate, so nothing was written:\n{}",
            GodError::Invalid(problems)
        ))
    })?;
    let edited_doc = yaml::parse(&edited.text).expect("the edited registry parsed");
    for warning in after
        .warnings
        .iter()
        .chain(&conventions(&edited, &edited_doc, args))
    {
        eprintln!("{}", warning.render());
    }
    if let (Some(name), Some(dir)) = (&args.consumer, &args.out) {
        let client = Client::parse(name).expect("clap allows only the clients god writes");
        let facts = consumer_facts(&after.desired_state(), args);
        write_consumer(dir, client, &facts, args.force)?;
    }
    write_in_place(&edited)?;
    println!(
        "added service {} to {} (queue {}, {} routing key(s))",
        args.id,
        source.path.display(),
        args.queue,
        args.keys.len()
    );
    println!("next: `god plan` to see what it creates, then `god apply`");
    if let (Some(name), Some(dir)) = (&args.consumer, &args.out) {
        let run = Client::parse(name).map(Client::run).unwrap_or_default();
        println!("then: cd {} && {run}", dir.display());
    }
    Ok(Exit::Success)
}

/// An id or queue that exists, a queue name RabbitMQ refuses, or a routing key that is not
/// one: each an error at the place that says so.
fn refuse_taken(loaded: &LoadedRegistry, args: &ServiceArgs) -> Result<()> {
    let registry = &loaded.registry;
    if registry.services.contains_key(&args.id) {
        let doc = yaml::parse(&loaded.source.text).expect("a valid registry parsed");
        let at = doc.key_position_of(&format!("/services/{}", escape_pointer(&args.id)));
        return Err(GodError::Invalid(vec![
            Diagnostic::error(
                &loaded.source,
                at.line,
                at.col,
                format!("service \"{}\" exists already", args.id),
            )
            .with_hint("choose another id, or edit this service"),
        ]));
    }
    let desired = loaded.desired_state();
    if let Some(owner) = desired.owners.get(&args.queue) {
        return Err(GodError::Usage(format!(
            "queue {} exists already: it belongs to service {}\nhint: every queue belongs to one service; choose another name",
            args.queue, owner.service
        )));
    }
    if desired.topology.queues.contains_key(&args.queue) {
        return Err(GodError::Usage(format!(
            "queue {} exists already: {} declares it\nhint: choose another name",
            args.queue,
            desired.source_of(&format!("queue/{}", args.queue))
        )));
    }
    check_queue_name(&args.queue)
        .map_err(|why| GodError::Usage(format!("--queue {}: {why}", args.queue)))?;
    for key in &args.keys {
        check_binding_key(key).map_err(|why| {
            GodError::Usage(format!(
                "--key {key:?}: {why}\nhint: a routing key is words separated by dots; `*` matches one word and `#` zero or more, each as a whole word"
            ))
        })?;
    }
    Ok(())
}

/// The platform's naming conventions, as warnings at the new service's lines: queues named
/// `services.{domain}.{name}`, routing keys `domain.entity.action`.
fn conventions(
    source: &SourceFile,
    doc: &PositionedDocument,
    args: &ServiceArgs,
) -> Vec<Diagnostic> {
    let base = format!("/services/{}", escape_pointer(&args.id));
    let warn = |pointer: &str, message: String, hint: &str| {
        let at = doc.position_of(pointer);
        Diagnostic::warning(source, at.line, at.col, message).with_hint(hint)
    };
    let mut out = Vec::new();
    let words: Vec<&str> = args.queue.split('.').collect();
    if words.len() != 3 || words[0] != "services" {
        out.push(warn(
            &format!("{base}/queue_name"),
            format!("queue {} does not follow the platform's services.{{domain}}.{{name}}", args.queue),
            "e.g. services.shop.order_tracker: the platform's dashboards and imports group queues by it",
        ));
    }
    for (i, key) in args.keys.iter().enumerate() {
        if key.split('.').count() < 3 {
            out.push(warn(
                &format!("{base}/routing_keys/{i}"),
                format!("routing key {key:?} does not follow the platform's domain.entity.action"),
                "e.g. shop.order.created (or a pattern such as shop.order.#)",
            ));
        }
    }
    out
}

/// What the consumer is written from: the desired state of the edited registry.
fn consumer_facts(desired: &DesiredState, args: &ServiceArgs) -> ConsumerFacts {
    let queue = &desired.topology.queues[&args.queue];
    ConsumerFacts {
        service: args.id.clone(),
        exchange: desired.exchange.clone(),
        queue: args.queue.clone(),
        keys: args.keys.clone(),
        arguments: queue.arguments.clone(),
        prefetch: args.prefetch,
        dead_letter_queue: desired
            .dead_letter_queue_of(&args.queue)
            .map(str::to_string),
    }
}

/// Writes the consumer's files into `dir` (made when missing); refuses to overwrite one
/// without `force`, before writing any.
fn write_consumer(dir: &Path, client: Client, facts: &ConsumerFacts, force: bool) -> Result<()> {
    let unwritable = |e: std::io::Error| {
        GodError::Usage(format!(
            "cannot write the consumer to {}: {e}\nhint: pass a --out directory you can write to; registry.yaml was left as it was",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(unwritable)?;
    let files = files(client, facts);
    if !force && let Some((name, _)) = files.iter().find(|(name, _)| dir.join(name).exists()) {
        return Err(GodError::Usage(format!(
            "{} exists already\nhint: pass --force to overwrite it, or another --out; registry.yaml was left as it was",
            dir.join(name).display()
        )));
    }
    for (name, text) in files {
        std::fs::write(dir.join(name), text).map_err(unwritable)?;
        eprintln!("wrote {}", dir.join(name).display());
    }
    Ok(())
}

/// Replaces the registry through a temporary file beside it and a rename: a crash leaves the
/// old file or the new one, never half of one.
fn write_in_place(edited: &SourceFile) -> Result<()> {
    let dir = edited
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let failed =
        |e: std::io::Error| GodError::Other(format!("cannot write {}: {e}", edited.path.display()));
    let mut temporary = tempfile::NamedTempFile::new_in(dir).map_err(failed)?;
    std::io::Write::write_all(&mut temporary, edited.text.as_bytes()).map_err(failed)?;
    if let Ok(metadata) = std::fs::metadata(&edited.path) {
        std::fs::set_permissions(temporary.path(), metadata.permissions()).map_err(failed)?;
    }
    temporary
        .persist(&edited.path)
        .map_err(|e| failed(e.error))?;
    Ok(())
}
