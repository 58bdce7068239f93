//! `god dlq`: dead letters seen (`list`, `show`), moved back (`replay`) and removed (`purge`).

use std::collections::BTreeSet;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::{Exit, Sources, ask_yes, runtime};
use crate::dlq::letters::{DeadLetter, Filter, Summary, depth, now, read};
use crate::dlq::replay::{Action, Destination, Outcome, Selection, process};
use crate::dlq::routes;
use crate::error::Result;
use crate::rabbit::amqp::AmqpSession;
use crate::rabbit::endpoints::BrokerEndpoints;
use crate::rabbit::management::ManagementApi;

/// Messages from which a replay or purge shows a progress bar.
const PROGRESS_THRESHOLD: u64 = 1000;

/// What to do with dead letters.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum DlqCommand {
    /// Every dead-letter queue of the registry, and every queue another dead-letters into: its
    /// exact count, the age of its oldest message, and its messages by reason, event type and
    /// origin queue, read from their `x-death` headers (nothing is consumed).
    List {
        /// JSON (schemas/dlq.schema.json).
        #[arg(long)]
        json: bool,
    },
    /// The messages of a queue one by one, without consuming them: afterwards the queue holds
    /// what it held, in the same order.
    Show {
        /// The queue to read (it keeps every message).
        queue: String,
        /// At most this many (from the head).
        #[arg(long, default_value_t = 20)]
        limit: u64,
        /// Only these: reason=rejected,type=agent.#,older-than=1h.
        #[arg(long, value_parser = Filter::parse)]
        filter: Option<Filter>,
        /// JSON, one object per message.
        #[arg(long)]
        json: bool,
    },
    /// Move messages back where they came from: each is published (mandatory, with a confirm)
    /// before it is acknowledged, so a crash loses nothing (a message in flight may be in both
    /// places). Asks for confirmation like apply.
    ///
    /// Exit codes: 0 every selected message moved; 1 none moved; 3 some moved, some could not
    /// be.
    Replay(ReplayArgs),
    /// Remove messages (all, or those of --filter). Asks for confirmation like apply.
    Purge {
        /// The queue to purge.
        queue: String,
        /// Only these: reason=rejected,type=agent.#,older-than=1h.
        #[arg(long, value_parser = Filter::parse)]
        filter: Option<Filter>,
        /// Do not ask (CI).
        #[arg(long)]
        auto_approve: bool,
    },
}

/// Options of `god dlq replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// The dead-letter queue.
    pub queue: String,
    /// Back to the queue each message died in (its latest x-death entry), through the default
    /// exchange: only the consumer that failed gets it again. The default.
    #[arg(long, conflicts_with = "to")]
    pub to_origin: bool,
    /// To this queue instead, through the default exchange.
    #[arg(long, value_name = "QUEUE")]
    pub to: Option<String>,
    /// Only these: reason=rejected,type=agent.#,older-than=1h.
    #[arg(long, value_parser = Filter::parse)]
    pub filter: Option<Filter>,
    /// At most this many.
    #[arg(long)]
    pub limit: Option<u64>,
    /// A message replayed this many times (its x-god-replays header) stays put, and is reported.
    #[arg(long, default_value_t = 5)]
    pub max_replays: u64,
    /// Count what would move; move nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask (CI).
    #[arg(long)]
    pub auto_approve: bool,
}

/// Runs a dlq command.
pub fn run(sources: &Sources, command: &DlqCommand) -> Result<Exit> {
    let registry = sources.read_registry().ok();
    let endpoints = sources.endpoints_for(registry.as_ref())?;
    let declared = registry
        .map(|r| routes::declared(&r.desired_state()))
        .unwrap_or_default();
    runtime()?.block_on(async {
        let session = AmqpSession::connect(&endpoints, "dlq").await?;
        let done = match command {
            DlqCommand::List { json } => list(&session, &endpoints, declared, *json).await,
            DlqCommand::Show {
                queue,
                limit,
                filter,
                json,
            } => show(&session, queue, *limit, filter.clone(), *json).await,
            DlqCommand::Replay(args) => replay(&session, args).await,
            DlqCommand::Purge {
                queue,
                filter,
                auto_approve,
            } => purge(&session, queue, filter.clone(), *auto_approve).await,
        };
        session.close().await;
        done
    })
}

async fn list(
    session: &AmqpSession,
    endpoints: &BrokerEndpoints,
    registry_queues: BTreeSet<String>,
    json: bool,
) -> Result<Exit> {
    let mut summaries = Vec::new();
    let api = ManagementApi::new(endpoints)?;
    for queue in routes::dead_letter_queues(&api, registry_queues).await? {
        let (count, letters) = read(session, &queue, None).await?;
        summaries.push(Summary::of(&queue, count, &letters));
    }
    if json {
        let doc = json!({"vhost": endpoints.vhost, "queues": summaries});
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("summaries serialise")
        );
        return Ok(Exit::Success);
    }
    println!("god dlq list: vhost \"{}\"\n", endpoints.vhost);
    if summaries.is_empty() {
        println!("No dead-letter queue.");
    }
    let now = now();
    for s in &summaries {
        let oldest = s
            .oldest
            .map(|t| format!(", oldest died {} ago", age(now.saturating_sub(t))))
            .unwrap_or_default();
        println!("{}: {} message(s){oldest}", s.queue, s.count);
        if s.count > 0 {
            println!("  reasons:     {}", counts(&s.reasons));
            println!("  event types: {}", counts(&s.event_types));
            println!("  from:        {}", counts(&s.origins));
        }
    }
    Ok(Exit::Success)
}

fn counts(map: &std::collections::BTreeMap<String, u64>) -> String {
    let mut entries: Vec<(&String, &u64)> = map.iter().collect();
    entries.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    entries
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An age for people: `42s`, `7m`, `3h`, `2d`.
fn age(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

async fn show(
    session: &AmqpSession,
    queue: &str,
    limit: u64,
    filter: Option<Filter>,
    json: bool,
) -> Result<Exit> {
    let filter = filter.unwrap_or_default();
    let now = now();
    // The filter looks at every message; --limit counts the ones shown.
    let read_limit = (filter == Filter::default()).then_some(limit);
    let (_, letters) = read(session, queue, read_limit).await?;
    let letters: Vec<DeadLetter> = letters
        .into_iter()
        .filter(|l| filter.matches(l, now))
        .take(limit as usize)
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&letters).expect("letters serialise")
        );
        return Ok(Exit::Success);
    }
    for l in &letters {
        let when = l
            .died_at
            .map(|t| format!(" {} ago", age(now.saturating_sub(t))))
            .unwrap_or_default();
        println!(
            "#{} event {} type {}: {} in {}{when} ({} time(s); from exchange {:?} with {}; replayed {})\n    {}",
            l.position,
            l.event_id.as_deref().unwrap_or("?"),
            l.event_type,
            l.reason,
            l.origin_queue.as_deref().unwrap_or("?"),
            l.deaths,
            l.exchange.as_deref().unwrap_or(""),
            l.routing_keys.join(", "),
            l.replays,
            l.preview
        );
    }
    if letters.is_empty() {
        println!("No message of {queue} matches.");
    }
    Ok(Exit::Success)
}

async fn replay(session: &AmqpSession, args: &ReplayArgs) -> Result<Exit> {
    let destination = match &args.to {
        Some(q) => Destination::Queue(q.clone()),
        None => Destination::Origin,
    };
    let selection = Selection {
        filter: args.filter.clone().unwrap_or_default(),
        limit: args.limit,
        max_replays: args.max_replays,
    };
    let where_to = match &destination {
        Destination::Origin => "the queue each died in".to_string(),
        Destination::Queue(q) => format!("queue {q}"),
    };
    let action = if args.dry_run {
        Action::DryRun
    } else {
        Action::Replay(destination)
    };
    let question = format!(
        "Replay the selected messages of {} to {where_to}?",
        args.queue
    );
    let outcome = go(
        session,
        &args.queue,
        &selection,
        &action,
        args.auto_approve,
        &question,
    )
    .await?;
    let Some(outcome) = outcome else {
        return Ok(Exit::Failure);
    };
    let verb = if args.dry_run { "Would move" } else { "Moved" };
    println!(
        "{verb} {} of {} message(s) of {} to {where_to}.",
        outcome.moved, outcome.seen, args.queue
    );
    Ok(report(&outcome))
}

async fn purge(
    session: &AmqpSession,
    queue: &str,
    filter: Option<Filter>,
    auto_approve: bool,
) -> Result<Exit> {
    let selection = Selection {
        filter: filter.unwrap_or_default(),
        limit: None,
        max_replays: u64::MAX,
    };
    let question = format!("Remove the selected messages of {queue} for good?");
    let outcome = go(
        session,
        queue,
        &selection,
        &Action::Purge,
        auto_approve,
        &question,
    )
    .await?;
    let Some(outcome) = outcome else {
        return Ok(Exit::Failure);
    };
    println!(
        "Removed {} of {} message(s) of {queue}.",
        outcome.moved, outcome.seen
    );
    Ok(report(&outcome))
}

/// Says what the run will look at, asks (unless approved or a dry run), and runs it with a
/// progress bar on long runs. None when the operator said no.
async fn go(
    session: &AmqpSession,
    queue: &str,
    selection: &Selection,
    action: &Action,
    auto_approve: bool,
    question: &str,
) -> Result<Option<Outcome>> {
    let count = depth(session, queue).await?;
    println!("{queue} holds {count} message(s).");
    if *action != Action::DryRun && !auto_approve && !ask_yes(question)? {
        println!("Cancelled: nothing was changed.");
        return Ok(None);
    }
    let bar = if count >= PROGRESS_THRESHOLD {
        ProgressBar::new(count)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} messages ({elapsed})")
            .expect("the progress template is valid")
            .progress_chars("=> "),
    );
    let outcome = process(session, queue, selection, action, &|n| bar.inc(n)).await;
    bar.finish_and_clear();
    Ok(Some(outcome?))
}

/// Prints why messages stayed, and the exit code: 0 every selected message done, 1 none
/// done, 3 some done and some not.
fn report(outcome: &Outcome) -> Exit {
    if outcome.stayed_total() > 0 {
        println!("Stayed: {}", counts(&outcome.stayed));
    }
    match (outcome.moved, outcome.failed) {
        (0, _) => Exit::Failure,
        (_, 0) => Exit::Success,
        _ => Exit::Partial,
    }
}
