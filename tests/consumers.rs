//! Consumers written the platform's way run against what god applies: FastStream declaring its
//! queue plainly (the recommended pattern), aio-pika declaring the dead-letter arguments the
//! registry lists (Candystore's pattern), pika declaring plainly, and a passive declaration.
//! Each takes an event posted through god's gateway, rejects one that fails into its
//! dead-letter queue (which `god dlq list` shows), and leaves `god plan` empty; the same with
//! quorum queues, the consumers passing `x-queue-type: quorum`.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::*;

const EXCHANGE: &str = "bloodbank.events.v1";
const KEY: &str = "test.event.created";
/// How long a consumer may take to start and to take an event.
const PATIENCE: Duration = Duration::from_secs(60);

/// One consumer's case: its client, and what the registry (and so the consumer) says of its
/// queue.
struct Case {
    client: &'static str,
    quorum: bool,
    /// The registry lists the dead-letter arguments the consumer declares (aio-pika's way).
    declares_dead_lettering: bool,
}

impl Case {
    fn queue(&self) -> String {
        let kind = if self.quorum { "quorum" } else { "classic" };
        format!("services.test.{}_{kind}", self.client.replace('-', "_"))
    }

    /// The registry's `arguments` for the queue, which the consumer declares too.
    fn arguments(&self) -> Value {
        let mut arguments = serde_json::Map::new();
        if self.declares_dead_lettering {
            arguments.insert("x-dead-letter-exchange".into(), "".into());
            arguments.insert(
                "x-dead-letter-routing-key".into(),
                format!("{}_dlq", self.queue()).into(),
            );
        }
        Value::Object(arguments)
    }

    fn registry(&self) -> String {
        let queue_type = if self.quorum { "quorum" } else { "classic" };
        format!(
            "version: \"1.0\"\nexchange: {{name: {EXCHANGE}, type: topic, durable: true}}\nservices:\n  consumer:\n    queue_name: {}\n    routing_keys: [\"{KEY}\"]\n    queue_type: {queue_type}\n    arguments: {}\n",
            self.queue(),
            self.arguments()
        )
    }

    /// What the consumer declares: the registry's arguments, with the type for quorum.
    fn declared(&self) -> String {
        let mut arguments = self.arguments();
        if self.quorum {
            arguments["x-queue-type"] = "quorum".into();
        }
        arguments.to_string()
    }
}

/// Applies the case's registry, starts the gateway and the consumer, posts an event it takes
/// and one it rejects, then checks the dead-letter queue and that the plan stays empty.
fn a_consumer_runs_against_the_applied_topology(case: Case) {
    let v = TestVhost::new("consumers");
    let (_dir, registry) = registry(&case.registry());
    assert_exit(&v.run(&registry, &["validate"]), 0);
    assert_exit(&v.run(&registry, &["apply", "--auto-approve"]), 0);
    let gateway = GatewayProcess::start(&v.amqp_url(), EXCHANGE, &[]);
    gateway.await_status("/health/ready", 200);
    let queue = case.queue();
    let mut consumer = ConsumerProcess::client(
        case.client,
        &v.amqp_url(),
        EXCHANGE,
        &queue,
        KEY,
        &case.declared(),
    );
    consumer.await_line("ready", PATIENCE);

    let taken = posted(&gateway, r#"{"order": 1}"#);
    consumer.await_line(&format!("handled {taken}"), PATIENCE);
    let failing = posted(&gateway, r#"{"fail": true}"#);
    consumer.await_line(&format!("rejected {failing}"), PATIENCE);

    let dead_letter_queue = format!("{queue}_dlq");
    let listed = await_dead_letters(&v, &registry, &dead_letter_queue);
    assert_eq!(listed["origins"][&queue], 1, "{listed}");
    assert_eq!(listed["reasons"]["rejected"], 1, "{listed}");
    let plan = v.run(&registry, &["plan", "--detailed-exitcode"]);
    assert_exit(&plan, 0);
}

/// Posts an event through the gateway; returns its event id.
fn posted(gateway: &GatewayProcess, payload: &str) -> String {
    let (status, _, body) = gateway.request(
        "POST",
        &format!("/events/{KEY}"),
        Some(payload.as_bytes()),
        &[],
    );
    assert_eq!(status, 202, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    answer["event_id"].as_str().unwrap().to_string()
}

/// `god dlq list --json`'s entry for `queue` once it shows one dead letter.
fn await_dead_letters(v: &TestVhost, registry: &std::path::Path, queue: &str) -> Value {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let out = v.run(registry, &["dlq", "list", "--json"]);
        assert_exit(&out, 0);
        let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
        let entry = listed["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["queue"] == queue)
            .cloned();
        match entry {
            Some(entry) if entry["count"] == 1 => return entry,
            _ if std::time::Instant::now() > deadline => {
                panic!("{queue} never listed with one dead letter: {listed}")
            }
            _ => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

#[test]
fn faststream_declaring_its_queue_plainly() {
    a_consumer_runs_against_the_applied_topology(Case {
        client: "faststream",
        quorum: false,
        declares_dead_lettering: false,
    });
}

#[test]
fn aio_pika_declaring_the_dead_letter_arguments_the_registry_lists() {
    a_consumer_runs_against_the_applied_topology(Case {
        client: "aio-pika",
        quorum: false,
        declares_dead_lettering: true,
    });
}

#[test]
fn pika_declaring_its_queue_plainly() {
    a_consumer_runs_against_the_applied_topology(Case {
        client: "pika",
        quorum: false,
        declares_dead_lettering: false,
    });
}

#[test]
fn a_passive_declaration() {
    a_consumer_runs_against_the_applied_topology(Case {
        client: "passive",
        quorum: false,
        declares_dead_lettering: false,
    });
}

#[test]
fn faststream_on_a_quorum_queue() {
    a_consumer_runs_against_the_applied_topology(Case {
        client: "faststream",
        quorum: true,
        declares_dead_lettering: false,
    });
}

#[test]
fn aio_pika_on_a_quorum_queue_with_its_dead_letter_arguments() {
    a_consumer_runs_against_the_applied_topology(Case {
        client: "aio-pika",
        quorum: true,
        declares_dead_lettering: true,
    });
}

#[test]
fn pika_on_a_quorum_queue() {
    a_consumer_runs_against_the_applied_topology(Case {
        client: "pika",
        quorum: true,
        declares_dead_lettering: false,
    });
}
