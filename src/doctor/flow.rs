//! Flow checks: are events moving? Consumers on the service queues (with the prefetch their
//! service asks for), backlog and dead letters against thresholds, produced event types that no
//! queue binds, and the relay's binding. [`gather`] reads the facts; the checks are pure.

use std::collections::{BTreeMap, BTreeSet};

use super::check::{Area, Check, QueueKind, Verdict, first_few};
use crate::model::desired::DesiredState;
use crate::model::topic;
use crate::model::{BindingSpec, ObservedState};
use crate::observe::rabbit::exact_counts;
use crate::rabbit::amqp::AmqpSession;
use crate::rabbit::management::{ConsumerEntry, ManagementApi};
use crate::services::relay::history;

/// Limits the flow checks compare against (`god doctor --max-depth ...`).
#[derive(Debug, Clone, Copy, PartialEq, clap::Args)]
pub struct Thresholds {
    /// Messages a service queue may hold before it is reported.
    #[arg(long, value_name = "N", default_value_t = Thresholds::DEFAULT.max_depth)]
    pub max_depth: u64,
    /// Messages a dead-letter queue may hold before it is reported.
    #[arg(long, value_name = "N", default_value_t = Thresholds::DEFAULT.max_dlq_depth)]
    pub max_dlq_depth: u64,
    /// Growth of a queue, in messages per second, before it is reported.
    #[arg(long, value_name = "RATE", default_value_t = Thresholds::DEFAULT.max_growth)]
    pub max_growth: f64,
}

impl Thresholds {
    /// The limits when none are given.
    pub const DEFAULT: Thresholds = Thresholds {
        max_depth: 1000,
        max_dlq_depth: 0,
        max_growth: 50.0,
    };
}

impl Default for Thresholds {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Depth, consumers and growth of one queue, from the management API.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueueFacts {
    /// Messages ready: exact for the registry's queues (AMQP), from the statistics otherwise.
    pub messages: u64,
    /// Consumers attached.
    pub consumers: u64,
    /// Change of the depth, in messages per second (negative when draining).
    pub growth: f64,
}

/// A relay's queue and the keys it is bound with on the bus exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayQueue {
    /// The queue (server-named, exclusive).
    pub queue: String,
    /// The connection that consumes from it, as the broker names it.
    pub connection: String,
    /// Its binding keys on the bus exchange.
    pub keys: Vec<String>,
    /// What it keeps, when it is a stream (the relay's history).
    pub history: Option<HistoryFacts>,
}

/// What a relay's history (a stream) holds and keeps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistoryFacts {
    /// Events in it (absent while the broker's statistics are not out yet).
    pub events: Option<u64>,
    /// How long it keeps them (`x-max-age`).
    pub max_age: Option<String>,
    /// How many bytes it keeps at most (`x-max-length-bytes`).
    pub max_bytes: Option<u64>,
    /// How long ago its oldest event was published (None: empty, or unknown).
    pub oldest_age: Option<std::time::Duration>,
}

impl HistoryFacts {
    /// The history of a queue, when the queue is a stream.
    fn of(queue: &crate::rabbit::management::QueueListEntry) -> Option<Self> {
        let arguments = &queue.arguments;
        (arguments.get("x-queue-type").and_then(|t| t.as_str()) == Some("stream")).then(|| Self {
            events: queue.messages,
            max_age: arguments
                .get("x-max-age")
                .and_then(|a| a.as_str())
                .map(str::to_string),
            max_bytes: arguments.get("x-max-length-bytes").and_then(|b| b.as_u64()),
            oldest_age: None,
        })
    }

    fn describe(&self) -> String {
        let events = self
            .events
            .map_or("an unknown number of".to_string(), |n| n.to_string());
        let age = self.max_age.as_deref().unwrap_or("no age limit");
        let bytes = self.max_bytes.map_or("no size limit".to_string(), |b| {
            format!("{b} bytes at most")
        });
        let oldest = self.oldest_age.map_or(String::new(), |a| {
            format!(
                " (the oldest {} ago)",
                crate::model::duration::format_millis(a.as_secs() * 1000)
            )
        });
        format!("{events} event(s){oldest}, kept {age}, {bytes}")
    }
}

/// A consumer as the broker lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerFacts {
    /// The queue it consumes from.
    pub queue: String,
    /// The consumer tag, to tell the consumers of one connection apart.
    pub tag: String,
    /// Its connection, as the broker names it.
    pub connection: String,
    /// Its prefetch limit (0: none).
    pub prefetch: u64,
}

impl From<&ConsumerEntry> for ConsumerFacts {
    fn from(c: &ConsumerEntry) -> Self {
        Self {
            queue: c.queue.name.clone(),
            tag: c.consumer_tag.clone(),
            connection: c.channel_details.connection_name.clone(),
            prefetch: c.prefetch_count,
        }
    }
}

/// What the flow checks look at.
#[derive(Debug, Clone, Default)]
pub struct FlowFacts {
    /// Every queue of the vhost, by name.
    pub queues: BTreeMap<String, QueueFacts>,
    /// The bindings of the vhost's durable queues (from the definitions export): transient
    /// listeners such as relays do not make an event type reach a service.
    pub bindings: Vec<BindingSpec>,
    /// The relays connected to the broker.
    pub relays: Vec<RelayQueue>,
    /// The consumers of the desired queues.
    pub consumers: Vec<ConsumerFacts>,
}

/// Reads the flow facts: queue statistics (exact depths and consumer counts of the desired
/// queues through AMQP when `session` is given, since the management API's statistics lag by
/// seconds), the durable bindings, the consumers, and the relays with their binding keys.
pub async fn gather(
    api: &ManagementApi,
    session: Option<&AmqpSession>,
    observed: &ObservedState,
    desired: &DesiredState,
) -> crate::error::Result<FlowFacts> {
    let mut queues: BTreeMap<String, QueueFacts> = api
        .queue_list()
        .await?
        .into_iter()
        .map(|q| {
            let facts = QueueFacts {
                messages: q.messages.unwrap_or(0),
                consumers: q.consumers.unwrap_or(0),
                growth: q.messages_details.unwrap_or_default().rate,
            };
            (q.name, facts)
        })
        .collect();
    if let Some(session) = session {
        let wanted: BTreeSet<String> = desired
            .owners
            .keys()
            .chain(desired.unroutable.iter())
            .filter(|q| observed.topology.queues.contains_key(*q))
            .cloned()
            .collect();
        for (name, exact) in exact_counts(session, &wanted).await? {
            let entry = queues.entry(name).or_default();
            entry.consumers = exact.consumers;
            // Ready messages: the backlog (unacknowledged ones are with a consumer already).
            entry.messages = exact.messages;
        }
    }
    let bindings = observed
        .topology
        .bindings
        .iter()
        .filter(|b| observed.topology.queues.contains_key(&b.destination))
        .cloned()
        .collect();
    let consumers = api.consumers().await?;
    let relays = relays(api, session, &consumers, &desired.exchange).await?;
    let consumers = consumers
        .iter()
        .filter(|c| desired.owners.contains_key(&c.queue.name))
        .map(ConsumerFacts::from)
        .collect();
    Ok(FlowFacts {
        queues,
        bindings,
        relays,
        consumers,
    })
}

/// The queues consumed by a god relay (found by its consumer tag), their binding keys and,
/// for a history, how old its oldest event is (read through `session`).
async fn relays(
    api: &ManagementApi,
    session: Option<&AmqpSession>,
    consumers: &[ConsumerEntry],
    exchange: &str,
) -> crate::error::Result<Vec<RelayQueue>> {
    let mut relays = Vec::new();
    for c in consumers
        .iter()
        .filter(|c| c.consumer_tag == crate::services::relay::CONSUMER_TAG)
    {
        // The consumer list lags: a relay that just went away may still be in it.
        let Some(bindings) = api.queue_bindings(&c.queue.name).await? else {
            continue;
        };
        let keys = bindings
            .into_iter()
            .filter(|b| b.source == exchange)
            .map(|b| b.routing_key)
            .collect();
        let mut history = api
            .queue(&c.queue.name)
            .await?
            .as_ref()
            .and_then(HistoryFacts::of);
        if let (Some(history), Some(session)) = (history.as_mut(), session) {
            history.oldest_age = oldest_age(session, &c.queue.name).await;
        }
        relays.push(RelayQueue {
            queue: c.queue.name.clone(),
            connection: c.channel_details.connection_name.clone(),
            keys,
            history,
        });
    }
    Ok(relays)
}

/// How long ago the first event of a stream was published (None when that cannot be read).
async fn oldest_age(session: &AmqpSession, stream: &str) -> Option<std::time::Duration> {
    let channel = session.channel().await.ok()?;
    let first = history::first_event_time(channel, stream).await.ok()??;
    let age = time::OffsetDateTime::now_utc() - first;
    age.try_into().ok()
}

/// The key a relay must be bound with to see every event.
pub const RELAY_KEY: &str = "#";

/// The flow checks. `relay_expected`: a relay should be running (components.toml runs one, or
/// `--relay-url` names one), so finding none is a failure. Relays are found through the
/// broker's consumer list, which the management API refreshes every few seconds.
pub fn checks(
    desired: &DesiredState,
    facts: &FlowFacts,
    thresholds: &Thresholds,
    relay_expected: bool,
) -> Vec<Check> {
    let mut checks = vec![
        consumers_check(desired, facts),
        prefetch_check(desired, facts),
        depth_check(desired, facts, thresholds, QueueKind::Main),
        depth_check(desired, facts, thresholds, QueueKind::DeadLetter),
        unroutable_check(desired, facts),
        relay_check(&desired.exchange, facts, relay_expected),
    ];
    checks.extend(relay_history_check(facts));
    if !desired.retry.is_empty() {
        checks.push(depth_check(desired, facts, thresholds, QueueKind::Retry));
    }
    if let Some(queue) = &desired.unroutable {
        checks.push(parked_check(queue, facts));
    }
    checks
}

/// The desired queues of one kind that exist, with their service and facts.
fn queues_of<'a>(
    desired: &'a DesiredState,
    facts: &'a FlowFacts,
    kind: QueueKind,
) -> impl Iterator<Item = (&'a str, &'a str, QueueFacts)> {
    desired.owners.iter().filter_map(move |(queue, owner)| {
        if QueueKind::of(&owner.role) != kind {
            return None;
        }
        let f = facts.queues.get(queue)?;
        Some((queue.as_str(), owner.service.as_str(), *f))
    })
}

fn consumers_check(desired: &DesiredState, facts: &FlowFacts) -> Check {
    let id = "flow.consumers";
    let idle: Vec<(&str, &str, QueueFacts)> = queues_of(desired, facts, QueueKind::Main)
        .filter(|(_, _, f)| f.consumers == 0)
        .collect();
    if idle.is_empty() {
        let n = queues_of(desired, facts, QueueKind::Main).count();
        return Check::ok(
            id,
            Area::Flow,
            format!("all {n} service queues have a consumer"),
        );
    }
    let services: BTreeSet<&str> = idle.iter().map(|(_, s, _)| *s).collect();
    let lines: Vec<String> = idle
        .iter()
        .map(|(q, s, f)| {
            format!(
                "{q} (service {s}): no consumer, {} message(s) waiting",
                f.messages
            )
        })
        .collect();
    Check::new(
        id,
        Area::Flow,
        Verdict::Warn,
        format!("{} active queue(s) have no consumer: their events pile up", idle.len()),
    )
    .with_details(first_few(&lines))
    .with_fix(format!(
        "start the consumer of {}; a service that is gone for good gets `status: deprecated` in registry.yaml",
        services.into_iter().collect::<Vec<_>>().join(", ")
    ))
}

/// Consumers whose prefetch differs from the `prefetch` their service declares.
fn prefetch_check(desired: &DesiredState, facts: &FlowFacts) -> Check {
    let id = "flow.prefetch";
    let declared: BTreeMap<&str, (&str, u32)> = desired
        .active_services()
        .filter_map(|(name, s)| Some((name.as_str(), s.prefetch?, &s.queues)))
        .flat_map(|(name, prefetch, queues)| {
            queues.iter().map(move |q| (q.as_str(), (name, prefetch)))
        })
        .collect();
    if declared.is_empty() {
        return Check::skip(
            id,
            Area::Flow,
            "no active service declares a `prefetch` in the registry",
        );
    }
    let mut compared = 0;
    let mut differing = Vec::new();
    let mut fixes = BTreeSet::new();
    for c in &facts.consumers {
        let Some((service, wanted)) = declared.get(c.queue.as_str()) else {
            continue;
        };
        compared += 1;
        if c.prefetch != u64::from(*wanted) {
            let theirs = match c.prefetch {
                0 => "no prefetch limit".to_string(),
                n => format!("prefetch {n}"),
            };
            differing.push(format!(
                "{} (service {service}): consumer {} on {} has {theirs}, the registry says {wanted}",
                c.queue, c.tag, c.connection
            ));
            fixes.insert(format!("{service}: {wanted}"));
        }
    }
    if differing.is_empty() {
        return Check::ok(
            id,
            Area::Flow,
            format!("all {compared} consumer(s) use the prefetch their service declares"),
        );
    }
    Check::new(
        id,
        Area::Flow,
        Verdict::Warn,
        format!("{} consumer(s) use another prefetch than their service declares", differing.len()),
    )
    .with_details(first_few(&differing))
    .with_fix(format!(
        "set the consumer's prefetch (basic.qos; aio-pika: `await channel.set_qos(prefetch_count=N)`) to what the registry says ({}), or change `prefetch` in registry.yaml to what the consumer needs",
        fixes.into_iter().collect::<Vec<_>>().join(", ")
    ))
}

fn depth_check(
    desired: &DesiredState,
    facts: &FlowFacts,
    limits: &Thresholds,
    kind: QueueKind,
) -> Check {
    let (id, what, max_depth) = match kind {
        QueueKind::Main => ("flow.backlog", "service queue", limits.max_depth),
        QueueKind::DeadLetter => (
            "flow.dead_letters",
            "dead-letter queue",
            limits.max_dlq_depth,
        ),
        QueueKind::Retry => ("flow.retry", "retry queue", limits.max_depth),
    };
    let over: Vec<String> = queues_of(desired, facts, kind)
        .filter(|(_, _, f)| f.messages > max_depth || f.growth > limits.max_growth)
        .map(|(q, s, f)| {
            format!(
                "{q} (service {s}): {} message(s) (limit {max_depth}), growing {:+.1}/s (limit {:.1}/s)",
                f.messages, f.growth, limits.max_growth
            )
        })
        .collect();
    if over.is_empty() {
        let depth = if max_depth == 0 {
            "empty".to_string()
        } else {
            format!("within {max_depth} message(s)")
        };
        return Check::ok(
            id,
            Area::Flow,
            format!(
                "every {what} is {depth}, growing at most {:.1}/s",
                limits.max_growth
            ),
        );
    }
    let fix = match kind {
        QueueKind::Main => {
            "the consumer is slower than its producers or stuck: check its logs and scale it; limits: --max-depth, --max-growth"
        }
        QueueKind::DeadLetter => {
            "these are messages consumers rejected: read them (`rabbitmqadmin get queue=<dlq>`), fix the cause, then re-publish or purge them; limit: --max-dlq-depth"
        }
        QueueKind::Retry => {
            "messages wait for a retry: their consumer keeps failing them (see its logs), or, in a <queue>.retry inbox, `god retry` is not running (builtin = \"retry\"); limit: --max-depth"
        }
    };
    Check::new(
        id,
        Area::Flow,
        Verdict::Warn,
        format!("{} {what}(s) over the limits", over.len()),
    )
    .with_details(first_few(&over))
    .with_fix(fix)
}

fn unroutable_check(desired: &DesiredState, facts: &FlowFacts) -> Check {
    let id = "flow.unroutable";
    let exchange = &desired.exchange;
    let produced: Vec<(&str, &str)> = desired
        .active_services()
        .flat_map(|(name, s)| s.produces.iter().map(move |k| (k.as_str(), name.as_str())))
        .collect();
    if produced.is_empty() {
        return Check::skip(
            id,
            Area::Flow,
            "no active service lists `produces` in the registry",
        );
    }
    let routed = |key: &str| {
        facts
            .bindings
            .iter()
            .any(|b| b.source == *exchange && topic::matches(&b.routing_key, key))
    };
    let unrouted: Vec<String> = produced
        .iter()
        .filter(|(key, _)| !routed(key))
        .map(|(key, service)| format!("{key} (produced by {service})"))
        .collect();
    if unrouted.is_empty() {
        return Check::ok(
            id,
            Area::Flow,
            format!(
                "all {} produced event types reach at least one queue",
                produced.len()
            ),
        );
    }
    Check::new(
        id,
        Area::Flow,
        Verdict::Warn,
        format!("{} produced event type(s) reach no queue: the gateway refuses them as unroutable", unrouted.len()),
    )
    .with_details(first_few(&unrouted))
    .with_fix("give a consuming service that routing key in registry.yaml and run `god apply`, or drop it from `produces`")
}

/// `flow.parked`: the events the bus exchange's alternate exchange kept because no binding
/// routed them (`exchange.unroutable`).
fn parked_check(queue: &str, facts: &FlowFacts) -> Check {
    let id = "flow.parked";
    let Some(found) = facts.queues.get(queue) else {
        return Check::new(
            id,
            Area::Flow,
            Verdict::Warn,
            format!("{queue}, the queue of unroutable events, does not exist"),
        )
        .with_fix("run `god apply`");
    };
    match found.messages {
        0 => Check::ok(id, Area::Flow, format!("no unroutable event is parked in {queue}")),
        n => Check::new(
            id,
            Area::Flow,
            Verdict::Warn,
            format!("{n} unroutable event(s) parked in {queue}: no queue's binding matched their routing key"),
        )
        .with_fix(format!("read them (`rabbitmqadmin get queue={queue} count=10`), give the service that should have them their routing key in registry.yaml and god apply, then publish them again or purge {queue}")),
    }
}

fn relay_check(exchange: &str, facts: &FlowFacts, relay_expected: bool) -> Check {
    let id = "flow.relay";
    if facts.relays.is_empty() {
        return if relay_expected {
            Check::new(id, Area::Flow, Verdict::Fail, "no relay is connected to the broker: dashboards receive no events")
                .with_fix("run `god apply` (it starts the relay), then `docker logs` of the relay container if it keeps failing")
        } else {
            Check::skip(
                id,
                Area::Flow,
                "no relay is connected and components.toml runs none",
            )
        };
    }
    let narrow: Vec<String> = facts
        .relays
        .iter()
        .filter(|r| !r.keys.iter().any(|k| k == RELAY_KEY))
        .map(|r| {
            let keys = if r.keys.is_empty() {
                "nothing".to_string()
            } else {
                r.keys.join(", ")
            };
            format!(
                "queue {} ({}) is bound to {exchange} with {keys}",
                r.queue, r.connection
            )
        })
        .collect();
    if narrow.is_empty() {
        return Check::ok(
            id,
            Area::Flow,
            format!(
                "{} relay queue(s) bound with `{RELAY_KEY}`: dashboards see every event",
                facts.relays.len()
            ),
        );
    }
    Check::new(
        id,
        Area::Flow,
        Verdict::Fail,
        format!("{} relay queue(s) not bound with `{RELAY_KEY}`: dashboards miss events", narrow.len()),
    )
    .with_details(narrow)
    .with_fix("restart the relay (it re-declares its queue bound with `#`), and check it is not started with a narrower --binding-key or RELAY_ROUTING_KEY")
}

/// `flow.relay_history`, when relays run: what each relay's history keeps; a relay without
/// one warns (a dashboard that reconnects to it misses what was sent meanwhile).
fn relay_history_check(facts: &FlowFacts) -> Option<Check> {
    let id = "flow.relay_history";
    if facts.relays.is_empty() {
        return None;
    }
    let details: Vec<String> = facts
        .relays
        .iter()
        .map(|r| match &r.history {
            Some(history) => format!("{} ({}): {}", r.queue, r.connection, history.describe()),
            None => format!("{} ({}): no history", r.queue, r.connection),
        })
        .collect();
    let without = facts.relays.iter().filter(|r| r.history.is_none()).count();
    let check = match without {
        0 => Check::ok(
            id,
            Area::Flow,
            format!("{} relay(s) keep a history: clients that reconnect get what they missed", facts.relays.len()),
        ),
        n => Check::new(
            id,
            Area::Flow,
            Verdict::Warn,
            format!("{n} relay(s) keep no history: a dashboard that reconnects misses the events sent meanwhile"),
        )
        .with_fix("run the relay without --no-history (GOD_RELAY_NO_HISTORY): its history is the stream god.relay.history"),
    };
    Some(check.with_details(details))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::validate::registry_from_text;
    use indoc::indoc;

    fn desired() -> DesiredState {
        let text = indoc! {r#"
            version: "1"
            exchange: {name: bus, type: topic, durable: true}
            services:
              a:
                queue_name: qa
                routing_keys: ["agent.#"]
                produces: [agent.x.said, task.done]
                prefetch: 10
        "#};
        registry_from_text(text).desired_state()
    }

    fn consumer(prefetch: u64) -> ConsumerFacts {
        ConsumerFacts {
            queue: "qa".into(),
            tag: "ctag-1".into(),
            connection: "127.0.0.1:5000 -> 127.0.0.1:5672".into(),
            prefetch,
        }
    }

    fn binding(queue: &str, key: &str) -> BindingSpec {
        BindingSpec::queue("bus", queue, key)
    }

    fn healthy() -> FlowFacts {
        let busy = QueueFacts {
            messages: 3,
            consumers: 1,
            growth: 0.0,
        };
        FlowFacts {
            queues: [
                ("qa".to_string(), busy),
                ("qa_dlq".to_string(), QueueFacts::default()),
                ("tasks".to_string(), busy),
            ]
            .into_iter()
            .collect(),
            bindings: vec![binding("qa", "agent.#"), binding("tasks", "task.*")],
            relays: vec![RelayQueue {
                queue: "god.relay.history".into(),
                connection: "god relay".into(),
                keys: vec!["#".into()],
                history: Some(HistoryFacts {
                    events: Some(12),
                    max_age: Some("1h".into()),
                    max_bytes: Some(1_000_000_000),
                    oldest_age: Some(std::time::Duration::from_secs(720)),
                }),
            }],
            consumers: vec![consumer(10)],
        }
    }

    fn by_id<'a>(checks: &'a [Check], id: &str) -> &'a Check {
        checks.iter().find(|c| c.id == id).expect(id)
    }

    #[test]
    fn a_healthy_flow_passes() {
        let checks = checks(&desired(), &healthy(), &Thresholds::default(), true);
        assert!(
            checks.iter().all(|c| c.status == Verdict::Ok),
            "{checks:#?}"
        );
    }

    #[test]
    fn a_relay_without_history_warns_and_one_with_says_what_it_keeps() {
        let facts = healthy();
        let kept = relay_history_check(&facts).unwrap();
        assert_eq!(kept.status, Verdict::Ok);
        assert!(
            format!("{kept:?}")
                .contains("12 event(s) (the oldest 12m ago), kept 1h, 1000000000 bytes at most"),
            "{kept:?}"
        );
        let mut facts = healthy();
        facts.relays[0].history = None;
        let none = relay_history_check(&facts).unwrap();
        assert_eq!(none.status, Verdict::Warn);
        facts.relays.clear();
        assert!(relay_history_check(&facts).is_none());
    }

    #[test]
    fn idle_queues_backlogs_and_dead_letters_are_warnings_with_a_fix() {
        let mut facts = healthy();
        facts.queues.insert(
            "qa".into(),
            QueueFacts {
                messages: 5000,
                consumers: 0,
                growth: 0.0,
            },
        );
        facts.queues.insert(
            "qa_dlq".into(),
            QueueFacts {
                messages: 2,
                consumers: 0,
                growth: 0.0,
            },
        );
        let checks = checks(&desired(), &facts, &Thresholds::default(), true);
        for id in ["flow.consumers", "flow.backlog", "flow.dead_letters"] {
            let c = by_id(&checks, id);
            assert_eq!(c.status, Verdict::Warn, "{c:?}");
            assert!(c.fix.is_some());
        }
        assert!(
            by_id(&checks, "flow.consumers")
                .fix
                .as_deref()
                .unwrap()
                .contains("a")
        );
        assert!(by_id(&checks, "flow.dead_letters").details[0].starts_with("qa_dlq"));
    }

    #[test]
    fn growth_alone_crosses_the_threshold() {
        let mut facts = healthy();
        facts.queues.insert(
            "qa".into(),
            QueueFacts {
                messages: 10,
                consumers: 1,
                growth: 120.0,
            },
        );
        let checks = checks(&desired(), &facts, &Thresholds::default(), true);
        assert_eq!(by_id(&checks, "flow.backlog").status, Verdict::Warn);
    }

    #[test]
    fn produced_keys_follow_topic_rules_and_a_narrow_relay_fails() {
        let mut facts = healthy();
        facts.bindings = vec![binding("qa", "agent.*"), binding("tasks", "task.#")];
        facts.relays[0].keys = vec!["agent.#".into()];
        let checks = checks(&desired(), &facts, &Thresholds::default(), true);
        let unroutable = by_id(&checks, "flow.unroutable");
        assert_eq!(unroutable.status, Verdict::Warn);
        assert_eq!(unroutable.details, vec!["agent.x.said (produced by a)"]);
        let relay = by_id(&checks, "flow.relay");
        assert_eq!(relay.status, Verdict::Fail);
        assert!(relay.details[0].contains("agent.#"), "{relay:?}");
    }

    #[test]
    fn a_missing_relay_fails_only_when_one_is_expected() {
        let mut facts = healthy();
        facts.relays.clear();
        let d = desired();
        let expected = checks(&d, &facts, &Thresholds::default(), true);
        assert_eq!(by_id(&expected, "flow.relay").status, Verdict::Fail);
        let optional = checks(&d, &facts, &Thresholds::default(), false);
        assert_eq!(by_id(&optional, "flow.relay").status, Verdict::Skip);
    }

    #[test]
    fn a_consumer_with_another_prefetch_warns_naming_both_numbers() {
        let mut facts = healthy();
        facts.consumers = vec![consumer(10), consumer(0)];
        let checks = checks(&desired(), &facts, &Thresholds::default(), true);
        let c = by_id(&checks, "flow.prefetch");
        assert_eq!(c.status, Verdict::Warn);
        assert_eq!(
            c.details,
            vec![
                "qa (service a): consumer ctag-1 on 127.0.0.1:5000 -> 127.0.0.1:5672 has no prefetch limit, the registry says 10"
            ]
        );
        assert!(c.fix.as_deref().unwrap().contains("(a: 10)"), "{c:?}");
    }
}
