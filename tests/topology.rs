//! god plan / god apply against the real RabbitMQ, one vhost per test.

mod support;

use std::path::PathBuf;

use indoc::indoc;
use serde_json::{Value, json};
use support::*;

/// The active queues of the largest upstream registry (upstream-facts: 20 services, of which
/// these consume; theboard-meeting-trigger pairs five queues with five keys).
const LARGEST_ACTIVE_QUEUES: [&str; 10] = [
    "services.agent.feedback_router",
    "services.agent.voice_soprano",
    "services.echobox.orchestrator",
    "services.hookd.mutation_ledger",
    "services.theboard.architecture_review",
    "services.theboard.decision_analysis",
    "services.theboard.feature_brainstorm",
    "services.theboard.incident_postmortem",
    "services.theboard.meeting_trigger",
    "services.tonny.agent",
];

fn plan_json(v: &TestVhost, registry: &std::path::Path, extra: &[&str]) -> Value {
    let mut args = vec!["plan", "--json"];
    args.extend_from_slice(extra);
    let out = v.run(registry, &args);
    assert_exit(&out, 0);
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan --json prints JSON");
    let schema: Value = serde_json::from_str(include_str!("../schemas/plan.schema.json"))
        .expect("the plan schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("the plan schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&plan)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "plan --json does not match schemas/plan.schema.json: {errors:?}"
    );
    plan
}

/// Asserts that a plan against the vhost has nothing left to do.
#[track_caller]
fn assert_converged(v: &TestVhost, registry: &std::path::Path) {
    let plan = plan_json(v, registry, &[]);
    assert!(
        plan["changes"].as_array().unwrap().is_empty(),
        "not converged: {plan:#}"
    );
}

fn change_ids(plan: &Value, action: &str) -> Vec<String> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == action)
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

/// RabbitMQ refuses a policy pattern PCRE cannot compile ("regular expression is too large",
/// past 64 KiB compiled): the queues given the same settings are named by shards of policies.
#[test]
fn a_group_of_queues_too_long_for_one_pattern_is_wired_by_policy_shards() {
    let v = TestVhost::new("shards");
    // Names with nothing in common to write once: 800 of them pass one pattern's length.
    let name = |i: usize| {
        use sha2::Digest;
        format!(
            "services.{}",
            hex::encode(sha2::Sha256::digest(i.to_string().as_bytes()))
        )
    };
    let services: String = (0..800)
        .map(|i| {
            format!(
                "svc-{i:03}:\n  queue_name: {}\n  routing_keys: [shard.{i}]\n",
                name(i)
            )
        })
        .collect();
    let (_dir, registry) = registry_with(&services);
    let out = v.run(&registry, &["apply", "--auto-approve"]);
    assert_exit(&out, 0);
    assert_converged(&v, &registry);
    let policies = v.api("GET", &format!("policies/{}", encode(&v.name)), None);
    let shards: Vec<&Value> = policies
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"].as_str().unwrap().starts_with("god.queues."))
        .collect();
    assert!(shards.len() > 1, "{}", shards.len());
    for i in [0, 399, 799] {
        let queue = name(i);
        assert_eq!(
            v.god_policy(&queue)["dead-letter-exchange"],
            "god.dead-letters",
            "{queue}"
        );
    }
}

#[test]
fn largest_registry_is_planned_in_full_applied_and_then_converged() {
    let v = TestVhost::new("largest");
    let registry = upstream("registry-2026-03-largest.yaml");
    let plan = plan_json(&v, &registry, &[]);
    let created = change_ids(&plan, "create");
    for q in LARGEST_ACTIVE_QUEUES {
        assert!(
            created.contains(&format!("queue/{q}")),
            "{q} missing from {created:?}"
        );
        assert!(
            created.contains(&format!("queue/{q}_dlq")),
            "{q}_dlq missing"
        );
    }
    let bindings: Vec<&String> = created
        .iter()
        .filter(|id| id.starts_with("binding/bloodbank.events.v1/"))
        .collect();
    assert_eq!(bindings.len(), 11, "{bindings:?}");
    let wiring = created
        .iter()
        .filter(|id| id.starts_with("binding/god.dead-letters/"))
        .count();
    assert_eq!(
        wiring,
        LARGEST_ACTIVE_QUEUES.len(),
        "one dead-letters binding per queue"
    );
    assert!(
        created.contains(
            &"binding/bloodbank.events.v1/queue/services.agent.voice_soprano/agent.*.message.*"
                .to_string()
        )
    );
    assert!(
        created.contains(
            &"binding/bloodbank.events.v1/queue/services.hookd.mutation_ledger/tool.mutation.#"
                .to_string()
        )
    );
    assert_eq!(plan["summary"]["add"], created.len());

    let out = v.run(&registry, &["plan", "--detailed-exitcode"]);
    assert_exit(&out, 2);
    assert!(text(&out).contains(&format!(
        "Plan: {} to add, 0 to change, 0 to destroy.",
        created.len()
    )));

    let out = v.run(&registry, &["apply", "--auto-approve"]);
    assert_exit(&out, 0);
    let out = v.run(&registry, &["plan", "--detailed-exitcode"]);
    assert_exit(&out, 0);
    assert!(
        text(&out).contains("Plan: 0 to add, 0 to change, 0 to destroy."),
        "{}",
        text(&out)
    );

    assert!(
        v.queue("services.theboard.decision_analysis").is_some(),
        "queue exists"
    );
    assert_eq!(
        v.god_policy("services.theboard.decision_analysis")["dead-letter-exchange"],
        "god.dead-letters"
    );
    assert_eq!(
        v.dead_letter_target("services.theboard.decision_analysis")
            .as_deref(),
        Some("services.theboard.decision_analysis_dlq")
    );
    assert!(v.bindings().contains(&(
        "bloodbank.events.v1".into(),
        "services.theboard.decision_analysis".into(),
        "decision.analysis.required".into()
    )));
}

#[test]
fn rejected_messages_from_every_managed_queue_land_in_their_dead_letter_queue() {
    let v = TestVhost::new("dlq");
    // One queue exists before god runs (declared by its service, without dead-letter
    // arguments): god adopts it and dead-letters it by policy, without replacing it.
    v.put_queue("services.tonny.agent", json!({}));
    let registry = upstream("registry-2026-05-main.yaml");
    let out = v.run(&registry, &["apply", "--auto-approve"]);
    assert_exit(&out, 0);
    assert!(
        text(&out).contains("adopt queue services.tonny.agent"),
        "{}",
        text(&out)
    );
    let plan = plan_json(&v, &registry, &[]);
    assert!(plan["changes"].as_array().unwrap().is_empty(), "{plan:#}");

    // Every queue god manages, as god itself renders them (main queues, not their DLQs).
    let rendered = god()
        .args(["render", "--format", "json", "--registry"])
        .arg(&registry)
        .output()
        .unwrap();
    let rendered: Value = serde_json::from_slice(&rendered.stdout).unwrap();
    let queues: Vec<&str> = rendered["queues"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["role"] == "main")
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        queues.len(),
        10,
        "the main registry's active services have ten queues: {queues:?}"
    );
    for q in queues {
        let body = format!("poison for {q}");
        v.publish("", q, &body);
        assert!(v.reject_one(q), "{q} had no message to reject");
        assert_eq!(
            v.await_message(&format!("{q}_dlq")).as_deref(),
            Some(body.as_str()),
            "{q}: the rejected message is not in its DLQ"
        );
    }
}

#[test]
fn existing_queues_are_adopted_with_their_messages() {
    let v = TestVhost::new("adopt");
    let (_dir, registry) = registry_with(indoc! {"
        svc:
          queue_name: q
          routing_keys: [a.b]
    "});
    v.put_queue(
        "q",
        json!({"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "q_dlq"}),
    );
    v.publish("", "q", "keep me");
    let plan = plan_json(&v, &registry, &[]);
    assert_eq!(change_ids(&plan, "adopt"), vec!["queue/q"]);
    assert!(!change_ids(&plan, "create").contains(&"queue/q".to_string()));
    assert_exit(&v.run(&registry, &["apply", "--auto-approve"]), 0);
    assert_eq!(v.depth("q"), 1, "adoption must not recreate the queue");
    assert!(
        v.bindings()
            .contains(&("god.managed".into(), "q".into(), "adopted".into()))
    );
    assert_converged(&v, &registry);
}

#[test]
fn routing_keys_follow_the_registry_with_topic_semantics() {
    let v = TestVhost::new("keys");
    let services = indoc! {r#"
        trig:
          queue_names: [t1, t2]
          routing_keys: ["a.*.c", "a.#"]
        prod:
          produces: [a.b.c]
        sole:
          queue_name: s
          routing_keys: [x.y, old.key]
    "#};
    let (_dir, registry) = registry_with(services);
    assert_exit(&v.run(&registry, &["apply", "--auto-approve"]), 0);
    v.publish("bus", "a.b.c", "abc");
    v.publish("bus", "a.b.c.d", "abcd");
    assert_eq!(v.depth("t1"), 1, "a.*.c matches a.b.c only");
    assert_eq!(v.depth("t2"), 2, "a.# matches both");
    assert_eq!(v.depth("s"), 0);

    let (_dir2, changed) = registry_with(&services.replace("[x.y, old.key]", "[x.y, new.key]"));
    let out = v.run(&changed, &["apply", "--auto-approve"]);
    assert_exit(&out, 0);
    let bound: Vec<String> = v
        .bindings()
        .into_iter()
        .filter(|b| b.0 == "bus" && b.1 == "s")
        .map(|b| b.2)
        .collect();
    assert_eq!(bound, vec!["new.key".to_string(), "x.y".to_string()]);
    assert_eq!(v.depth("t2"), 2, "no message was lost by rebinding");
}

#[test]
fn planned_services_are_skipped_and_deprecated_queues_kept_until_prune() {
    let v = TestVhost::new("status");
    let active = indoc! {"
        old:
          queue_name: qo
          routing_keys: [o]
        later:
          queue_name: ql
          status: planned
    "};
    let (_d1, registry) = registry_with(active);
    assert_exit(&v.run(&registry, &["apply", "--auto-approve"]), 0);
    assert!(v.queue("ql").is_none(), "planned services get no queue");

    let (_d2, deprecated) = registry_with(&active.replace(
        "routing_keys: [o]\n",
        "routing_keys: [o]\n  status: deprecated\n",
    ));
    let out = v.run(&deprecated, &["plan", "--detailed-exitcode"]);
    assert_exit(&out, 0);
    let shown = text(&out);
    assert!(
        shown.contains("queue/qo: service old is deprecated; kept"),
        "{shown}"
    );
    assert!(shown.contains("service/later: planned"), "{shown}");
    assert_exit(&v.run(&deprecated, &["apply", "--auto-approve"]), 0);
    assert!(
        v.queue("qo").is_some(),
        "a deprecated queue is kept without --prune"
    );

    assert_exit(
        &v.run(&deprecated, &["apply", "--auto-approve", "--prune"]),
        0,
    );
    assert!(
        v.queue("qo").is_none(),
        "--prune deletes the deprecated queue god created"
    );
}

#[test]
fn argument_drift_is_a_replace_refused_while_the_queue_holds_messages() {
    let v = TestVhost::new("drift");
    let (_d, registry) = registry_with(indoc! {"
            svc:
              queue_name: q
              routing_keys: [k]
              dead_letter: false
              arguments:
                x-max-length: 200
        "});
    v.put_queue("q", json!({"x-max-length": 100}));
    v.publish("", "q", "precious");
    v.await_stats("q", 1);

    let plan = plan_json(&v, &registry, &[]);
    let replace = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["action"] == "replace")
        .expect("a replace");
    assert_eq!(replace["id"], "queue/q");
    assert_eq!(replace["messages"], 1);
    assert_eq!(
        replace["diff"],
        json!([
            "- arguments.x-max-length: 100",
            "+ arguments.x-max-length: 200"
        ])
    );

    let out = v.run(&registry, &["apply", "--auto-approve"]);
    assert_exit(&out, 1);
    assert!(text(&out).contains("REFUSED"), "{}", text(&out));
    assert_eq!(v.depth("q"), 1, "the message survives");

    let out = v.run(&registry, &["apply", "--auto-approve", "--allow-data-loss"]);
    assert_exit(&out, 0);
    assert_eq!(v.queue("q").unwrap()["arguments"]["x-max-length"], 200);
    assert_converged(&v, &registry);
}

#[test]
fn prune_spares_foreign_queues_adopted_queues_and_queues_with_messages() {
    let v = TestVhost::new("prune");
    let (_d1, full) = registry_with(indoc! {"
            a:
              queue_name: qa
              dead_letter: false
            b:
              queue_name: qb
              dead_letter: false
            c:
              queue_name: qc
              dead_letter: false
        "});
    v.put_queue("qc", json!({}));
    v.put_queue("foreign", json!({}));
    assert_exit(&v.run(&full, &["apply", "--auto-approve"]), 0);
    v.publish("", "qb", "still needed");
    v.await_stats("qb", 1);

    let (_d2, empty) = registry_with(indoc! {"
        z:
          produces: [x]
    "});
    let plan = plan_json(&v, &empty, &[]);
    assert!(
        plan["changes"].as_array().unwrap().is_empty(),
        "no --prune, no deletions: {plan:#}"
    );
    let out = v.run(&empty, &["apply", "--auto-approve", "--prune"]);
    assert_exit(&out, 1);
    let shown = text(&out);
    assert!(shown.contains("queue/qb"), "{shown}");
    assert!(
        v.queue("qa").is_none(),
        "an empty queue god created is pruned"
    );
    assert_eq!(v.depth("qb"), 1, "a queue holding messages is kept");
    assert!(v.queue("qc").is_some(), "an adopted queue is never pruned");
    assert!(
        v.queue("foreign").is_some(),
        "a queue god never managed is never pruned"
    );
}

#[test]
fn a_saved_plan_is_applied_exactly_and_refused_once_the_broker_moved() {
    let v = TestVhost::new("saved");
    let (dir, registry) = registry_with(indoc! {"
        svc:
          queue_name: q
          routing_keys: [k]
    "});
    let saved = dir.path().join("plan.json");
    let out = v.run(&registry, &["plan", "--out", saved.to_str().unwrap()]);
    assert_exit(&out, 0);

    v.put_queue("intruder", json!({}));
    let out = v
        .god()
        .args(["apply", saved.to_str().unwrap()])
        .output()
        .unwrap();
    assert_exit(&out, 1);
    assert!(
        text(&out).contains("queue/intruder appeared"),
        "{}",
        text(&out)
    );
    assert!(v.queue("q").is_none(), "nothing applied from a stale plan");

    let out = v.run(&registry, &["plan", "--out", saved.to_str().unwrap()]);
    assert_exit(&out, 0);
    let out = v
        .god()
        .args(["apply", saved.to_str().unwrap()])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(v.queue("q").is_some());
}

#[test]
fn concurrent_applies_never_interleave() {
    let v = TestVhost::new("lock");
    let (_d, registry) = registry_with(indoc! {"
        svc:
          queue_name: q
          routing_keys: [k]
    "});
    // Hold the lock the way a running apply does: an exclusive queue on a live connection.
    let url = v.amqp_url();
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let conn = lapin::Connection::connect(
                &url,
                lapin::ConnectionProperties::default().with_connection_name("test holder".into()),
            )
            .await
            .unwrap();
            let ch = conn.create_channel().await.unwrap();
            let opts = lapin::options::QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            };
            ch.queue_declare("god.apply-lock".into(), opts, Default::default())
                .await
                .unwrap();
            held_tx.send(()).unwrap();
            let _ = tokio::task::spawn_blocking(move || release_rx.recv()).await;
            conn.close(200, "bye".into()).await.unwrap();
        });
    });
    held_rx.recv().unwrap();
    // Six seconds: the broker names the holder with its next statistics round (every 5 s).
    let out = v.run(
        &registry,
        &["apply", "--auto-approve", "--lock-timeout", "6"],
    );
    assert_exit(&out, 1);
    assert!(
        text(&out).contains("another god apply is running on vhost"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("test holder"),
        "the holder is named: {}",
        text(&out)
    );
    assert!(v.queue("q").is_none(), "nothing was applied while locked");
    release_tx.send(()).unwrap();
    holder.join().unwrap();

    // Two real applies at once: both succeed, one after the other, and the result converges.
    let runs: Vec<_> = (0..2)
        .map(|_| {
            v.god()
                .arg("--registry")
                .arg(&registry)
                .args(["apply", "--auto-approve"])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut r in runs {
        assert!(r.wait().unwrap().success());
    }
    assert_converged(&v, &registry);
}

#[test]
fn an_unreachable_broker_is_a_clear_error() {
    let (_d, registry) = registry_with(indoc! {"
        svc:
          queue_name: q
    "});
    let out = god()
        .arg("--registry")
        .arg(&registry)
        .args(["plan", "--management-url", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_exit(&out, 1);
    let shown = text(&out);
    assert!(
        shown.contains("cannot reach RabbitMQ at http://127.0.0.1:1"),
        "{shown}"
    );
    assert!(shown.contains("hint:"), "{shown}");
    assert!(!shown.contains("panicked"), "{shown}");
}

#[test]
fn wrong_credentials_are_named_and_the_password_is_never_printed() {
    let v = TestVhost::new("creds");
    let (_d, registry) = registry_with(indoc! {"
        svc:
          queue_name: q
    "});
    let url = v.amqp_url().replace("guest:guest", "guest:Sup3rSecretPw");
    for cmd in [["plan", "--json"], ["apply", "--auto-approve"]] {
        let out = god()
            .arg("--registry")
            .arg(&registry)
            .args(cmd)
            .env("RABBITMQ_URL", &url)
            .output()
            .unwrap();
        assert_exit(&out, 1);
        let shown = text(&out);
        assert!(
            shown.contains("refused the credentials of user \"guest\""),
            "{shown}"
        );
        assert!(shown.contains("RABBITMQ_URL"), "{shown}");
        assert!(
            !shown.contains("Sup3rSecretPw"),
            "the password leaked: {shown}"
        );
    }
}

#[test]
fn a_missing_vhost_is_named_and_never_created() {
    let (_d, registry) = registry_with(indoc! {"
        svc:
          queue_name: q
    "});
    let vhost = format!("god-test-missing-{}", std::process::id());
    let out = god()
        .arg("--registry")
        .arg(&registry)
        .args(["apply", "--auto-approve"])
        .env(
            "RABBITMQ_URL",
            format!("amqp://guest:guest@{}/{vhost}", amqp_node()),
        )
        .env("RABBITMQ_MANAGEMENT_URL", management())
        .output()
        .unwrap();
    assert_exit(&out, 1);
    let shown = text(&out);
    assert!(
        shown.contains(&format!("vhost \"{vhost}\" does not exist")),
        "{shown}"
    );
    assert!(shown.contains("rabbitmqctl add_vhost"), "{shown}");
    let probe = TestVhost::new("probe");
    assert!(
        probe
            .try_api("GET", &format!("vhosts/{vhost}"), None)
            .is_err(),
        "god created the vhost"
    );
}

#[test]
fn apply_without_a_terminal_needs_auto_approve() {
    let v = TestVhost::new("approve");
    let (_d, registry) = registry_with(indoc! {"
        svc:
          queue_name: q
    "});
    let out = v.run(&registry, &["apply"]);
    assert_exit(&out, 1);
    assert!(text(&out).contains("--auto-approve"), "{}", text(&out));
    assert!(v.queue("q").is_none());
}

#[test]
fn a_queue_drained_a_moment_ago_is_counted_exactly_and_pruned_at_once() {
    let v = TestVhost::new("drained");
    let (_d1, full) = registry_with(indoc! {"
            a:
              queue_name: qa
              dead_letter: false
            b:
              queue_name: qb
              dead_letter: false
        "});
    assert_exit(&v.run(&full, &["apply", "--auto-approve"]), 0);
    v.publish_many("", "qa", b"x", 2);
    v.publish_many("", "qb", b"y", 3);
    // The statistics have seen the messages: from now on they lag behind the drain below.
    v.await_stats("qa", 2);
    v.await_stats("qb", 3);
    assert!(v.get("qa").is_some() && v.get("qa").is_some());
    assert!(v.get("qb").is_some() && v.get("qb").is_some());

    let (_d2, empty) = registry_with(indoc! {"
        z:
          produces: [x]
    "});
    let plan = v.run(&empty, &["plan", "--prune"]);
    assert_exit(&plan, 0);
    let shown = text(&plan);
    assert!(shown.contains("# holds 1 message\n"), "{shown}");
    assert!(!shown.contains("holds 2"), "qa's count is exact: {shown}");
    let out = v.run(&empty, &["apply", "--auto-approve", "--prune"]);
    let shown = text(&out);
    assert!(
        v.queue("qa").is_none(),
        "the drained queue is deleted at once: {shown}"
    );
    assert_exit(&out, 1);
    assert!(
        shown.contains("- queue/qb (refused: the queue holds 1 message;"),
        "{shown}"
    );
    assert_eq!(v.depth("qb"), 1, "the queue holding a message is kept");
}

/// A service with a queue and its dead-letter queue, and the registry without it.
fn service_and_nothing() -> ((tempfile::TempDir, PathBuf), (tempfile::TempDir, PathBuf)) {
    (
        registry_with(indoc! {"
            a:
              queue_name: qa
              routing_keys: [k]
        "}),
        registry_with(indoc! {"
            z:
              produces: [x]
        "}),
    )
}

#[test]
fn a_kept_queue_keeps_its_dead_letter_queue_and_they_go_together() {
    let v = TestVhost::new("keepdlq");
    let ((_d1, full), (_d2, empty)) = service_and_nothing();
    assert_exit(&v.run(&full, &["apply", "--auto-approve"]), 0);
    v.publish("", "qa", "still needed");

    let out = v.run(&empty, &["apply", "--auto-approve", "--prune"]);
    assert_exit(&out, 1);
    let shown = text(&out);
    assert_eq!(v.depth("qa"), 1, "{shown}");
    assert!(
        v.queue("qa_dlq").is_some(),
        "the kept queue still dead-letters into its DLQ: {shown}"
    );
    assert!(
        shown.contains("- queue/qa_dlq (refused: queue qa dead-letters into it and is kept"),
        "{shown}"
    );

    assert!(v.get("qa").is_some());
    let out = v.run(&empty, &["apply", "--auto-approve", "--prune"]);
    assert_exit(&out, 0);
    let shown = text(&out);
    assert!(
        v.queue("qa").is_none() && v.queue("qa_dlq").is_none(),
        "{shown}"
    );
    let order: Vec<usize> = ["- queue qa (", "- queue qa_dlq ("]
        .iter()
        .map(|line| {
            shown
                .find(line)
                .unwrap_or_else(|| panic!("{line} in {shown}"))
        })
        .collect();
    assert!(
        order[0] < order[1],
        "the queue goes before its DLQ: {shown}"
    );
}

#[test]
fn a_dead_letter_queue_is_kept_when_its_queue_fills_between_plan_and_apply() {
    let v = TestVhost::new("racedlq");
    let ((dir, full), (_d2, empty)) = service_and_nothing();
    let out = v.apply_saved_prune_after(&full, &empty, dir.path(), || {
        v.publish("", "qa", "arrived after the plan")
    });
    let shown = text(&out);
    assert_exit(&out, 1);
    assert_eq!(v.depth("qa"), 1, "{shown}");
    assert!(v.queue("qa_dlq").is_some(), "{shown}");
    assert!(
        shown.contains("- queue/qa_dlq (refused: kept: it goes only once queue/qa is gone"),
        "{shown}"
    );
}

#[test]
fn an_apply_killed_part_way_leaves_what_the_next_apply_completes_and_every_queue_recorded() {
    let v = TestVhost::new("killed");
    let services: String = (0..1500)
        .map(|i| {
            format!(
                "s{i}:\n  queue_name: q.{i}\n  routing_keys: [\"k.{i}\", \"d{}.#\"]\n",
                i % 7
            )
        })
        .collect();
    let (_d, registry) = registry_with(&services);
    let mut apply = v
        .god()
        .arg("--registry")
        .arg(&registry)
        .args(["apply", "--auto-approve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once some queues exist, before all do.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let queues = v.api(
            "GET",
            &format!("queues/{}?columns=name", encode(&v.name)),
            None,
        );
        let count = queues.as_array().map_or(0, Vec::len);
        if count > 0 || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    apply.kill().unwrap();
    let _ = apply.wait();

    let plan = plan_json(&v, &registry, &[]);
    let adopted = change_ids(&plan, "adopt");
    assert!(
        adopted.iter().all(|id| !id.starts_with("queue/")),
        "a queue god made went without its record: {adopted:?}"
    );
    assert_exit(&v.run(&registry, &["apply", "--auto-approve"]), 0);
    assert_exit(&v.run(&registry, &["plan", "--detailed-exitcode"]), 0);
    // Every queue is god's own: with the services gone, --prune deletes them all.
    let (_e, empty) = support::registry(
        "version: \"1.0\"\nexchange:\n  name: bus\n  type: topic\n  durable: true\nservices: {}\n",
    );
    let pruned = plan_json(&v, &empty, &["--prune"]);
    let deleted = change_ids(&pruned, "delete")
        .iter()
        .filter(|id| id.starts_with("queue/q."))
        .count();
    assert_eq!(
        deleted, 3000,
        "1500 queues and their dead-letter queues: {pruned:#}"
    );
}
