//! Queue types (classic, quorum, stream) and the settings god offers by name for them
//! (`queue_type`, `delivery_limit`, `dead_letter_strategy`, ...), turned into the queue
//! arguments RabbitMQ reads; and which arguments a type refuses.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::arguments::Arguments;

/// The queue argument naming the type.
pub const QUEUE_TYPE_ARG: &str = "x-queue-type";

/// The argument holding the epoch of god's relay history: set when the stream is created, so a
/// stream created again has another, and never compared.
pub const EPOCH_ARGUMENT: &str = "x-god-epoch";

/// Arguments read only when a queue is declared (where its members and leader go, the epoch of
/// a relay's history): a live queue declared with other values is not a different queue, so
/// they are not compared.
pub const DECLARATION_ONLY_ARGUMENTS: [&str; 3] = [
    "x-quorum-initial-group-size",
    "x-queue-leader-locator",
    EPOCH_ARGUMENT,
];

/// Arguments only classic queues accept.
const CLASSIC_ONLY: [&str; 4] = [
    "x-max-priority",
    "x-queue-mode",
    "x-queue-version",
    "x-queue-master-locator",
];
/// Arguments only quorum queues accept.
const QUORUM_ONLY: [&str; 5] = [
    "x-delivery-limit",
    "x-dead-letter-strategy",
    "x-quorum-initial-group-size",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
];
/// Arguments only stream queues accept.
const STREAM_ONLY: [&str; 3] = [
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
];
/// Arguments stream queues refuse although other types accept them.
const NOT_FOR_STREAMS: [&str; 4] = [
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-expires",
    "x-message-ttl",
];

/// A queue's type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    /// One node holds it (RabbitMQ's default).
    #[default]
    Classic,
    /// Replicated over a majority of nodes (Raft): what a cluster needs.
    Quorum,
    /// An append-only, replicated log that consumers re-read.
    Stream,
}

impl QueueType {
    /// The word RabbitMQ uses.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
            QueueType::Stream => "stream",
        }
    }

    /// The type queue arguments declare: classic when they name none, None when they name one
    /// god does not know.
    pub fn of(arguments: &Arguments) -> Option<Self> {
        match arguments.get(QUEUE_TYPE_ARG).and_then(Value::as_str) {
            None | Some("classic") => Some(QueueType::Classic),
            Some("quorum") => Some(QueueType::Quorum),
            Some("stream") => Some(QueueType::Stream),
            Some(_) => None,
        }
    }

    /// The type an argument belongs to when this type refuses it (RabbitMQ answers 406 from
    /// 3.11 on and ignores it before); None when this type accepts it.
    pub fn refuses(self, argument: &str) -> Option<&'static str> {
        let owner = if CLASSIC_ONLY.contains(&argument) {
            QueueType::Classic
        } else if QUORUM_ONLY.contains(&argument) {
            QueueType::Quorum
        } else if STREAM_ONLY.contains(&argument) {
            QueueType::Stream
        } else if self == QueueType::Stream && NOT_FOR_STREAMS.contains(&argument) {
            return Some("classic and quorum");
        } else {
            return None;
        };
        (owner != self).then(|| owner.as_str())
    }

    /// Whether queues of this type can dead-letter (streams cannot).
    pub fn dead_letters(self) -> bool {
        self != QueueType::Stream
    }

    /// The arguments that declare this type (none for classic, the default).
    fn arguments(self) -> Arguments {
        match self {
            QueueType::Classic => Arguments::new(),
            other => [(QUEUE_TYPE_ARG.to_string(), Value::from(other.as_str()))].into(),
        }
    }
}

/// What a quorum queue does with a message it dead-letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeadLetterStrategy {
    /// The broker's default: a dead-lettered message may be lost on the way.
    AtMostOnce,
    /// Kept until the dead-letter queue confirms it; needs `x-overflow: reject-publish`.
    AtLeastOnce,
}

/// Where a replicated queue's leader is placed at declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaderLocator {
    /// Spread over the nodes.
    Balanced,
    /// On the node the declaring client is connected to.
    ClientLocal,
}

impl LeaderLocator {
    /// The value of `x-queue-leader-locator`.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaderLocator::Balanced => "balanced",
            LeaderLocator::ClientLocal => "client-local",
        }
    }
}

/// The queue settings god offers by name: per service, and as the registry's `defaults`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSettings {
    /// The queue's type.
    #[serde(default)]
    pub queue_type: Option<QueueType>,
    /// The dead-letter queue's type (default: the queue's).
    #[serde(default)]
    pub dead_letter_queue_type: Option<QueueType>,
    /// Quorum: deliveries before a message is dead-lettered.
    #[serde(default)]
    pub delivery_limit: Option<u64>,
    /// Quorum: what dead-lettering guarantees.
    #[serde(default)]
    pub dead_letter_strategy: Option<DeadLetterStrategy>,
    /// Quorum: members at declaration.
    #[serde(default)]
    pub initial_group_size: Option<u64>,
    /// Quorum and stream: where the leader goes at declaration.
    #[serde(default)]
    pub leader_locator: Option<LeaderLocator>,
}

impl QueueSettings {
    /// These settings, with `defaults` filling in what they leave unset.
    pub fn or(&self, defaults: &QueueSettings) -> QueueSettings {
        QueueSettings {
            queue_type: self.queue_type.or(defaults.queue_type),
            dead_letter_queue_type: self
                .dead_letter_queue_type
                .or(defaults.dead_letter_queue_type),
            delivery_limit: self.delivery_limit.or(defaults.delivery_limit),
            dead_letter_strategy: self.dead_letter_strategy.or(defaults.dead_letter_strategy),
            initial_group_size: self.initial_group_size.or(defaults.initial_group_size),
            leader_locator: self.leader_locator.or(defaults.leader_locator),
        }
    }

    /// The quorum-only settings that are set, by their registry key.
    pub fn quorum_options(&self) -> Vec<&'static str> {
        [
            ("delivery_limit", self.delivery_limit.is_some()),
            ("dead_letter_strategy", self.dead_letter_strategy.is_some()),
            ("initial_group_size", self.initial_group_size.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(key, _)| key)
        .collect()
    }

    /// Every argument of a queue of type `queue_type` with these settings, as a topology
    /// file's queue is declared: [`Self::declared_arguments`] and [`Self::policy_arguments`].
    pub fn queue_arguments(&self, queue_type: QueueType) -> Arguments {
        let mut arguments = self.declared_arguments(queue_type);
        arguments.extend(self.policy_arguments(queue_type));
        arguments
    }

    /// What a queue of type `queue_type` is declared with, so what its consumers declare too:
    /// its type (none for classic) and, for quorum, its initial group size. RabbitMQ refuses
    /// (406) a declaration that leaves out an argument the queue has, these included.
    pub fn declared_arguments(&self, queue_type: QueueType) -> Arguments {
        let mut arguments = queue_type.arguments();
        if queue_type == QueueType::Quorum
            && let Some(size) = self.initial_group_size
        {
            arguments.insert("x-quorum-initial-group-size".into(), Value::from(size));
        }
        arguments
    }

    /// What god gives a queue of type `queue_type` through its policy instead, in argument
    /// form: where its leader goes, and for quorum its delivery limit and dead-letter strategy.
    /// Its consumers need not declare these.
    pub fn policy_arguments(&self, queue_type: QueueType) -> Arguments {
        let mut arguments = Arguments::new();
        if queue_type != QueueType::Classic
            && let Some(locator) = self.leader_locator
        {
            arguments.insert(LEADER_LOCATOR_ARG.into(), locator.as_str().into());
        }
        if queue_type != QueueType::Quorum {
            return arguments;
        }
        if let Some(limit) = self.delivery_limit {
            arguments.insert("x-delivery-limit".into(), Value::from(limit));
        }
        if self.dead_letter_strategy == Some(DeadLetterStrategy::AtLeastOnce) {
            arguments.extend(at_least_once());
        }
        arguments
    }

    /// The settings a queue's arguments declare by name, and the arguments left over: the
    /// inverse of [`QueueSettings::queue_arguments`] (`x-overflow: reject-publish` goes into
    /// `dead_letter_strategy: at-least-once` only beside it). Dead-letter arguments are left
    /// over like any other.
    pub fn from_arguments(arguments: &Arguments) -> (QueueSettings, Arguments) {
        let mut rest = arguments.clone();
        let queue_type = QueueType::of(arguments).filter(|t| *t != QueueType::Classic);
        if queue_type.is_some() {
            rest.remove(QUEUE_TYPE_ARG);
        }
        let mut settings = QueueSettings {
            queue_type,
            ..QueueSettings::default()
        };
        if queue_type != Some(QueueType::Quorum) {
            settings.leader_locator = take_locator(&mut rest, queue_type.is_some());
            return (settings, rest);
        }
        settings.delivery_limit = take_integer(&mut rest, "x-delivery-limit");
        settings.initial_group_size = take_integer(&mut rest, "x-quorum-initial-group-size");
        settings.leader_locator = take_locator(&mut rest, true);
        let at_least_once = rest.get("x-dead-letter-strategy").and_then(Value::as_str)
            == Some("at-least-once")
            && rest.get("x-overflow").and_then(Value::as_str) == Some("reject-publish");
        if at_least_once {
            rest.remove("x-dead-letter-strategy");
            rest.remove("x-overflow");
            settings.dead_letter_strategy = Some(DeadLetterStrategy::AtLeastOnce);
        }
        (settings, rest)
    }

    /// What god gives a queue of its own (a dead-letter or retry queue) of type `queue_type`
    /// through its policy: where its leader goes.
    pub fn placement_policy(&self, queue_type: QueueType) -> Arguments {
        let mut arguments = self.policy_arguments(queue_type);
        arguments.retain(|key, _| key == LEADER_LOCATOR_ARG);
        arguments
    }
}

/// The argument placing a replicated queue's leader (`queue-leader-locator` in a policy).
pub const LEADER_LOCATOR_ARG: &str = "x-queue-leader-locator";

/// The arguments of at-least-once dead-lettering from a quorum queue: the strategy, and the
/// overflow behaviour it needs.
pub fn at_least_once() -> Arguments {
    [
        (
            "x-dead-letter-strategy".to_string(),
            Value::from("at-least-once"),
        ),
        ("x-overflow".to_string(), Value::from("reject-publish")),
    ]
    .into()
}

/// Takes a non-negative integer argument out of `arguments`.
fn take_integer(arguments: &mut Arguments, key: &str) -> Option<u64> {
    let value = arguments.get(key)?.as_u64()?;
    arguments.remove(key);
    Some(value)
}

/// Takes `x-queue-leader-locator` out of `arguments` when `replicated` and it names a locator
/// god knows.
fn take_locator(arguments: &mut Arguments, replicated: bool) -> Option<LeaderLocator> {
    let raw = arguments.get(LEADER_LOCATOR_ARG)?;
    let locator = serde_json::from_value(raw.clone())
        .ok()
        .filter(|_| replicated)?;
    arguments.remove(LEADER_LOCATOR_ARG);
    Some(locator)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> Arguments {
        serde_json::from_value(v).unwrap()
    }

    /// A quorum queue's settings with every option set.
    fn every_quorum_option() -> QueueSettings {
        QueueSettings {
            queue_type: Some(QueueType::Quorum),
            delivery_limit: Some(5),
            dead_letter_strategy: Some(DeadLetterStrategy::AtLeastOnce),
            initial_group_size: Some(3),
            leader_locator: Some(LeaderLocator::Balanced),
            ..QueueSettings::default()
        }
    }

    #[test]
    fn quorum_settings_become_their_arguments_and_at_least_once_brings_its_overflow() {
        let settings = every_quorum_option();
        assert_eq!(
            settings.queue_arguments(QueueType::Quorum),
            args(json!({
                "x-queue-type": "quorum",
                "x-delivery-limit": 5,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
                "x-quorum-initial-group-size": 3,
                "x-queue-leader-locator": "balanced",
            }))
        );
        assert_eq!(
            settings.declared_arguments(QueueType::Quorum),
            args(json!({"x-queue-type": "quorum", "x-quorum-initial-group-size": 3})),
            "what consumers declare: the type, and the group size RabbitMQ compares"
        );
        assert_eq!(
            settings.policy_arguments(QueueType::Quorum),
            args(json!({
                "x-delivery-limit": 5,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
                "x-queue-leader-locator": "balanced",
            }))
        );
        assert_eq!(
            settings.placement_policy(QueueType::Quorum),
            args(json!({"x-queue-leader-locator": "balanced"}))
        );
        assert!(
            settings.queue_arguments(QueueType::Classic).is_empty(),
            "quorum options do not reach other types"
        );
    }

    #[test]
    fn named_settings_read_back_from_their_arguments_and_the_rest_is_left_over() {
        let settings = every_quorum_option();
        let mut declared = settings.queue_arguments(QueueType::Quorum);
        declared.extend(args(
            json!({"x-max-length": 100, "x-dead-letter-exchange": ""}),
        ));
        let (read_back, rest) = QueueSettings::from_arguments(&declared);
        assert_eq!(read_back, settings);
        assert_eq!(
            rest,
            args(json!({"x-max-length": 100, "x-dead-letter-exchange": ""}))
        );
        let (read_back, rest) =
            QueueSettings::from_arguments(&args(json!({"x-overflow": "reject-publish"})));
        assert_eq!(
            read_back,
            QueueSettings::default(),
            "classic: nothing by name"
        );
        assert_eq!(rest, args(json!({"x-overflow": "reject-publish"})));
    }

    #[test]
    fn a_service_setting_wins_over_the_default() {
        let defaults = QueueSettings {
            queue_type: Some(QueueType::Quorum),
            delivery_limit: Some(20),
            ..QueueSettings::default()
        };
        let own = QueueSettings {
            delivery_limit: Some(3),
            ..QueueSettings::default()
        };
        let merged = own.or(&defaults);
        assert_eq!(merged.queue_type, Some(QueueType::Quorum));
        assert_eq!(merged.delivery_limit, Some(3));
    }

    #[test]
    fn each_type_refuses_the_arguments_of_the_others() {
        assert_eq!(QueueType::Quorum.refuses("x-max-priority"), Some("classic"));
        assert_eq!(
            QueueType::Classic.refuses("x-delivery-limit"),
            Some("quorum")
        );
        assert_eq!(QueueType::Quorum.refuses("x-max-age"), Some("stream"));
        assert_eq!(
            QueueType::Stream.refuses("x-message-ttl"),
            Some("classic and quorum")
        );
        assert_eq!(QueueType::Quorum.refuses("x-message-ttl"), None);
        assert_eq!(QueueType::Quorum.refuses("x-delivery-limit"), None);
        assert_eq!(
            QueueType::of(&args(json!({"x-queue-type": "quorum"}))),
            Some(QueueType::Quorum)
        );
        assert_eq!(QueueType::of(&Arguments::new()), Some(QueueType::Classic));
        assert_eq!(QueueType::of(&args(json!({"x-queue-type": "odd"}))), None);
    }
}
