//! topology/ on the real broker: every kind of object applies, converges, routes as declared,
//! is adopted when it exists, and `--prune` removes only what god created; another
//! application's objects are never touched.

mod support;

use std::path::{Path, PathBuf};

use indoc::indoc;
use serde_json::{Value, json};
use support::*;

const REGISTRY: &str = indoc! {r#"
    version: "1.0"
    exchange:
      name: bus
      type: topic
    services:
      svc:
        queue_name: svc.q
        routing_keys: ["svc.#"]
"#};

/// One file of each kind of object: exchanges of the four types with an alternate exchange,
/// an exchange-to-exchange binding, a headers binding, standalone queues with TTL, length
/// limit, overflow and dead-lettering, a policy, an operator policy and vhost limits.
const EVERY_KIND: &str = indoc! {r#"
    exchanges:
      audit.headers:
        type: headers
        alternate_exchange: audit.unrouted
      audit.unrouted:
        type: fanout
      audit.fan:
        type: fanout
        internal: true
      audit.direct:
        type: direct
    queues:
      audit.parked:
        max_length: 1000
        overflow: reject-publish
        bindings:
          - exchange: audit.unrouted
      audit.expiring:
        queue_type: quorum
        message_ttl: 1s
        dead_letter_exchange: audit.direct
        dead_letter_routing_key: expired
      audit.expired:
        bindings:
          - exchange: audit.direct
            routing_key: expired
      audit.matched:
        bindings:
          - exchange: audit.headers
            arguments: {x-match: all, kind: audit}
    bindings:
      - source: bus
        destination: audit.fan
        destination_type: exchange
        routing_key: "audit.#"
      - source: audit.fan
        destination: audit.expiring
    policies:
      audit-cap:
        pattern: "^audit\\.parked$"
        apply_to: queues
        priority: 1
        definition: {max-length: 500}
    operator_policies:
      audit-bytes:
        pattern: "^audit\\."
        apply_to: queues
        definition: {max-length-bytes: 100000000}
    limits:
      max_queues: 100
      max_connections: 50
"#};

/// A registry and a topology folder beside it.
fn inputs(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let (dir, registry) = registry(REGISTRY);
    let topology = dir.path().join("topology");
    std::fs::create_dir(&topology).unwrap();
    for (name, text) in files {
        std::fs::write(topology.join(name), text).unwrap();
    }
    (dir, registry)
}

fn write_topology(registry: &Path, name: &str, text: &str) {
    let path = registry.parent().unwrap().join("topology").join(name);
    std::fs::write(path, text).unwrap();
}

fn plan(v: &TestVhost, registry: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["plan", "--json"];
    args.extend_from_slice(extra);
    let out = v.run(registry, &args);
    assert_exit(&out, 0);
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan --json prints JSON");
    assert_plan_schema(&plan);
    plan
}

fn changes(plan: &Value) -> Vec<(String, String)> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["action"].as_str().unwrap().to_string(),
                c["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[track_caller]
fn apply(v: &TestVhost, registry: &Path, extra: &[&str]) {
    let mut args = vec!["apply", "--auto-approve"];
    args.extend_from_slice(extra);
    let out = v.run(registry, &args);
    assert_exit(&out, 0);
}

#[track_caller]
fn assert_converged(v: &TestVhost, registry: &Path) {
    let plan = plan(v, registry, &[]);
    assert!(changes(&plan).is_empty(), "not converged: {plan:#}");
}

fn get(v: &TestVhost, path: &str) -> Option<Value> {
    v.try_api("GET", &format!("{path}/{}", encode(&v.name)), None)
        .ok()
}

fn named(v: &TestVhost, kind: &str, name: &str) -> Option<Value> {
    v.try_api(
        "GET",
        &format!("{kind}/{}/{}", encode(&v.name), encode(name)),
        None,
    )
    .ok()
}

fn publish_with_headers(v: &TestVhost, exchange: &str, key: &str, headers: &[(&str, &str)]) {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.amqp(|ch| async move {
        use lapin::types::{AMQPValue, FieldTable, ShortString};
        ch.confirm_select(Default::default()).await.unwrap();
        let mut table = FieldTable::default();
        for (k, val) in headers {
            table.insert(ShortString::from(k), AMQPValue::LongString(val.into()));
        }
        ch.basic_publish(
            exchange.into(),
            key.into(),
            Default::default(),
            b"event",
            lapin::BasicProperties::default()
                .with_delivery_mode(2)
                .with_headers(table),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    })
}

#[test]
fn every_kind_of_object_applies_routes_as_declared_and_converges() {
    let v = TestVhost::new("topo-kinds");
    let (_dir, registry) = inputs(&[("audit.yaml", EVERY_KIND)]);
    let first = plan(&v, &registry, &[]);
    let created: Vec<String> = changes(&first)
        .into_iter()
        .filter(|(action, _)| action == "create")
        .map(|(_, id)| id)
        .collect();
    for id in [
        "exchange/audit.headers",
        "queue/audit.expiring",
        "binding/bus/exchange/audit.fan/audit.#",
        "binding/audit.headers/queue/audit.matched/{kind=\"audit\", x-match=\"all\"}",
        "policy/audit-cap",
        "operator_policy/audit-bytes",
        "limit/max-queues",
        "limit/max-connections",
    ] {
        assert!(
            created.contains(&id.to_string()),
            "{id} not created: {created:?}"
        );
    }
    apply(&v, &registry, &[]);
    assert_converged(&v, &registry);

    let headers = named(&v, "exchanges", "audit.headers").expect("the headers exchange exists");
    assert_eq!(headers["type"], "headers");
    assert_eq!(headers["arguments"]["alternate-exchange"], "audit.unrouted");
    assert_eq!(
        named(&v, "exchanges", "audit.fan").unwrap()["internal"],
        true
    );
    let expiring = v.queue("audit.expiring").unwrap();
    assert_eq!(expiring["arguments"]["x-queue-type"], "quorum");
    assert_eq!(expiring["arguments"]["x-message-ttl"], 1000);
    let operator = get(&v, "operator-policies").unwrap();
    assert_eq!(operator[0]["name"], "audit-bytes", "{operator}");
    let limits = get(&v, "vhost-limits").unwrap();
    assert_eq!(
        limits[0]["value"],
        json!({"max-queues": 100, "max-connections": 50})
    );

    // A headers binding matches on its headers, and what it does not route goes to the
    // alternate exchange's queue.
    publish_with_headers(&v, "audit.headers", "", &[("kind", "audit")]);
    publish_with_headers(&v, "audit.headers", "", &[("kind", "other")]);
    assert_eq!(v.depth("audit.matched"), 1);
    assert_eq!(v.depth("audit.parked"), 1);
    // bus → audit.fan (exchange to exchange) → audit.expiring, whose TTL dead-letters the event
    // through audit.direct into audit.expired.
    v.publish("bus", "audit.login", "login");
    assert_eq!(v.await_message("audit.expired").as_deref(), Some("login"));
}

#[test]
fn prune_removes_only_what_god_created_and_never_another_applications_objects() {
    let v = TestVhost::new("topo-prune");
    // Another application's objects: one god's topology also declares (adopted), and some
    // god never heard of, one of them bound to an exchange god manages.
    v.put_queue(
        "audit.parked",
        json!({"x-max-length": 1000, "x-overflow": "reject-publish"}),
    );
    v.api(
        "PUT",
        &format!("policies/{}/audit-cap", encode(&v.name)),
        Some(json!({"pattern": "^audit\\.parked$", "apply-to": "queues", "priority": 1, "definition": {"max-length": 7}})),
    );
    v.put_queue("theirs", json!({}));
    v.api(
        "PUT",
        &format!("exchanges/{}/theirs.x", encode(&v.name)),
        Some(json!({"type": "fanout", "durable": true})),
    );
    v.api(
        "PUT",
        &format!("policies/{}/theirs-policy", encode(&v.name)),
        Some(json!({"pattern": "^theirs$", "definition": {"max-length": 5}})),
    );
    let (_dir, registry) = inputs(&[("audit.yaml", EVERY_KIND)]);
    let first = plan(&v, &registry, &[]);
    let first_changes = changes(&first);
    assert!(
        first_changes.contains(&("adopt".into(), "queue/audit.parked".into())),
        "{first_changes:?}"
    );
    // A policy of the same name with another definition is adopted and set to god's.
    assert!(
        first_changes.contains(&("adopt".into(), "policy/audit-cap".into())),
        "{first_changes:?}"
    );
    apply(&v, &registry, &[]);
    assert_eq!(
        named(&v, "policies", "audit-cap").unwrap()["definition"]["max-length"],
        500
    );
    v.api(
        "POST",
        &format!("bindings/{}/e/audit.unrouted/q/theirs", encode(&v.name)),
        Some(json!({"routing_key": "", "arguments": {}})),
    );
    assert_converged(&v, &registry);

    // Everything leaves the inputs.
    write_topology(&registry, "audit.yaml", "{}\n");
    let without_prune = plan(&v, &registry, &[]);
    let deletions: Vec<(String, String)> = changes(&without_prune)
        .into_iter()
        .filter(|(action, _)| action == "delete")
        .collect();
    assert!(
        deletions.is_empty(),
        "nothing is deleted without --prune: {deletions:?}"
    );
    let pruned = plan(&v, &registry, &["--prune"]);
    let deleted: Vec<String> = changes(&pruned)
        .into_iter()
        .filter(|(action, _)| action == "delete")
        .map(|(_, id)| id)
        .collect();
    for id in [
        "exchange/audit.headers",
        "queue/audit.expiring",
        "operator_policy/audit-bytes",
        "limit/max-queues",
    ] {
        assert!(
            deleted.contains(&id.to_string()),
            "{id} not pruned: {deleted:?}"
        );
    }
    for kept in [
        "queue/audit.parked",
        "policy/audit-cap",
        "queue/theirs",
        "exchange/theirs.x",
        "policy/theirs-policy",
    ] {
        assert!(
            !deleted.contains(&kept.to_string()),
            "{kept} must be kept: {deleted:?}"
        );
    }
    let orphans: Vec<&str> = pruned["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "orphan")
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert!(
        orphans.contains(&"queue/audit.parked") && orphans.contains(&"policy/audit-cap"),
        "{orphans:?}"
    );

    // audit.unrouted is still bound to another application's queue: the exchange is kept.
    let out = v.run(&registry, &["apply", "--prune", "--auto-approve"]);
    assert_exit(&out, 1);
    assert!(
        text(&out).contains("other objects are still bound to it"),
        "{}",
        text(&out)
    );
    assert!(named(&v, "exchanges", "audit.headers").is_none());
    assert!(v.queue("audit.expiring").is_none());
    assert_eq!(get(&v, "operator-policies").unwrap(), json!([]));
    assert_eq!(get(&v, "vhost-limits").unwrap(), json!([]));
    for (kind, name) in [
        ("queues", "audit.parked"),
        ("policies", "audit-cap"),
        ("queues", "theirs"),
        ("exchanges", "theirs.x"),
        ("policies", "theirs-policy"),
        ("exchanges", "audit.unrouted"),
    ] {
        assert!(
            named(&v, kind, name).is_some(),
            "{kind}/{name} must be kept"
        );
    }

    // Once the other application lets go, the exchange god created goes too, and a policy
    // made again by someone else under a pruned name is not god's.
    v.api(
        "DELETE",
        &format!("queues/{}/theirs", encode(&v.name)),
        None,
    );
    v.api(
        "PUT",
        &format!("operator-policies/{}/audit-bytes", encode(&v.name)),
        Some(json!({"pattern": "^x$", "apply-to": "queues", "definition": {"max-length": 1}})),
    );
    apply(&v, &registry, &["--prune"]);
    assert!(named(&v, "exchanges", "audit.unrouted").is_none());
    assert!(
        named(&v, "operator-policies", "audit-bytes").is_some(),
        "not god's any more"
    );
    let last = plan(&v, &registry, &["--prune"]);
    assert!(changes(&last).is_empty(), "{last:#}");
}

#[test]
fn the_root_topology_validates_and_applies() {
    let v = TestVhost::new("topo-root");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = god().current_dir(root).args(["validate"]).output().unwrap();
    assert_exit(&out, 0);
    assert!(
        text(&out).contains("topology/fireflies.yaml is valid: 2 exchanges, 2 queues"),
        "{}",
        text(&out)
    );
    let registry = root.join("registry.yaml");
    apply(&v, &registry, &[]);
    let ingestion = v.queue("transcripts.rag.ingestion").unwrap();
    assert_eq!(
        declared_arguments(&ingestion),
        json!({"x-message-ttl": 86400000, "x-dead-letter-exchange": "fireflies.events.dlx", "x-dead-letter-routing-key": "transcript.failed"})
    );
    assert_eq!(
        declared_arguments(&v.queue("transcripts.failed").unwrap()),
        json!({"x-message-ttl": 604800000})
    );
    assert_converged(&v, &registry);
}

/// A queue's arguments as the broker lists them, in god's normal form: RabbitMQ 4.0 lists
/// `x-queue-type: classic` on every classic queue, declared or not; 3.10 only when declared.
fn declared_arguments(queue: &Value) -> Value {
    let arguments = serde_json::from_value(queue["arguments"].clone()).unwrap();
    serde_json::to_value(god_core::model::normalize_arguments(&arguments)).unwrap()
}

#[test]
fn unroutable_events_are_parked_through_a_policy_and_doctor_counts_them() {
    let v = TestVhost::new("topo-unroutable");
    let (_dir, registry) = registry(indoc! {r#"
        version: "1.0"
        exchange:
          name: bus
          type: topic
          unroutable: bus.unroutable.events
        services:
          svc:
            queue_name: svc.q
            routing_keys: ["svc.#"]
    "#});
    apply(&v, &registry, &[]);
    assert_converged(&v, &registry);
    // The alternate exchange comes from a policy: the exchange keeps no argument, so every
    // client that declares it as the upstream does (topic, durable, no arguments) still can.
    assert_eq!(
        named(&v, "exchanges", "bus").unwrap()["arguments"],
        json!({})
    );
    v.amqp(|ch| async move {
        ch.exchange_declare(
            "bus".into(),
            lapin::ExchangeKind::Topic,
            lapin::options::ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .expect("the upstream's declaration of the bus exchange still works");
    });
    v.publish("bus", "nobody.listens", "lost?");
    v.publish("bus", "svc.created", "routed");
    assert_eq!(v.depth("bus.unroutable.events"), 1);
    assert_eq!(v.depth("svc.q"), 1);
    assert_eq!(v.get("bus.unroutable.events").as_deref(), Some("lost?"));
    v.publish("bus", "nobody.listens", "parked");

    // With an alternate exchange nothing is unroutable: the gateway answers 202, not 422.
    let gateway = GatewayProcess::start(&v.amqp_url(), "bus", &[]);
    gateway.await_status("/health/ready", 200);
    let (status, _, body) = gateway.request("POST", "/events/nobody.listens", Some(b"{}"), &[]);
    assert_eq!(status, 202, "{body}");
    assert_eq!(v.depth("bus.unroutable.events"), 2);

    let out = v.run(&registry, &["doctor", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("doctor --json prints JSON");
    let parked = doctor_check(&report, "flow.parked");
    assert_eq!(parked["status"], "warn", "{parked}");
    assert!(
        parked["summary"]
            .as_str()
            .unwrap()
            .starts_with("2 unroutable event(s) parked in bus.unroutable.events"),
        "{parked}"
    );
}

/// A topology/ file of `count` fanout exchanges `fan.N`, each bound to the queue `fan.sink`,
/// but for the ones in `unbound`.
fn fans(count: usize, unbound: &[usize]) -> String {
    let mut text = String::from("exchanges:\n");
    for i in 0..count {
        text.push_str(&format!("  fan.{i}:\n    type: fanout\n"));
    }
    text.push_str("queues:\n  fan.sink:\n    bindings:\n");
    for i in (0..count).filter(|i| !unbound.contains(i)) {
        text.push_str(&format!("      - exchange: fan.{i}\n"));
    }
    text
}

/// A plan reads bindings one exchange at a time while the vhost has few exchanges, and as one
/// list beyond 32 (built-in ones counted): both ways it sees every binding, so an applied
/// vhost plans nothing and a binding taken out of the file is the one change.
#[test]
fn bindings_are_read_whole_with_few_exchanges_and_with_many() {
    for count in [3, 40] {
        let v = TestVhost::new(&format!("topo-fans-{count}"));
        let (_dir, registry) = inputs(&[("fans.yaml", &fans(count, &[]))]);
        apply(&v, &registry, &[]);
        assert_converged(&v, &registry);
        let last = count - 1;
        write_topology(&registry, "fans.yaml", &fans(count, &[last]));
        let unbound = format!("binding/fan.{last}/queue/fan.sink/");
        assert_eq!(
            changes(&plan(&v, &registry, &[])),
            vec![("delete".to_string(), unbound)],
            "{count} exchanges"
        );
    }
}
