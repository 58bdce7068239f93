//! The services of a registry being written: their queues as the registry says them, what
//! queues grouped into one service share, and how each dead-letters.

use crate::model::Arguments;
use crate::model::queue_type::{QueueSettings, QueueType};

/// A service queue as it is written.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ServiceQueue {
    pub(super) name: String,
    pub(super) keys: Vec<String>,
    pub(super) settings: QueueSettings,
    pub(super) arguments: Arguments,
    pub(super) dead_letter: DeadLetter,
    pub(super) retry: Vec<String>,
}

/// How a service queue dead-letters, as the registry says it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum DeadLetter {
    /// Into `<queue>_dlq` (the registry's default), of this type when it differs.
    Default(Option<QueueType>),
    /// Into the queue named, of this type when it differs.
    Named(String, Option<QueueType>),
    /// Not at all (`dead_letter: false`): any dead-letter arguments stay in `arguments`.
    Off,
}

impl ServiceQueue {
    /// The service queue without its name and keys: what queues grouped into one service share.
    pub(super) fn shape(&self) -> (QueueSettings, Arguments, DeadLetter, Vec<String>) {
        let dead_letter = match &self.dead_letter {
            DeadLetter::Named(_, t) => DeadLetter::Named(String::new(), *t),
            other => other.clone(),
        };
        (
            self.settings.clone(),
            self.arguments.clone(),
            dead_letter,
            self.retry.clone(),
        )
    }
}

/// One service of the written registry.
#[derive(Debug, Clone)]
pub(super) struct ServiceOut {
    pub(super) id: String,
    pub(super) queues: Vec<ServiceQueue>,
    pub(super) prefetch: Option<u64>,
}
