//! What RabbitMQ 4.x changed that a live vhost may still rely on: deprecated features in use
//! (transient non-exclusive queues, global QoS, classic mirroring's `ha-*` policy keys, which
//! 4.0 ignores) and quorum queues left to 4.0's default delivery limit of 20. On 3.x these
//! checks say nothing: the features are not deprecated there, and the limit is unset.

use super::check::{Area, Check, Problem, Verdict, first_few, within};
use crate::rabbit::management::{ExportedPolicy, ManagementApi};
use crate::rabbit::settings::{ChannelEntry, DeprecatedFeature, QueueSettings};

/// The delivery limit quorum queues get on RabbitMQ 4.0 and later unless one is set.
pub const DEFAULT_DELIVERY_LIMIT: u32 = 20;

/// What the checks read of the vhost.
pub struct Facts {
    /// Its queues' settings.
    pub queues: Vec<QueueSettings>,
    /// Its channels.
    pub channels: Vec<ChannelEntry>,
    /// Its policies.
    pub policies: Vec<ExportedPolicy>,
    /// The deprecated features the broker itself sees in use (on every vhost).
    pub used: Vec<DeprecatedFeature>,
}

/// The features whose objects the checks name themselves; the broker's list of features in
/// use adds the others.
const NAMED_HERE: [&str; 3] = [
    "transient_nonexcl_queues",
    "global_qos",
    "classic_queue_mirroring",
];

/// The 4.x checks of the vhost when the broker runs RabbitMQ 4 or later; none otherwise.
pub async fn checks(api: &ManagementApi, version: &str, limit: std::time::Duration) -> Vec<Check> {
    if !is_4x(version) {
        return Vec::new();
    }
    let facts = async {
        let (queues, channels, policies, used) = tokio::try_join!(
            api.queue_settings(),
            api.channels(),
            api.policies(),
            api.deprecated_features_used()
        )?;
        Ok::<_, crate::error::GodError>(Facts {
            queues,
            channels,
            policies,
            used,
        })
    };
    match within(limit, facts).await {
        Ok(facts) => vec![deprecated_check(&facts), delivery_limit_check(&facts)],
        Err(problem) => vec![unreadable(&problem)],
    }
}

/// Whether a RabbitMQ version is 4.0 or later.
pub fn is_4x(version: &str) -> bool {
    version
        .split('.')
        .next()
        .and_then(|major| major.parse::<u32>().ok())
        .is_some_and(|major| major >= 4)
}

fn unreadable(problem: &Problem) -> Check {
    Check::new(
        "broker.deprecated",
        Area::Broker,
        Verdict::Fail,
        format!("cannot read the vhost's queues, channels and policies: {problem}"),
    )
}

/// `broker.deprecated`: each deprecated feature in use, named with its object and its fix.
pub fn deprecated_check(facts: &Facts) -> Check {
    let mut findings = Vec::new();
    let mut fixes = Vec::new();
    let transient: Vec<&str> = facts
        .queues
        .iter()
        .filter(|q| !q.durable && !q.exclusive)
        .map(|q| q.name.as_str())
        .collect();
    if !transient.is_empty() {
        findings.extend(transient.iter().map(|q| {
            format!("queue \"{q}\" is transient and not exclusive (transient_nonexcl_queues)")
        }));
        fixes.push("declare those queues durable (or exclusive to their connection)");
    }
    let global: Vec<&ChannelEntry> = facts
        .channels
        .iter()
        .filter(|c| c.global_prefetch_count > 0)
        .collect();
    if !global.is_empty() {
        findings.extend(global.iter().map(|c| {
            format!(
                "channel \"{}\" sets a prefetch of {} for all its consumers at once (global_qos)",
                c.name, c.global_prefetch_count
            )
        }));
        fixes.push("set the prefetch per consumer (basic.qos with global=false, what FastStream and aio-pika do by default)");
    }
    let mirroring: Vec<String> = facts.policies.iter().filter_map(mirroring_keys).collect();
    if !mirroring.is_empty() {
        findings.extend(mirroring);
        fixes.push("remove the ha-* keys: classic mirroring is gone since 4.0, so those queues have one copy; replicate with quorum queues (queue_type: quorum)");
    }
    let others: Vec<&DeprecatedFeature> = facts
        .used
        .iter()
        .filter(|f| !NAMED_HERE.contains(&f.name.as_str()))
        .collect();
    if !others.is_empty() {
        findings.extend(others.iter().map(|f| {
            format!(
                "the broker reports deprecated feature {} in use ({})",
                f.name, f.doc_url
            )
        }));
        fixes.push("see each feature's page: RabbitMQ will deny it by default, then remove it");
    }
    if findings.is_empty() {
        return Check::ok(
            "broker.deprecated",
            Area::Broker,
            "no deprecated feature in use (transient non-exclusive queues, global QoS, ha-* policy keys)",
        );
    }
    Check::new(
        "broker.deprecated",
        Area::Broker,
        Verdict::Warn,
        format!(
            "{} use(s) of features RabbitMQ 4.x deprecated or removed",
            findings.len()
        ),
    )
    .with_details(first_few(&findings))
    .with_fix(fixes.join("; "))
}

/// What a policy says of classic mirroring, if anything.
fn mirroring_keys(policy: &ExportedPolicy) -> Option<String> {
    let keys: Vec<&str> = policy
        .definition
        .keys()
        .map(String::as_str)
        .filter(|k| k.starts_with("ha-"))
        .collect();
    (!keys.is_empty()).then(|| {
        format!(
            "policy \"{}\" sets {}, ignored since 4.0 (classic mirroring is removed)",
            policy.name,
            keys.join(", ")
        )
    })
}

/// `topology.delivery_limit`: quorum queues without a delivery limit of their own, which 4.0
/// dead-letters (or drops, without a dead-letter target) after 20 redeliveries.
pub fn delivery_limit_check(facts: &Facts) -> Check {
    let defaulted: Vec<String> = facts
        .queues
        .iter()
        .filter(|q| q.kind == "quorum" && !has_delivery_limit(q, &facts.policies))
        .map(|q| q.name.clone())
        .collect();
    if defaulted.is_empty() {
        return Check::ok(
            "topology.delivery_limit",
            Area::Topology,
            "every quorum queue has a delivery limit of its own",
        );
    }
    Check::new(
        "topology.delivery_limit",
        Area::Topology,
        Verdict::Warn,
        format!(
            "{} quorum queue(s) rely on RabbitMQ 4's default delivery limit of {DEFAULT_DELIVERY_LIMIT}: a message redelivered {DEFAULT_DELIVERY_LIMIT} times is dead-lettered, or dropped where the queue has no dead-letter target",
            defaulted.len()
        ),
    )
    .with_details(first_few(&defaulted))
    .with_fix("set the limit you mean: `delivery_limit: N` on the service in registry.yaml (or in topology/), then `god apply`; -1 on RabbitMQ 4 means no limit")
}

/// Whether a queue has a delivery limit of its own: its argument, or its policy's setting.
fn has_delivery_limit(queue: &QueueSettings, policies: &[ExportedPolicy]) -> bool {
    let in_policy = |name: &String| {
        policies
            .iter()
            .any(|p| &p.name == name && p.definition.contains_key("delivery-limit"))
    };
    queue.arguments.contains_key("x-delivery-limit") || queue.policy.as_ref().is_some_and(in_policy)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn queue(name: &str, settings: Value) -> QueueSettings {
        let mut entry = json!({"name": name, "durable": true, "type": "classic"});
        entry
            .as_object_mut()
            .unwrap()
            .extend(settings.as_object().unwrap().clone());
        serde_json::from_value(entry).unwrap()
    }

    fn facts(queues: Vec<QueueSettings>, channels: Value, policies: Value) -> Facts {
        Facts {
            queues,
            channels: serde_json::from_value(channels).unwrap(),
            policies: serde_json::from_value(policies).unwrap(),
            used: Vec::new(),
        }
    }

    #[test]
    fn only_version_4_and_later_are_checked() {
        assert!(is_4x("4.0.5"));
        assert!(is_4x("4.1.0"));
        assert!(!is_4x("3.13.7"));
        assert!(!is_4x("3.10.8"));
        assert!(!is_4x(""));
    }

    #[test]
    fn each_deprecated_feature_is_named_with_its_object() {
        let f = facts(
            vec![
                queue("scratch", json!({"durable": false})),
                queue("mine", json!({"durable": false, "exclusive": true})),
                queue("kept", json!({})),
            ],
            json!([{"name": "127.0.0.1:5000 -> 127.0.0.1:5672 (1)", "global_prefetch_count": 10},
                   {"name": "127.0.0.1:5001 -> 127.0.0.1:5672 (1)", "global_prefetch_count": 0}]),
            json!([{"name": "mirror", "pattern": ".*", "apply-to": "queues", "priority": 0,
                    "definition": {"ha-mode": "all", "max-length": 10}}]),
        );
        let check = deprecated_check(&f);
        assert_eq!(check.status, Verdict::Warn);
        let details = check.details.join("\n");
        assert!(
            details.contains("queue \"scratch\" is transient"),
            "{details}"
        );
        assert!(
            !details.contains("\"mine\"") && !details.contains("\"kept\""),
            "{details}"
        );
        assert!(details.contains("127.0.0.1:5000 -> 127.0.0.1:5672 (1)\" sets a prefetch of 10"));
        assert!(details.contains("policy \"mirror\" sets ha-mode, ignored since 4.0"));
        let fix = check.fix.unwrap();
        assert!(fix.contains("durable") && fix.contains("per consumer") && fix.contains("quorum"));
    }

    #[test]
    fn features_the_broker_reports_in_use_are_named_unless_named_by_object() {
        let mut f = facts(
            vec![queue("scratch", json!({"durable": false}))],
            json!([]),
            json!([]),
        );
        f.used = serde_json::from_value(json!([
            {"name": "transient_nonexcl_queues", "doc_url": "https://x/transient"},
            {"name": "ram_node_type", "doc_url": "https://x/ram"}
        ]))
        .unwrap();
        let details = deprecated_check(&f).details.join("\n");
        assert!(details.contains("deprecated feature ram_node_type in use (https://x/ram)"));
        assert!(!details.contains("https://x/transient"), "{details}");
        assert!(details.contains("queue \"scratch\""), "{details}");
    }

    #[test]
    fn a_vhost_without_deprecated_features_is_ok() {
        let f = facts(vec![queue("kept", json!({}))], json!([]), json!([]));
        assert_eq!(deprecated_check(&f).status, Verdict::Ok);
    }

    #[test]
    fn quorum_queues_without_a_limit_of_their_own_are_named() {
        let queues = vec![
            queue("plain", json!({"type": "quorum"})),
            queue(
                "by_argument",
                json!({"type": "quorum", "arguments": {"x-delivery-limit": 5}}),
            ),
            queue("by_policy", json!({"type": "quorum", "policy": "limits"})),
            queue(
                "other_policy",
                json!({"type": "quorum", "policy": "lengths"}),
            ),
            queue("classic", json!({})),
        ];
        let policies = json!([
            {"name": "limits", "pattern": ".", "apply-to": "queues", "priority": 0, "definition": {"delivery-limit": -1}},
            {"name": "lengths", "pattern": ".", "apply-to": "queues", "priority": 0, "definition": {"max-length": 9}}
        ]);
        let mut f = facts(queues, json!([]), policies);
        let check = delivery_limit_check(&f);
        assert_eq!(check.status, Verdict::Warn);
        assert_eq!(
            check.details,
            vec!["plain".to_string(), "other_policy".to_string()]
        );
        assert!(check.summary.contains("default delivery limit of 20"));
        f.queues
            .retain(|q| q.name != "plain" && q.name != "other_policy");
        assert_eq!(delivery_limit_check(&f).status, Verdict::Ok);
    }
}
