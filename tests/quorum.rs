//! Queue types on the real broker (one node): quorum queues and their dead-letter queues, their
//! options by name, and deleting them safely although the broker cannot delete a quorum queue
//! "only if empty".

mod support;

use std::path::PathBuf;

use indoc::indoc;
use serde_json::Value;
use support::*;

/// The type of a live queue, as the broker reports it.
fn queue_type(v: &TestVhost, queue: &str) -> String {
    let q = v.queue(queue).unwrap_or_else(|| panic!("no queue {queue}"));
    q["type"].as_str().unwrap_or_default().to_string()
}

/// A service whose queue `q` (bound with `k`) is a quorum queue, in the raw `arguments` form
/// (which today's registries can write), and the registry without it.
fn quorum_service_and_nothing() -> ((tempfile::TempDir, PathBuf), (tempfile::TempDir, PathBuf)) {
    (
        registry_with(indoc! {"
            svc:
              queue_name: q
              routing_keys: [k]
              arguments: {x-queue-type: quorum}
        "}),
        registry_with("z:\n  produces: [x]\n"),
    )
}

#[test]
fn the_dead_letter_queue_of_a_quorum_queue_is_a_quorum_queue() {
    let v = TestVhost::new("qdlq");
    let ((_d, registry), _) = quorum_service_and_nothing();
    assert_exit(&v.run(&registry, &["apply", "--auto-approve"]), 0);
    assert_eq!(queue_type(&v, "q"), "quorum");
    assert_eq!(
        queue_type(&v, "q_dlq"),
        "quorum",
        "the dead letters of a replicated queue are replicated too"
    );
    let again = v.run(&registry, &["plan", "--detailed-exitcode"]);
    assert_exit(&again, 0);
}

#[test]
fn an_empty_quorum_queue_is_pruned_with_its_dead_letter_queue() {
    let v = TestVhost::new("qprune");
    let ((_d1, full), (_d2, empty)) = quorum_service_and_nothing();
    assert_exit(&v.run(&full, &["apply", "--auto-approve"]), 0);
    let out = v.run(&empty, &["apply", "--auto-approve", "--prune"]);
    let shown = text(&out);
    assert_exit(&out, 0);
    assert!(
        v.queue("q").is_none() && v.queue("q_dlq").is_none(),
        "{shown}"
    );
}

#[test]
fn a_quorum_queue_holding_a_message_is_kept_with_its_bindings_and_its_dead_letter_queue() {
    let v = TestVhost::new("qkeep");
    let ((_d1, full), (_d2, empty)) = quorum_service_and_nothing();
    assert_exit(&v.run(&full, &["apply", "--auto-approve"]), 0);
    v.publish("bus", "k", "still needed");
    let out = v.run(&empty, &["apply", "--auto-approve", "--prune"]);
    let shown = text(&out);
    assert_exit(&out, 1);
    assert!(
        shown.contains("- queue/q (refused: the queue holds 1 message;"),
        "{shown}"
    );
    assert_eq!(v.depth("q"), 1);
    assert!(v.queue("q_dlq").is_some(), "{shown}");
    assert!(
        v.bindings()
            .contains(&("bus".into(), "q".into(), "k".into())),
        "a kept queue keeps its bindings: {shown}"
    );
}

#[test]
fn a_quorum_queue_that_fills_between_plan_and_apply_is_kept_with_its_bindings() {
    let v = TestVhost::new("qrace");
    let ((dir, full), (_d2, empty)) = quorum_service_and_nothing();
    let out = v.apply_saved_prune_after(&full, &empty, dir.path(), || {
        v.publish("bus", "k", "arrived after the plan")
    });
    let shown = text(&out);
    assert_exit(&out, 1);
    assert!(
        shown.contains("- queue/q (refused: the queue holds 1 message now;"),
        "{shown}"
    );
    assert_eq!(v.depth("q"), 1, "{shown}");
    assert!(v.queue("q_dlq").is_some(), "{shown}");
    assert!(
        v.bindings()
            .contains(&("bus".into(), "q".into(), "k".into())),
        "its bindings are back: {shown}"
    );
    let plan: Value = serde_json::from_slice(&v.run(&full, &["plan", "--json"]).stdout).unwrap();
    assert!(
        plan["changes"].as_array().unwrap().is_empty(),
        "nothing drifted: {plan:#}"
    );
}

#[test]
fn queue_settings_by_name_and_the_registry_defaults_become_the_queues_arguments() {
    let v = TestVhost::new("qnamed");
    let (_d, registry) = registry(indoc! {r##"
        version: "1.0"
        exchange: {name: bus, type: topic, durable: true}
        defaults:
          queue_type: quorum
          delivery_limit: 5
        services:
          orders:
            queue_name: orders
            routing_keys: [order.#]
            dead_letter_strategy: at-least-once
            initial_group_size: 1
            leader_locator: balanced
          audit:
            queue_name: audit
            routing_keys: ["#"]
            queue_type: stream
          legacy:
            queue_name: legacy
            queue_type: classic
            dead_letter_queue_type: quorum
    "##});
    let out = v.run(&registry, &["apply", "--auto-approve"]);
    assert_exit(&out, 0);
    let arguments = |queue: &str| v.queue(queue).unwrap()["arguments"].clone();
    assert_eq!(
        arguments("orders"),
        serde_json::json!({"x-queue-type": "quorum", "x-quorum-initial-group-size": 1}),
        "declared with what its consumers declare: its type, and the group size RabbitMQ compares"
    );
    assert_eq!(
        v.god_policy("orders"),
        serde_json::json!({
            "delivery-limit": 5,
            "dead-letter-strategy": "at-least-once",
            "overflow": "reject-publish",
            "queue-leader-locator": "balanced",
            "dead-letter-exchange": "god.dead-letters",
        }),
        "the rest comes from god's policy"
    );
    assert_eq!(
        v.dead_letter_target("orders").as_deref(),
        Some("orders_dlq")
    );
    assert_eq!(queue_type(&v, "orders_dlq"), "quorum");
    assert_eq!(queue_type(&v, "audit"), "stream");
    assert!(
        v.queue("audit_dlq").is_none(),
        "a stream cannot dead-letter, so it gets no dead-letter queue"
    );
    assert_eq!(queue_type(&v, "legacy"), "classic");
    assert_eq!(queue_type(&v, "legacy_dlq"), "quorum");
    assert_exit(&v.run(&registry, &["plan", "--detailed-exitcode"]), 0);
}

/// One subscription of the slow consumer, until its queue or connection goes away or `stop`.
async fn consume(
    amqp_url: &str,
    queue: &str,
    stop: &std::sync::atomic::AtomicBool,
    received: &mut Vec<String>,
    subscriptions: &mut usize,
) -> Result<(), lapin::Error> {
    use futures::StreamExt;
    use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
    use std::sync::atomic::Ordering;
    let connection =
        lapin::Connection::connect(amqp_url, lapin::ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel.basic_qos(10, BasicQosOptions::default()).await?;
    let mut deliveries = channel
        .basic_consume(
            queue.into(),
            "slow".into(),
            BasicConsumeOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await?;
    *subscriptions += 1;
    loop {
        let next =
            tokio::time::timeout(std::time::Duration::from_millis(500), deliveries.next()).await;
        match next {
            Ok(Some(Ok(delivery))) => {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                let body = String::from_utf8_lossy(&delivery.data).into_owned();
                delivery.ack(BasicAckOptions::default()).await?;
                received.push(body);
            }
            Ok(_) => break,
            Err(_) if stop.load(Ordering::SeqCst) => break,
            Err(_) => {}
        }
    }
    let _ = connection.close(200, "again".into()).await;
    Ok(())
}

/// A consumer of `queue` that takes its time (1 ms a message, 10 unacknowledged at most),
/// records every message it acknowledges, and subscribes again whenever its queue goes away,
/// until `stop` is set.
fn slow_consumer(
    amqp_url: String,
    queue: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(Vec<String>, usize)> {
    use std::sync::atomic::Ordering;
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (mut received, mut subscriptions) = (Vec::new(), 0);
            while !stop.load(Ordering::SeqCst) {
                // A broken connection or channel (the queue went away) means: connect again.
                let _ = consume(&amqp_url, queue, &stop, &mut received, &mut subscriptions).await;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            (received, subscriptions)
        })
    })
}

#[test]
fn a_classic_queue_migrates_to_quorum_with_its_messages_and_a_consumer_attached() {
    const MESSAGES: usize = 10_000;
    let v = TestVhost::new("qmigrate");
    let service = |queue_type: &str| {
        registry_with(&format!(
            "svc:\n  queue_name: q\n  routing_keys: [k]\n  queue_type: {queue_type}\n"
        ))
    };
    let ((_d1, classic), (_d2, quorum)) = (service("classic"), service("quorum"));
    assert_exit(&v.run(&classic, &["apply", "--auto-approve"]), 0);
    v.amqp(|ch| async move {
        ch.confirm_select(Default::default()).await.unwrap();
        let mut confirms = Vec::with_capacity(MESSAGES);
        for i in 0..MESSAGES {
            confirms.push(
                ch.basic_publish(
                    "bus".into(),
                    "k".into(),
                    Default::default(),
                    format!("m{i}").as_bytes(),
                    lapin::BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .unwrap(),
            );
        }
        for c in confirms {
            c.await.unwrap();
        }
    });

    let refused = v.run(&quorum, &["apply", "--auto-approve"]);
    assert_exit(&refused, 1);
    assert!(
        text(&refused).contains("Rerun with --migrate"),
        "{}",
        text(&refused)
    );

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let consumer = slow_consumer(v.amqp_url(), "q", stop.clone());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    let out = v.run(&quorum, &["apply", "--auto-approve", "--migrate"]);
    let migration = started.elapsed();
    assert_exit(&out, 0);
    assert_eq!(queue_type(&v, "q"), "quorum", "{}", text(&out));
    assert!(
        v.queue("q.god-migrating").is_none(),
        "the holding queue is gone"
    );
    assert!(
        v.bindings()
            .contains(&("bus".into(), "q".into(), "k".into())),
        "the queue keeps its binding"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while v.depth("q") > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (received, subscriptions) = consumer.join().unwrap();
    let unique: std::collections::BTreeSet<&String> = received.iter().collect();
    let duplicated = received.len() - unique.len();
    eprintln!(
        "{MESSAGES} messages: {} received, {} lost, {duplicated} duplicated; the migration took {migration:?}; the consumer subscribed {subscriptions} times",
        received.len(),
        MESSAGES - unique.len()
    );
    assert_eq!(unique.len(), MESSAGES, "no message is lost");
    assert!(
        subscriptions >= 2,
        "the consumer saw its queue go and subscribed again"
    );
    assert_eq!(
        duplicated, 0,
        "the queue went only once its consumer held nothing"
    );
    assert_exit(&v.run(&quorum, &["plan", "--detailed-exitcode"]), 0);
}
