//! God's wiring of the queues it serves, beyond their declaration: what their consumers do not
//! declare (dead-lettering, retry stages' TTLs, quorum options, leader placement) comes from
//! policies, and a queue is declared only as its consumers declare it.
//!
//! Policies are grouped: every queue given the same settings shares one policy
//! (`god.queues.<digest>`, its pattern the list of those queues), because RabbitMQ matches
//! every queue against every policy: a policy per queue makes 3,000 services take minutes to
//! declare, where a few grouped policies cost little more than none. Dead letters need no
//! per-queue setting either: the group's policy sends them to god's headers exchange
//! `god.dead-letters`, whose binding per queue (on `x-first-death-queue`, which the broker sets
//! when a message first dies) leads them to that queue's dead-letter queue.
//!
//! An older god gave each queue a policy of its own (`god.dlx.<queue>`); such a policy, like a
//! queue's own arguments, still counts as wiring the queue has.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::arguments::Arguments;
use super::name_set;
use super::{
    ApplyTo, BindingSpec, DEAD_LETTER_POLICY_PREFIX, DEAD_LETTER_POLICY_PRIORITY, DLK_ARG, DLX_ARG,
    DeadLetterRoute, DestinationType, ExchangeKind, ExchangeSpec, PolicySpec, QueueSpec, Topology,
};

/// Prefix of god's grouped queue policies.
pub const QUEUE_POLICY_PREFIX: &str = "god.queues.";
/// God's headers exchange that leads each queue's dead letters to its dead-letter queue.
pub const DEAD_LETTERS_EXCHANGE: &str = "god.dead-letters";
/// The header the broker sets to the queue a message first died in.
pub const FIRST_DEATH_QUEUE: &str = "x-first-death-queue";
/// The header RabbitMQ 3.13 and later set to the queue a message died in last.
pub const LAST_DEATH_QUEUE: &str = "x-last-death-queue";

/// The dead-letters exchange: headers, durable, internal (no client publishes to it).
pub fn dead_letters_exchange() -> ExchangeSpec {
    ExchangeSpec {
        name: DEAD_LETTERS_EXCHANGE.to_string(),
        kind: ExchangeKind::Headers,
        durable: true,
        auto_delete: false,
        internal: true,
        arguments: Arguments::new(),
    }
}

/// The binding that leads the dead letters of `queue` to `target`: a message whose last death
/// was in `queue` (RabbitMQ 3.13 and later say so in `x-last-death-queue`), or, on 3.x before
/// 3.13, which has no such header, whose first death was (`x-first-death-queue`: god's retry
/// mover keeps that header, so it stays the service's queue through every retry). RabbitMQ
/// 4.0 keeps a message's death history itself, whatever headers a client publishes, so a
/// message back from a retry stage first died in the stage: only the last death names the
/// queue. `any-with-x` matches either header, `x-` headers included (plain `any` skips them).
pub fn dead_letters_binding(queue: &str, target: &str) -> BindingSpec {
    let mut binding = BindingSpec::queue(DEAD_LETTERS_EXCHANGE, target, "");
    binding.arguments = [
        ("x-match".to_string(), Value::from("any-with-x")),
        (FIRST_DEATH_QUEUE.to_string(), Value::from(queue)),
        (LAST_DEATH_QUEUE.to_string(), Value::from(queue)),
    ]
    .into();
    binding
}

/// The queue whose dead letters a binding of the dead-letters exchange takes.
pub fn first_death_queue(binding: &BindingSpec) -> Option<&str> {
    if binding.source != DEAD_LETTERS_EXCHANGE || binding.destination_type != DestinationType::Queue
    {
        return None;
    }
    binding.arguments.get(FIRST_DEATH_QUEUE)?.as_str()
}

/// The longest pattern a grouped policy is given. RabbitMQ compiles a policy's pattern with
/// PCRE, whose compiled patterns are limited to 64 KiB: an alternation of 5,000 queue names
/// (135,000 characters) is refused as "regular expression is too large". A group whose list is
/// longer is split into shards (see [`group_policies`]).
pub const MAX_GROUP_PATTERN: usize = 16_000;

/// The policy that gives `settings` (argument form) to `queues`: named by a digest of the
/// settings, so that it stays the same policy while queues join and leave it. The first shard
/// of its group (see [`group_policies`]).
pub fn group_policy(settings: &Arguments, queues: &BTreeSet<String>) -> PolicySpec {
    shard_policy(settings, name_set::pattern(queues), 0)
}

/// Shard `shard` of the policies that give `settings` to a group, for the queues `pattern`
/// matches: the first is named `god.queues.<digest>` (as before groups had shards), the others
/// `god.queues.<digest>.<n>`.
fn shard_policy(settings: &Arguments, pattern: String, shard: usize) -> PolicySpec {
    let definition = policy_definition(settings);
    let text = serde_json::to_string(&definition).expect("arguments serialise");
    let digest = hex::encode(&Sha256::digest(text.as_bytes())[..6]);
    let name = match shard {
        0 => format!("{QUEUE_POLICY_PREFIX}{digest}"),
        n => format!("{QUEUE_POLICY_PREFIX}{digest}.{n}"),
    };
    PolicySpec {
        name,
        pattern,
        apply_to: ApplyTo::Queues,
        priority: DEAD_LETTER_POLICY_PRIORITY,
        definition,
    }
}

/// `policy` naming `queues` instead, under its own name.
pub fn with_members(policy: &PolicySpec, queues: &BTreeSet<String>) -> PolicySpec {
    PolicySpec {
        pattern: name_set::pattern(queues),
        ..policy.clone()
    }
}

/// The shard of `shards` (a power of two) a queue belongs to: by a digest of its name, so a
/// queue stays in its shard while others come and go, and when the shards double, each splits
/// in two (its queues stay or move to the new one).
fn shard_of(queue: &str, shards: usize) -> usize {
    let digest = Sha256::digest(queue.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % shards as u64) as usize
}

/// The patterns of a group's queues in the fewest shards (a power of two) whose patterns all
/// fit in [`MAX_GROUP_PATTERN`], by shard; an empty shard has none.
fn shards(queues: &BTreeSet<String>) -> Vec<Option<String>> {
    let mut count = 1;
    loop {
        let mut split = vec![BTreeSet::new(); count];
        for queue in queues {
            split[shard_of(queue, count)].insert(queue.clone());
        }
        let patterns: Vec<Option<String>> = split
            .iter()
            .map(|members| (!members.is_empty()).then(|| name_set::pattern(members)))
            .collect();
        let fits = patterns
            .iter()
            .flatten()
            .all(|p| p.len() <= MAX_GROUP_PATTERN);
        if fits || count >= queues.len() {
            return patterns;
        }
        count *= 2;
    }
}

/// Settings in argument form (`x-message-ttl`) as a policy writes them (`message-ttl`).
pub fn policy_definition(settings: &Arguments) -> Arguments {
    settings
        .iter()
        .map(|(k, v)| (k.trim_start_matches("x-").to_string(), v.clone()))
        .collect()
}

/// A policy's definition in argument form: the inverse of [`policy_definition`].
pub fn argument_form(definition: &Arguments) -> Arguments {
    definition
        .iter()
        .map(|(k, v)| (format!("x-{k}"), v.clone()))
        .collect()
}

/// The queues one of god's grouped policies names, read back from its pattern (a plain
/// alternation of names, as older gods wrote it, or [`name_set::pattern`]'s form).
pub fn group_members(policy: &PolicySpec) -> Option<Vec<String>> {
    policy.name.strip_prefix(QUEUE_POLICY_PREFIX)?;
    name_set::names(&policy.pattern)
}

/// What god's wiring gives the queues of a topology, read once: the grouped policy of each
/// queue, an older god's per-queue policies, and the dead-letters exchange's bindings.
pub struct Wiring<'a> {
    topology: &'a Topology,
    grouped: HashMap<String, &'a PolicySpec>,
    dead_letter_targets: HashMap<&'a str, &'a str>,
}

impl Topology {
    /// The wiring of this topology's queues.
    pub fn wiring(&self) -> Wiring<'_> {
        let mut grouped = HashMap::new();
        for policy in self.policies.values() {
            for member in group_members(policy).into_iter().flatten() {
                grouped.entry(member).or_insert(policy);
            }
        }
        let dead_letter_targets = self
            .bindings
            .iter()
            .filter_map(|b| Some((first_death_queue(b)?, b.destination.as_str())))
            .collect();
        Wiring {
            topology: self,
            grouped,
            dead_letter_targets,
        }
    }
}

impl<'a> Wiring<'a> {
    /// What god's policies give `queue` (an older god's own policy for it first), in argument
    /// form.
    pub fn settings_of(&self, queue: &str) -> Arguments {
        self.policy_of(queue)
            .map(|p| argument_form(&p.definition))
            .unwrap_or_default()
    }

    /// The grouped policy that names `queue`, if any.
    pub fn group_of(&self, queue: &str) -> Option<&'a PolicySpec> {
        self.grouped.get(queue).copied()
    }

    /// An older god's policy of `queue`'s own (`god.dlx.<queue>`), if any.
    pub fn own_policy_of(&self, queue: &str) -> Option<&'a PolicySpec> {
        self.topology
            .policies
            .get(&format!("{DEAD_LETTER_POLICY_PREFIX}{queue}"))
    }

    /// God's policy that applies to `queue`, if any.
    pub fn policy_of(&self, queue: &str) -> Option<&'a PolicySpec> {
        self.own_policy_of(queue).or_else(|| self.group_of(queue))
    }

    /// The queue the dead-letters exchange leads the dead letters of `queue` to.
    pub fn dead_letter_target(&self, queue: &str) -> Option<&'a str> {
        self.dead_letter_targets.get(queue).copied()
    }

    /// Where `queue` dead-letters: its arguments' route, else the one god's policy gives it
    /// (queue arguments win over policies, as in RabbitMQ). Through the dead-letters exchange,
    /// that is its dead-letter queue, through the default exchange.
    pub fn dead_letter_route(&self, queue: &'a QueueSpec) -> Option<DeadLetterRoute<'a>> {
        let route = |settings: &'a Arguments, exchange: &str, key: &str| {
            Some(DeadLetterRoute {
                exchange: settings.get(exchange)?.as_str()?,
                routing_key: settings.get(key).and_then(Value::as_str),
            })
        };
        if queue.arguments.contains_key(DLX_ARG) {
            return route(&queue.arguments, DLX_ARG, DLK_ARG);
        }
        let definition = &self.policy_of(&queue.name)?.definition;
        let found = route(
            definition,
            "dead-letter-exchange",
            "dead-letter-routing-key",
        )?;
        if found.exchange != DEAD_LETTERS_EXCHANGE {
            return Some(found);
        }
        Some(DeadLetterRoute {
            exchange: "",
            routing_key: Some(self.dead_letter_target(&queue.name)?),
        })
    }

    /// The queue `queue` dead-letters into through the default exchange, if it does.
    pub fn dead_letter_queue_of(&self, queue: &'a QueueSpec) -> Option<&'a str> {
        self.dead_letter_route(queue)
            .filter(|r| r.exchange.is_empty())?
            .routing_key
    }
}

/// God's grouped policies for `settings` (each queue's, in argument form): one per distinct
/// settings, naming every queue given them; a group too large for one pattern gets as many
/// shards as it needs.
pub fn group_policies(settings: &BTreeMap<String, Arguments>) -> Vec<PolicySpec> {
    let mut groups: BTreeMap<String, (&Arguments, BTreeSet<String>)> = BTreeMap::new();
    for (queue, given) in settings.iter().filter(|(_, s)| !s.is_empty()) {
        let key = serde_json::to_string(given).expect("arguments serialise");
        groups
            .entry(key)
            .or_insert_with(|| (given, BTreeSet::new()))
            .1
            .insert(queue.clone());
    }
    groups
        .values()
        .flat_map(|(given, queues)| {
            shards(queues)
                .into_iter()
                .enumerate()
                .filter_map(|(i, pattern)| Some(shard_policy(given, pattern?, i)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_too_large_for_one_pattern_is_split_into_shards_that_each_fit() {
        let settings: Arguments = [(
            "x-dead-letter-exchange".to_string(),
            Value::from(DEAD_LETTERS_EXCHANGE),
        )]
        .into();
        // Names without common prefixes to write once: 5,000 of them do not fit in one pattern.
        let queues: BTreeMap<String, Arguments> = (0..5000)
            .map(|i| {
                let name = hex::encode(&Sha256::digest(format!("{i}").as_bytes())[..12]);
                (name, settings.clone())
            })
            .collect();
        let policies = group_policies(&queues);
        assert!(
            policies.len() > 1,
            "one pattern of 5,000 names is too large"
        );
        let mut seen = BTreeSet::new();
        for policy in &policies {
            assert!(
                policy.pattern.len() <= MAX_GROUP_PATTERN,
                "{}",
                policy.pattern.len()
            );
            for member in group_members(policy).unwrap() {
                assert!(seen.insert(member), "a queue in two shards");
            }
        }
        assert_eq!(seen.len(), 5000);
        let names: BTreeSet<&str> = policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names.len(), policies.len());
        let small = group_policy(&settings, &["q".to_string()].into());
        assert!(
            names.contains(small.name.as_str()),
            "the first shard keeps the group's name"
        );
        for (queue, _) in queues.iter().take(200) {
            let at = shard_of(queue, 8);
            assert!(
                [at, at + 8].contains(&shard_of(queue, 16)),
                "doubling splits a shard in two"
            );
        }
    }
    use serde_json::json;

    #[test]
    fn a_group_policy_names_its_queues_and_reads_them_back() {
        let settings: Arguments =
            serde_json::from_value(json!({"x-dead-letter-exchange": "god.dead-letters"})).unwrap();
        let queues: BTreeSet<String> = ["a.b", "c|d", "e(f)"].map(String::from).into();
        let policy = group_policy(&settings, &queues);
        assert!(policy.name.starts_with(QUEUE_POLICY_PREFIX));
        assert_eq!(
            policy.definition["dead-letter-exchange"],
            "god.dead-letters"
        );
        let pattern = regex::Regex::new(&policy.pattern).unwrap();
        for q in &queues {
            assert!(pattern.is_match(q), "{q}");
        }
        assert!(!pattern.is_match("a.bc") && !pattern.is_match("axb"));
        let members: BTreeSet<String> = group_members(&policy).unwrap().into_iter().collect();
        assert_eq!(members, queues);
        let other = group_policy(&settings, &["z".to_string()].into());
        assert_eq!(
            other.name, policy.name,
            "named by its settings, not its queues"
        );
    }

    #[test]
    fn common_prefixes_are_written_once_and_the_pattern_matches_exactly_its_queues() {
        let queues: BTreeSet<String> = [
            "q",
            "q_dlq",
            "q.retry",
            "q.retry.1",
            "services.a",
            "services.ab",
            "services.b(c)",
            "x|y",
            "ünï",
        ]
        .map(String::from)
        .into();
        let pattern = name_set::pattern(&queues);
        assert!(
            pattern.starts_with("^(?:q(?:|\\.retry(?:|\\.1)|_dlq)|services"),
            "{pattern}"
        );
        let compiled = regex::Regex::new(&pattern).unwrap();
        for q in &queues {
            assert!(compiled.is_match(q), "{q} in {pattern}");
        }
        for other in [
            "",
            "q_",
            "q.retry.",
            "services.",
            "services.abc",
            "x",
            "y",
            "qq",
        ] {
            assert!(!compiled.is_match(other), "{other} in {pattern}");
        }
        let policy = PolicySpec {
            name: format!("{QUEUE_POLICY_PREFIX}abc"),
            pattern,
            apply_to: ApplyTo::Queues,
            priority: 10,
            definition: Arguments::new(),
        };
        let back: BTreeSet<String> = group_members(&policy).unwrap().into_iter().collect();
        assert_eq!(back, queues);
        // An older god's plain alternation reads back the same way.
        let flat = PolicySpec {
            pattern: "^(?:a\\.b|c\\|d|e)$".to_string(),
            ..policy
        };
        assert_eq!(group_members(&flat).unwrap(), ["a.b", "c|d", "e"]);
    }

    #[test]
    fn the_platforms_naming_compresses_5000_services_into_one_short_pattern() {
        let queues: BTreeSet<String> = (0..5000)
            .map(|i| format!("services.bench.svc_{i:05}"))
            .collect();
        let pattern = name_set::pattern(&queues);
        let flat: usize = queues.iter().map(|q| regex::escape(q).len() + 1).sum();
        assert!(pattern.len() <= MAX_GROUP_PATTERN, "{}", pattern.len());
        assert!(pattern.len() * 5 < flat, "{} against {flat}", pattern.len());
    }

    #[test]
    fn dead_letters_reach_the_queue_the_exchange_binds() {
        let mut topology = Topology::default();
        let settings: Arguments =
            serde_json::from_value(json!({"x-dead-letter-exchange": DEAD_LETTERS_EXCHANGE}))
                .unwrap();
        let policy = group_policy(&settings, &["q".to_string()].into());
        topology.policies.insert(policy.name.clone(), policy);
        topology.bindings.insert(dead_letters_binding("q", "q_dlq"));
        let q = QueueSpec {
            name: "q".into(),
            durable: true,
            auto_delete: false,
            arguments: Arguments::new(),
        };
        assert_eq!(topology.wiring().dead_letter_queue_of(&q), Some("q_dlq"));
    }
}
