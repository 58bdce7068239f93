//! `god new service`: the upstream registry edited in place (every line kept), the consumers it
//! writes running against the topology god applies, and bad input refused with registry.yaml
//! left byte for byte as it was.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::*;

const EXCHANGE: &str = "bloodbank.events.v1";

/// A copy of the platform's last registry in a directory of its own.
fn upstream_copy() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.yaml");
    std::fs::copy(upstream("registry-2026-05-main.yaml"), &path).unwrap();
    (dir, path)
}

fn new_service(registry: &Path, args: &[&str]) -> std::process::Output {
    god()
        .arg("--registry")
        .arg(registry)
        .args(["new", "service"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_upstream_registry_keeps_every_line_and_gains_the_service() {
    let (_dir, registry) = upstream_copy();
    let before = std::fs::read_to_string(&registry).unwrap();
    let out = new_service(
        &registry,
        &[
            "order-tracker",
            "--queue",
            "services.shop.order_tracker",
            "--key",
            "shop.order.created",
        ],
    );
    assert_exit(&out, 0);
    let after = std::fs::read_to_string(&registry).unwrap();
    let mut kept = after.lines();
    for line in before.lines() {
        assert!(
            kept.any(|l| l == line),
            "line {line:?} was lost or moved:\n{after}"
        );
    }
    assert_eq!(
        after.lines().count(),
        before.lines().count() + 10,
        "the entry (9 lines) and a blank line before it"
    );
    assert_exit(&validate(&registry), 0);
    let rendered = god()
        .args(["render", "--format", "json", "--registry"])
        .arg(&registry)
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&rendered.stdout).unwrap();
    let queue = doc["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "services.shop.order_tracker")
        .expect("the new queue is desired");
    assert_eq!(queue["service"], "order-tracker");
    assert_eq!(queue["arguments"], serde_json::json!({}));
}

#[test]
fn bad_input_leaves_registry_yaml_as_it_was_and_writes_no_consumer() {
    let (dir, registry) = upstream_copy();
    let before = std::fs::read(&registry).unwrap();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let unwritable = blocker.join("consumer");
    let out_dir = dir.path().join("out");
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "event-store-manager",
                "--queue",
                "services.x.y",
                "--key",
                "a.b.c",
            ],
            "service \"event-store-manager\" exists already",
        ),
        (
            &[
                "fresh",
                "--queue",
                "services.fireflies.transcript_processor",
                "--key",
                "a.b.c",
            ],
            "exists already: it belongs to service fireflies-transcript-processor",
        ),
        (
            &[
                "fresh",
                "--queue",
                "services.fireflies.transcript_processor_dlq",
                "--key",
                "a.b.c",
            ],
            "exists already",
        ),
        (
            &["fresh", "--queue", "services.x.y", "--key", "shop..order"],
            "--key \"shop..order\": has an empty word",
        ),
        (
            &[
                "fresh",
                "--queue",
                "amq.mine",
                "--key",
                "a.b.c",
                "--consumer",
                "faststream",
                "--out",
            ],
            "reserved",
        ),
    ];
    for (args, expected) in cases {
        let mut args = args.to_vec();
        let out_text = out_dir.to_string_lossy().to_string();
        if args.last() == Some(&"--out") {
            args.push(&out_text);
        }
        let out = new_service(&registry, &args);
        assert_exit(&out, 1);
        assert!(text(&out).contains(expected), "{args:?}: {}", text(&out));
        assert_eq!(
            std::fs::read(&registry).unwrap(),
            before,
            "{args:?} changed the registry"
        );
    }
    assert!(
        !out_dir.exists(),
        "no consumer is written for a service that is refused"
    );
    let out = new_service(
        &registry,
        &[
            "fresh",
            "--queue",
            "services.x.fresh",
            "--key",
            "a.b.c",
            "--consumer",
            "aio-pika",
            "--out",
            unwritable.to_str().unwrap(),
        ],
    );
    assert_exit(&out, 1);
    assert!(
        text(&out).contains("cannot write the consumer"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read(&registry).unwrap(), before);
}

#[test]
fn a_registry_with_services_in_flow_style_is_refused() {
    let (_dir, registry) =
        registry("version: \"1.0\"\nexchange: {name: bus}\nservices: {a: {queue_name: q}}\n");
    let before = std::fs::read(&registry).unwrap();
    let out = new_service(
        &registry,
        &["b", "--queue", "services.b.q", "--key", "a.b.c"],
    );
    assert_exit(&out, 1);
    assert!(text(&out).contains("flow style"), "{}", text(&out));
    assert_eq!(std::fs::read(&registry).unwrap(), before);
}

/// Writes a service and its consumer for `client`, applies, and runs the consumer: it takes an
/// event posted through the gateway and rejects a message that is not JSON into the
/// dead-letter queue; the plan stays empty.
fn a_generated_consumer_runs_against_the_applied_topology(client: &str, quorum: bool) {
    let v = TestVhost::new("newsvc");
    let (dir, registry) = registry(&format!(
        "version: \"1.0\"\nexchange: {{name: {EXCHANGE}, type: topic, durable: true}}\n{}services:\n  other:\n    queue_name: services.other.q\n    routing_keys: [other.thing.done]\n",
        if quorum {
            "defaults: {queue_type: quorum}\n"
        } else {
            ""
        }
    ));
    let queue = format!("services.shop.orders_{}", client.replace('-', "_"));
    let consumer_dir = dir.path().join("consumer");
    let out = new_service(
        &registry,
        &[
            "orders",
            "--queue",
            &queue,
            "--key",
            "shop.order.created",
            "--key",
            "shop.order.paid",
            "--consumer",
            client,
            "--out",
            consumer_dir.to_str().unwrap(),
        ],
    );
    assert_exit(&out, 0);
    assert_exit(&v.run(&registry, &["apply", "--auto-approve"]), 0);
    let gateway = GatewayProcess::start(&v.amqp_url(), EXCHANGE, &[]);
    gateway.await_status("/health/ready", 200);
    let mut command = match client {
        "faststream" => ConsumerProcess::faststream(&consumer_dir),
        _ => ConsumerProcess::python(&consumer_dir, "consumer.py"),
    };
    // The upstream's variable, as compose sets it: the consumer falls back to it.
    command
        .env("RABBIT_URL", v.amqp_url())
        .env_remove("RABBITMQ_URL");
    let mut consumer = ConsumerProcess::spawn(command);
    consumer.await_line("consuming", Duration::from_secs(60));
    for key in ["shop.order.created", "shop.order.paid"] {
        let (status, _, body) =
            gateway.request("POST", &format!("/events/{key}"), Some(b"{}"), &[]);
        assert_eq!(status, 202, "{body}");
        let id: Value = serde_json::from_str(&body).unwrap();
        consumer.await_line(
            &format!("handled {key} {}", id["event_id"].as_str().unwrap()),
            Duration::from_secs(30),
        );
    }
    v.publish(EXCHANGE, "shop.order.created", "not json");
    let dead_letters = format!("{queue}_dlq");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while v.depth(&dead_letters) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing reached {dead_letters}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_exit(&v.run(&registry, &["plan", "--detailed-exitcode"]), 0);
}

#[test]
fn the_faststream_consumer_runs_unchanged() {
    a_generated_consumer_runs_against_the_applied_topology("faststream", false);
}

#[test]
fn the_aio_pika_consumer_runs_unchanged() {
    a_generated_consumer_runs_against_the_applied_topology("aio-pika", false);
}

#[test]
fn the_faststream_consumer_runs_on_quorum_queues() {
    a_generated_consumer_runs_against_the_applied_topology("faststream", true);
}
