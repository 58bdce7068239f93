//! The broker's enumerated words, typed: an exchange's type and what a policy applies to.
//! Both read and write the broker's own spelling, and keep a word god does not know (a plugin's
//! exchange type, a policy target of a newer RabbitMQ) instead of refusing it.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::topic;

/// Defines an enum of the broker's words with a variant that keeps any other word, read and
/// written as the word itself.
macro_rules! broker_words {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $(#[$other_meta:meta])* Other(String);
            $( $(#[$variant_meta:meta])* $variant:ident => $word:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $( $(#[$variant_meta])* $variant, )*
            $(#[$other_meta])*
            Other(String),
        }

        impl $name {
            /// The broker's word for it.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $word, )*
                    $name::Other(word) => word,
                }
            }
        }

        impl From<String> for $name {
            fn from(word: String) -> Self {
                match word.as_str() {
                    $( $word => $name::$variant, )*
                    _ => $name::Other(word),
                }
            }
        }

        impl From<&str> for $name {
            fn from(word: &str) -> Self {
                $name::from(word.to_string())
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.as_str().to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

broker_words! {
    /// An exchange's type.
    pub enum ExchangeKind {
        /// A type a plugin adds (`x-delayed-message`, `x-consistent-hash`).
        Other(String);
        /// Routes by exact routing key.
        Direct => "direct",
        /// Routes to every bound queue.
        Fanout => "fanout",
        /// Routes by topic pattern (`a.*.c`, `a.#`).
        Topic => "topic",
        /// Routes by message headers.
        Headers => "headers",
    }
}

impl ExchangeKind {
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

broker_words! {
    /// Which objects a policy applies to (`apply-to`).
    pub enum ApplyTo {
        /// A narrower target of newer brokers (`classic_queues`, `quorum_queues`, `streams`).
        Other(String);
        /// Queues of every type.
        Queues => "queues",
        /// Exchanges only.
        Exchanges => "exchanges",
        /// Queues and exchanges.
        All => "all",
    }
}

impl ApplyTo {
    /// Whether the policy can apply to queues.
    pub fn covers_queues(&self) -> bool {
        !matches!(self, ApplyTo::Exchanges)
    }

    /// Whether the policy can apply to exchanges.
    pub fn covers_exchanges(&self) -> bool {
        matches!(self, ApplyTo::Exchanges | ApplyTo::All)
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
