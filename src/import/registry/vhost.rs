//! What the importer reads of a live vhost: its objects as `god plan` observes them, its
//! exclusive queues and the consumers of each queue.

use std::collections::BTreeMap;

use crate::model::ObservedState;

/// What the importer reads of a live vhost.
#[derive(Debug, Clone, Default)]
pub struct LiveVhost {
    /// Its objects, as `god plan` observes them.
    pub state: ObservedState,
    /// Its exclusive queues (the definitions leave them out).
    pub exclusive: Vec<String>,
    /// The consumers of each queue: their connections and prefetch limits.
    pub consumers: BTreeMap<String, Vec<Consumer>>,
}

/// One consumer of a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    /// The broker's name of its connection.
    pub connection: String,
    /// Its prefetch limit (0: none).
    pub prefetch: u64,
}
