//! The commands behind the CLI: each parses its options, calls the library ([`crate::reconcile`]
//! and friends), prints, and says how the process should exit.

pub mod apply;
pub mod dlq;
pub mod doctor;
pub mod down;
pub mod gateway;
pub mod graph;
pub mod import;
pub mod logs;
pub mod new;
pub mod plan;
pub mod ps;
pub mod relay;
pub mod render;
pub mod restart;
pub mod retry;
pub mod schema;
pub mod tail;
pub mod validate;
pub mod watch;

pub use crate::reconcile::sources::{Only, Sources};

use crate::error::{GodError, Result};

use std::time::Duration;

/// The value parser of `--only`: `rabbitmq` or `docker`, each with its help.
pub fn only_value() -> impl clap::builder::TypedValueParser<Value = Only> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new([
        PossibleValue::new("rabbitmq").help("The broker topology from registry.yaml"),
        PossibleValue::new("docker").help("The containers from components.toml"),
    ])
    .map(|word| match word.as_str() {
        "rabbitmq" => Only::Rabbitmq,
        _ => Only::Docker,
    })
}

/// How a command ended, as an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done, nothing failed (for `plan --detailed-exitcode`: no changes).
    Success,
    /// 1: error, or nothing applied.
    Failure,
    /// 2: `plan --detailed-exitcode` found changes.
    Changes,
    /// 3: apply stopped part-way.
    Partial,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Changes => 2,
            Exit::Partial => 3,
        }
    }
}

/// Parses a number of seconds (`60`, `0.5`): the value parser of the commands' time options.
pub fn seconds(text: &str) -> std::result::Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{text:?} is not a number of seconds"))
}

/// Asks `question` on the terminal and takes only `yes`; refuses (without asking) when there
/// is no terminal to ask on: scripts pass `--auto-approve`.
pub fn ask_yes(question: &str) -> Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(GodError::NeedsApproval);
    }
    print!("\n{question} Only 'yes' is accepted: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| GodError::Other(format!("cannot read the answer: {e}")))?;
    Ok(answer.trim() == "yes")
}

/// Builds the runtime the broker-facing commands run on.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| GodError::Other(format!("cannot start the async runtime: {e}")))
}
