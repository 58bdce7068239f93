//! The broker's enumerated words, typed: an exchange's type and what a policy applies to.
//! Both read and write the broker's own spelling, and keep a word god does not know (a plugin's
//! exchange type, a policy target of a newer RabbitMQ) instead of refusing it.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::topic;

/// An exchange's type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ExchangeKind {
    /// Routes by exact routing key.
    Direct,
    /// Routes to every bound queue.
    Fanout,
    /// Routes by topic pattern (`a.*.c`, `a.#`).
    Topic,
    /// Routes by message headers.
    Headers,
    /// A type a plugin adds (`x-delayed-message`, `x-consistent-hash`).
    Other(String),
}

impl ExchangeKind {
    /// The broker's word for it.
    pub fn as_str(&self) -> &str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
            ExchangeKind::Other(word) => word,
        }
    }

    /// Whether a message published with `routing_key` reaches a binding with `binding_key`;
    /// None where the routing does not depend on keys god can read (headers, plugin types).
    pub fn routes(&self, binding_key: &str, routing_key: &str) -> Option<bool> {
        match self {
            ExchangeKind::Fanout => Some(true),
            ExchangeKind::Direct => Some(binding_key == routing_key),
            ExchangeKind::Topic => Some(topic::matches(binding_key, routing_key)),
            ExchangeKind::Headers | ExchangeKind::Other(_) => None,
        }
    }
}

impl From<String> for ExchangeKind {
    fn from(word: String) -> Self {
        match word.as_str() {
            "direct" => ExchangeKind::Direct,
            "fanout" => ExchangeKind::Fanout,
            "topic" => ExchangeKind::Topic,
            "headers" => ExchangeKind::Headers,
            _ => ExchangeKind::Other(word),
        }
    }
}

impl From<&str> for ExchangeKind {
    fn from(word: &str) -> Self {
        ExchangeKind::from(word.to_string())
    }
}

impl From<ExchangeKind> for String {
    fn from(kind: ExchangeKind) -> String {
        kind.as_str().to_string()
    }
}

impl fmt::Display for ExchangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which objects a policy applies to (`apply-to`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ApplyTo {
    /// Queues of every type.
    Queues,
    /// Exchanges only.
    Exchanges,
    /// Queues and exchanges.
    All,
    /// A narrower target of newer brokers (`classic_queues`, `quorum_queues`, `streams`).
    Other(String),
}

impl ApplyTo {
    /// The broker's word for it.
    pub fn as_str(&self) -> &str {
        match self {
            ApplyTo::Queues => "queues",
            ApplyTo::Exchanges => "exchanges",
            ApplyTo::All => "all",
            ApplyTo::Other(word) => word,
        }
    }

    /// Whether the policy can apply to queues.
    pub fn covers_queues(&self) -> bool {
        !matches!(self, ApplyTo::Exchanges)
    }

    /// Whether the policy can apply to exchanges.
    pub fn covers_exchanges(&self) -> bool {
        matches!(self, ApplyTo::Exchanges | ApplyTo::All)
    }
}

impl From<String> for ApplyTo {
    fn from(word: String) -> Self {
        match word.as_str() {
            "queues" => ApplyTo::Queues,
            "exchanges" => ApplyTo::Exchanges,
            "all" => ApplyTo::All,
            _ => ApplyTo::Other(word),
        }
    }
}

impl From<&str> for ApplyTo {
    fn from(word: &str) -> Self {
        ApplyTo::from(word.to_string())
    }
}

impl From<ApplyTo> for String {
    fn from(apply_to: ApplyTo) -> String {
        apply_to.as_str().to_string()
    }
}

impl fmt::Display for ApplyTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_unknown_ones_are_kept() {
        for word in ["direct", "fanout", "topic", "headers", "x-delayed-message"] {
            let kind: ExchangeKind = serde_json::from_value(serde_json::json!(word)).unwrap();
            assert_eq!(
                serde_json::to_value(&kind).unwrap(),
                serde_json::json!(word)
            );
        }
        assert_eq!(
            ExchangeKind::from("x-consistent-hash").as_str(),
            "x-consistent-hash"
        );
        for word in ["queues", "exchanges", "all", "quorum_queues"] {
            assert_eq!(ApplyTo::from(word).as_str(), word);
        }
    }

    #[test]
    fn routing_follows_the_exchange_type() {
        assert_eq!(ExchangeKind::Fanout.routes("x", "y"), Some(true));
        assert_eq!(ExchangeKind::Direct.routes("a.b", "a.b"), Some(true));
        assert_eq!(ExchangeKind::Direct.routes("a.*", "a.b"), Some(false));
        assert_eq!(ExchangeKind::Topic.routes("a.*", "a.b"), Some(true));
        assert_eq!(ExchangeKind::Headers.routes("", "a"), None);
        assert!(ApplyTo::All.covers_queues() && ApplyTo::All.covers_exchanges());
        assert!(!ApplyTo::Queues.covers_exchanges() && !ApplyTo::Exchanges.covers_queues());
    }
}
