//! Executors: they carry out a plan they are given, and report what became of each change.

pub mod declare;
pub mod docker;
pub mod lock;
pub mod migrate;
pub mod rabbit;

use serde::Serialize;

/// What became of one change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "snake_case")]
pub enum Outcome {
    /// Carried out.
    Done,
    /// Not carried out on purpose (it would lose messages or break other applications).
    Refused(String),
    /// Tried and failed.
    Failed(String),
    /// Sent to the broker, but the answer was lost: it may or may not have happened.
    Unknown(String),
    /// Not tried, because apply stopped before.
    NotAttempted,
}

impl Outcome {
    /// Whether the change went wrong (failed, unknown, or not tried because of a failure),
    /// as opposed to done or refused on purpose.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Outcome::Failed(_) | Outcome::Unknown(_) | Outcome::NotAttempted
        )
    }

    /// The word shown in reports.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Refused(_) => "refused",
            Outcome::Failed(_) => "failed",
            Outcome::Unknown(_) => "unknown",
            Outcome::NotAttempted => "not attempted",
        }
    }
}
