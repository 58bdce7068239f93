//! What `god doctor`'s RabbitMQ 4.x checks read of a vhost through the management API: its
//! queues' settings, its channels, and the deprecated features the broker sees in use.

use serde::Deserialize;
use serde_json::Value;

/// A queue's settings, as the 4.x checks of `god doctor` read them.
#[derive(Debug, Clone, Deserialize)]
pub struct QueueSettings {
    /// The queue's name.
    pub name: String,
    /// Survives a restart.
    #[serde(default)]
    pub durable: bool,
    /// Belongs to one connection.
    #[serde(default)]
    pub exclusive: bool,
    /// `classic`, `quorum` or `stream`.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// Its own arguments.
    #[serde(default)]
    pub arguments: serde_json::Map<String, Value>,
    /// The policy in effect (the broker leaves the merged settings out of a list without
    /// statistics).
    #[serde(default)]
    pub policy: Option<String>,
}

/// A deprecated feature the broker sees in use.
#[derive(Debug, Clone, Deserialize)]
pub struct DeprecatedFeature {
    /// Its name (`transient_nonexcl_queues`, `global_qos`, …).
    pub name: String,
    /// Where RabbitMQ explains it.
    #[serde(default)]
    pub doc_url: String,
}

/// A channel and its prefetch settings.
#[derive(Debug, Clone, Deserialize)]
pub struct ChannelEntry {
    /// The broker's name of the channel (`client address -> server address (N)`).
    pub name: String,
    /// The prefetch shared by every consumer of the channel (`basic.qos` with `global`); 0 when
    /// none is set.
    #[serde(default)]
    pub global_prefetch_count: u64,
    /// The connection's client-given name, when it has one.
    #[serde(default)]
    pub connection_details: Option<ConnectionDetails>,
}

/// What a channel says of its connection.
#[derive(Debug, Clone, Deserialize)]
pub struct ConnectionDetails {
    /// The broker's name of the connection.
    #[serde(default)]
    pub name: String,
}
