//! `retry: [...]` on the real broker with `god retry` running: a consumer that only rejects
//! gets the message back after each delay, then it lands in the dead-letter queue with its
//! history; killing the mover loses nothing.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use lapin::options::{BasicGetOptions, BasicRejectOptions};
use lapin::types::{AMQPValue, FieldTable};
use support::*;

fn service_with_retry(retry: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    registry_with(&format!(
        "svc:\n  queue_name: svc.q\n  routing_keys: [\"svc.#\"]\n  retry: {retry}\n"
    ))
}

fn apply(v: &TestVhost, registry: &Path) {
    let out = v.run(registry, &["apply", "--auto-approve"]);
    assert_exit(&out, 0);
}

fn start_mover(v: &TestVhost, registry: &Path) -> ServiceProcess {
    let mover = ServiceProcess::retry(&v.amqp_url(), registry);
    mover.await_status("/health", 200);
    mover
}

/// One delivery as a consumer sees it.
struct Delivery {
    at: Instant,
    routing_key: String,
    headers: FieldTable,
}

/// Waits for the next message of `queue` (up to `patience`), then rejects it without requeue,
/// as aio-pika's `message.process()` does when the handler raises, or acknowledges it.
fn receive(v: &TestVhost, queue: &str, patience: Duration, accept: bool) -> Delivery {
    v.amqp(|ch| async move {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(msg) = ch
                .basic_get(queue.into(), BasicGetOptions::default())
                .await
                .unwrap()
            {
                let delivery = Delivery {
                    at: Instant::now(),
                    routing_key: msg.delivery.routing_key.to_string(),
                    headers: msg
                        .delivery
                        .properties
                        .headers()
                        .clone()
                        .unwrap_or_default(),
                };
                if accept {
                    msg.delivery.ack(Default::default()).await.unwrap();
                } else {
                    msg.delivery
                        .reject(BasicRejectOptions { requeue: false })
                        .await
                        .unwrap();
                }
                // A synchronous call proves the broker processed the ack or reject.
                ch.basic_qos(1, Default::default()).await.unwrap();
                return delivery;
            }
            assert!(
                Instant::now() < deadline,
                "nothing arrived in {queue} within {patience:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

fn header_int(headers: &FieldTable, key: &str) -> Option<i64> {
    match headers.inner().get(key)? {
        AMQPValue::LongLongInt(i) => Some(*i),
        AMQPValue::LongInt(i) => Some(i64::from(*i)),
        _ => None,
    }
}

/// Asserts that a delay was observed within tolerance: never early, at most `slack` late.
#[track_caller]
fn assert_delay(observed: Duration, expected: Duration, slack: Duration) {
    assert!(
        observed >= expected - Duration::from_millis(50) && observed <= expected + slack,
        "delay {observed:?}, expected {expected:?} (+{slack:?} at most)"
    );
}

#[test]
fn a_consumer_that_fails_twice_gets_the_message_back_after_each_delay() {
    let v = TestVhost::new("retry-twice");
    let (_dir, registry) = service_with_retry("[1s, 2s]");
    apply(&v, &registry);
    let _mover = start_mover(&v, &registry);
    v.publish("bus", "svc.created", "event");
    let patience = Duration::from_secs(10);
    let first = receive(&v, "svc.q", patience, false);
    let second = receive(&v, "svc.q", patience, false);
    let third = receive(&v, "svc.q", patience, true);
    eprintln!(
        "observed delays: {:?}, {:?}",
        second.at - first.at,
        third.at - second.at
    );
    assert_delay(
        second.at - first.at,
        Duration::from_secs(1),
        Duration::from_millis(800),
    );
    assert_delay(
        third.at - second.at,
        Duration::from_secs(2),
        Duration::from_millis(800),
    );
    for (n, d) in [&second, &third].iter().enumerate() {
        assert_eq!(d.routing_key, "svc.created", "the routing key is kept");
        assert_eq!(header_int(&d.headers, "x-god-retries"), Some(n as i64 + 1));
    }
    std::thread::sleep(Duration::from_millis(500));
    for queue in [
        "svc.q",
        "svc.q.retry",
        "svc.q.retry.1",
        "svc.q.retry.2",
        "svc.q_dlq",
    ] {
        assert_eq!(
            v.depth(queue),
            0,
            "{queue} holds nothing: delivered exactly three times"
        );
    }
}

#[test]
fn a_message_that_always_fails_ends_in_the_dead_letter_queue_with_its_history() {
    let v = TestVhost::new("retry-always");
    let (_dir, registry) = service_with_retry("[1s, 1s]");
    apply(&v, &registry);
    let _mover = start_mover(&v, &registry);
    v.publish("bus", "svc.created", "doomed");
    for _ in 0..3 {
        receive(&v, "svc.q", Duration::from_secs(10), false);
    }
    let dead = receive(&v, "svc.q_dlq", Duration::from_secs(10), true);
    assert_eq!(dead.routing_key, "svc.created");
    assert_eq!(header_int(&dead.headers, "x-god-attempts"), Some(3));
    assert_eq!(header_int(&dead.headers, "x-god-retries"), Some(2));
    let Some(AMQPValue::FieldArray(deaths)) = dead.headers.inner().get("x-death") else {
        panic!("no x-death history: {:?}", dead.headers);
    };
    let rejected = deaths.as_slice().iter().find_map(|d| match d {
        AMQPValue::FieldTable(t)
            if t.inner().get("queue") == Some(&AMQPValue::LongString("svc.q".into())) =>
        {
            header_int(t, "count")
        }
        _ => None,
    });
    // RabbitMQ 3.x counts in x-death every rejection the message met; 4.0 keeps the history
    // itself and starts it again for a message a client publishes (the mover does, at each
    // hop), so only the last rejection is there. god's own count (above) is the same on both.
    let rejections = if v.broker_major() >= 4 { 1 } else { 3 };
    assert_eq!(
        rejected,
        Some(rejections),
        "x-death counts the rejections: {deaths:?}"
    );
    assert_eq!(v.depth("svc.q"), 0, "no fourth delivery: no loop");
}

#[test]
fn killing_the_mover_mid_run_loses_nothing() {
    const EVENTS: usize = 3000;
    let v = TestVhost::new("retry-kill");
    // One long stage: every message the mover moves stays there to be counted.
    let (_dir, registry) = service_with_retry("[10m]");
    apply(&v, &registry);
    let ids: Vec<String> = (0..EVENTS).map(|i| format!("event-{i}")).collect();
    v.amqp(|ch| {
        let ids = ids.clone();
        async move {
            ch.confirm_select(Default::default()).await.unwrap();
            for id in &ids {
                ch.basic_publish(
                    "bus".into(),
                    "svc.created".into(),
                    Default::default(),
                    id.as_bytes(),
                    lapin::BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .unwrap()
                .await
                .unwrap();
            }
            // The consumer fails every one of them.
            while let Some(msg) = ch
                .basic_get("svc.q".into(), BasicGetOptions::default())
                .await
                .unwrap()
            {
                msg.delivery
                    .reject(BasicRejectOptions { requeue: false })
                    .await
                    .unwrap();
            }
            ch.basic_qos(1, Default::default()).await.unwrap();
        }
    });
    let inbox_before = v.depth("svc.q.retry") as usize;
    assert_eq!(inbox_before, EVENTS);
    let mut mover = start_mover(&v, &registry);
    let deadline = Instant::now() + Duration::from_secs(30);
    while v.depth("svc.q.retry.1") < (EVENTS / 3) as u32 {
        assert!(Instant::now() < deadline, "the mover does not move");
        std::thread::sleep(Duration::from_millis(5));
    }
    mover.kill();
    let moved_before_kill = v.depth("svc.q.retry.1") as usize;
    assert!(
        moved_before_kill < EVENTS,
        "killed mid-run ({moved_before_kill} moved)"
    );
    let _again = start_mover(&v, &registry);
    let deadline = Instant::now() + Duration::from_secs(60);
    while v.depth("svc.q.retry") > 0 {
        assert!(
            Instant::now() < deadline,
            "the second mover does not finish"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for id in v.drain("svc.q.retry.1") {
        *seen.entry(id).or_default() += 1;
    }
    let missing: Vec<&String> = ids.iter().filter(|id| !seen.contains_key(*id)).collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    let duplicated = seen.values().filter(|n| **n > 1).count();
    eprintln!(
        "killed after {moved_before_kill} of {EVENTS} moved; lost 0, duplicated {duplicated}"
    );
    // Only a message confirmed but not yet acknowledged when the mover died can come twice:
    // the mover moves one at a time, so one at most.
    assert!(duplicated <= 1, "{duplicated} duplicated");
}

#[test]
fn the_upstream_three_stage_retry_works_end_to_end() {
    let v = TestVhost::new("retry-upstream");
    let (_dir, registry) = service_with_retry("[5s, 30s, 2m]");
    apply(&v, &registry);
    for (stage, ttl) in [(1, 5_000), (2, 30_000), (3, 120_000)] {
        let policy = v.god_policy(&format!("svc.q.retry.{stage}"));
        assert_eq!(policy["message-ttl"], ttl);
    }
    let _mover = start_mover(&v, &registry);
    v.publish("bus", "svc.created", "real event");
    let patience = Duration::from_secs(150);
    let mut times = vec![receive(&v, "svc.q", patience, false).at];
    for _ in 0..3 {
        times.push(receive(&v, "svc.q", patience, false).at);
    }
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("observed delays: {gaps:?}");
    let slack = Duration::from_secs(2);
    assert_delay(times[1] - times[0], Duration::from_secs(5), slack);
    assert_delay(times[2] - times[1], Duration::from_secs(30), slack);
    assert_delay(times[3] - times[2], Duration::from_secs(120), slack);
    let dead = receive(&v, "svc.q_dlq", Duration::from_secs(10), true);
    assert_eq!(header_int(&dead.headers, "x-god-attempts"), Some(4));
}

#[test]
fn the_mover_runs_as_a_builtin_container_that_god_starts_and_waits_for() {
    let v = TestVhost::new("retry-builtin");
    let p = TestProject::new("retry-builtin");
    let port = free_port();
    let (_dir, registry) = service_with_retry("[1s]");
    p.write(&builtin_component("retry", port, "/health", ""));
    let out = p.run_with_broker(&registry, &v.amqp_url(), &["apply", "--auto-approve"]);
    assert_exit(&out, 0);
    let env = p.inspect("retry").unwrap()["Config"]["Env"].to_string();
    assert!(env.contains("GOD_RETRY_ROUTES"), "{env}");
    v.publish("bus", "svc.created", "event");
    let first = receive(&v, "svc.q", Duration::from_secs(10), false);
    let second = receive(&v, "svc.q", Duration::from_secs(10), true);
    assert_delay(
        second.at - first.at,
        Duration::from_secs(1),
        Duration::from_millis(800),
    );
}

#[test]
fn quorum_queues_retry_the_same_way_with_replicated_stages() {
    let v = TestVhost::new("retry-quorum");
    let (_dir, registry) = registry(indoc::indoc! {r#"
        version: "1.0"
        exchange: {name: bus, type: topic}
        defaults: {queue_type: quorum}
        services:
          svc:
            queue_name: svc.q
            routing_keys: ["svc.#"]
            retry: [1s]
    "#});
    apply(&v, &registry);
    let stage = v.queue("svc.q.retry.1").unwrap();
    assert_eq!(stage["arguments"]["x-queue-type"], "quorum");
    assert_eq!(
        v.god_policy("svc.q.retry.1")["dead-letter-strategy"],
        "at-least-once"
    );
    let _mover = start_mover(&v, &registry);
    v.publish("bus", "svc.created", "event");
    let first = receive(&v, "svc.q", Duration::from_secs(10), false);
    let second = receive(&v, "svc.q", Duration::from_secs(10), false);
    assert_delay(
        second.at - first.at,
        Duration::from_secs(1),
        Duration::from_millis(800),
    );
    let dead = receive(&v, "svc.q_dlq", Duration::from_secs(10), true);
    assert_eq!(header_int(&dead.headers, "x-god-attempts"), Some(2));
}
