//! `god import registry` on the real broker: a vhost declared the way the platform's services
//! declare it (upstream-facts.md, section c) is written as a registry and a topology file that
//! `god plan` only adopts, and the next plan after `apply` is empty.

mod support;

use std::path::Path;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::Value;
use support::*;

const BUS: &str = "bloodbank.events.v1";

async fn exchange(ch: &Channel, name: &str) {
    let options = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.exchange_declare(
        name.into(),
        ExchangeKind::Topic,
        options,
        FieldTable::default(),
    )
    .await
    .unwrap();
}

/// Declares a durable queue with `arguments` and binds it to `exchange` with `keys`, as a
/// service does at its start.
async fn queue(ch: &Channel, name: &str, arguments: &[(&str, AMQPValue)], bound: &[(&str, &str)]) {
    let mut table = FieldTable::default();
    for (k, v) in arguments {
        table.insert((*k).into(), v.clone());
    }
    let options = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(name.into(), options, table).await.unwrap();
    for (exchange, key) in bound {
        ch.queue_bind(
            name.into(),
            (*exchange).into(),
            (*key).into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
}

fn text_arg(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

/// The platform's services declaring their own topology: the gateway's broadcaster queue
/// (`#`), the command adapter's `agent.commands` (one key per agent of its roster), the
/// infra dispatcher, candystore's queue with its dead-letter arguments and its unbound
/// dead-letter queue, theboard's multi-queue consumer, and the legacy Fireflies exchanges
/// with their TTL queues.
async fn declare_the_platform(ch: &Channel) {
    exchange(ch, BUS).await;
    let broadcaster = format!("{BUS}.bloodbank-ws-broadcaster");
    queue(ch, &broadcaster, &[], &[(BUS, "#")]).await;
    let roster = [(BUS, "command.tonny.#"), (BUS, "command.grace.#")];
    queue(ch, "agent.commands", &[], &roster).await;
    let dispatcher = format!("{BUS}.infra-dispatcher");
    queue(ch, &dispatcher, &[], &[(BUS, "webhook.plane.#")]).await;
    let dead_letter = [
        ("x-dead-letter-exchange", text_arg("")),
        (
            "x-dead-letter-routing-key",
            text_arg("candystore_events_dlq"),
        ),
    ];
    queue(ch, "candystore_events", &dead_letter, &[(BUS, "#")]).await;
    queue(ch, "candystore_events_dlq", &[], &[]).await;
    let board = [
        ("meeting_trigger", "theboard.meeting.trigger"),
        ("feature_brainstorm", "feature.brainstorm.requested"),
    ];
    for (name, key) in board {
        queue(ch, &format!("services.theboard.{name}"), &[], &[(BUS, key)]).await;
    }
    exchange(ch, "fireflies.events").await;
    exchange(ch, "fireflies.events.dlx").await;
    let ingestion = [
        ("x-message-ttl", AMQPValue::LongLongInt(86_400_000)),
        ("x-dead-letter-exchange", text_arg("fireflies.events.dlx")),
        ("x-dead-letter-routing-key", text_arg("transcript.failed")),
    ];
    let ready = [("fireflies.events", "fireflies.transcript.ready")];
    queue(ch, "transcripts.rag.ingestion", &ingestion, &ready).await;
    let failed = [("x-message-ttl", AMQPValue::LongLongInt(604_800_000))];
    let to_dlx = [("fireflies.events.dlx", "transcript.failed")];
    queue(ch, "transcripts.failed", &failed, &to_dlx).await;
}

/// The relay's queue: server-named, exclusive, bound `#`; it lives as long as `connection`.
async fn relay_queue(connection: &Connection) -> String {
    let ch = connection.create_channel().await.unwrap();
    let options = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    let q = ch
        .queue_declare("".into(), options, FieldTable::default())
        .await
        .unwrap();
    let name = q.name().to_string();
    ch.queue_bind(
        name.as_str().into(),
        BUS.into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    name
}

/// Where `needle` is in `text`, failing the test when it is not.
fn at(text: &str, needle: &str) -> usize {
    text.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in:\n{text}"))
}

/// Asserts that god failed with exit 1 and said each of `needles`.
fn fails_saying(out: &std::process::Output, needles: &[&str]) {
    assert_exit(out, 1);
    let said = text(out);
    for needle in needles {
        assert!(said.contains(needle), "{needle:?} not in:\n{said}");
    }
}

fn import(v: &TestVhost, dir: &Path, extra: &[&str]) -> std::process::Output {
    let out = dir.join("registry.yaml");
    v.god()
        .current_dir(dir)
        .args(["import", "registry", "--out", out.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn a_vhost_the_platform_declared_imports_into_a_registry_that_god_only_adopts() {
    let v = TestVhost::new("import");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let relay = rt.block_on(async {
        let connection = Connection::connect(&v.amqp_url(), ConnectionProperties::default())
            .await
            .unwrap();
        declare_the_platform(&connection.create_channel().await.unwrap()).await;
        let relay = relay_queue(&connection).await;
        (connection, relay)
    });
    let dir = tempfile::tempdir().unwrap();

    let out = import(&v, dir.path(), &[]);
    assert_exit(&out, 0);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        said.contains(&format!("left out: queue/{}: exclusive", relay.1)),
        "{said}"
    );
    assert!(
        said.contains("imported 5 service(s) and 1 dead-letter queue(s)"),
        "{said}"
    );
    assert!(!said.contains("not said exactly"), "{said}");

    let registry_path = dir.path().join("registry.yaml");
    let registry = std::fs::read_to_string(&registry_path).unwrap();
    // The upstream registry's layout: header comments, version, exchange, services, then the
    // event subscriptions; each service's keys in the upstream order.
    let top = [
        "version: \"1.0\"",
        "\nexchange:\n",
        "\nservices:\n",
        "\nevent_subscriptions:\n",
    ];
    let places: Vec<usize> = top.iter().map(|k| at(&registry, k)).collect();
    assert!(places.is_sorted(), "{registry}");
    let candystore = &registry[at(&registry, "  candystore-events:\n")..];
    let keys = [
        "name:",
        "description:",
        "type:",
        "queue_name:",
        "routing_keys:",
        "status:",
    ];
    let places: Vec<usize> = keys.iter().map(|k| at(candystore, k)).collect();
    assert!(places.is_sorted(), "{candystore}");
    let candystore = &candystore[..at(candystore, "\n\n")];
    assert!(
        !candystore.contains("dead_letter"),
        "candystore_events_dlq is the default <queue>_dlq:\n{candystore}"
    );
    assert!(!registry.contains("  candystore-events-dlq:"), "{registry}");
    let board = &registry[at(&registry, "  theboard:\n")..];
    assert!(
        board.contains("queue_names:\n      - \"services.theboard.feature_brainstorm\"\n      - \"services.theboard.meeting_trigger\""),
        "{board}"
    );
    let commands = &registry[at(&registry, "  agent-commands:\n")..];
    assert!(
        commands.contains("      - \"command.grace.#\"\n      - \"command.tonny.#\"\n    status: \"active\"\n    dead_letter: false"),
        "{commands}"
    );
    assert!(
        registry.contains("  bloodbank-ws-broadcaster:\n"),
        "{registry}"
    );
    assert!(registry.contains("  infra-dispatcher:\n"), "{registry}");
    let topology = std::fs::read_to_string(dir.path().join("topology/imported.yaml")).unwrap();
    for name in [
        "fireflies.events.dlx:",
        "transcripts.rag.ingestion:",
        "transcripts.failed:",
    ] {
        assert!(topology.contains(name), "{topology}");
    }
    assert!(
        !topology.contains(BUS) && !topology.contains("amq.gen"),
        "{topology}"
    );

    let validated = validate(&registry_path);
    assert_exit(&validated, 0);

    let out = v.run(&registry_path, &["plan", "--json"]);
    assert_exit(&out, 0);
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_plan_schema(&plan);
    let changes = plan["changes"].as_array().unwrap();
    let not_adoptions: Vec<&Value> = changes.iter().filter(|c| c["action"] != "adopt").collect();
    assert!(not_adoptions.is_empty(), "{not_adoptions:#?}");
    // The bus, fireflies' two exchanges and the nine queues: every object god can own.
    assert_eq!(plan["summary"]["adopt"], 12, "{:?}", change_ids(&plan));
    let summary = &plan["summary"];
    assert_eq!(
        (&summary["add"], &summary["change"], &summary["destroy"]),
        (&0.into(), &0.into(), &0.into())
    );
    let text_plan = text(&v.run(&registry_path, &["plan"]));
    assert!(
        text_plan.contains("Plan: 12 to adopt, 0 to add, 0 to change, 0 to destroy."),
        "{text_plan}"
    );

    let out = v.run(&registry_path, &["apply", "--auto-approve"]);
    assert_exit(&out, 0);
    let out = v.run(&registry_path, &["plan", "--detailed-exitcode"]);
    assert_exit(&out, 0);
    assert!(
        v.queue(&relay.1).is_some(),
        "the relay's queue is left alone"
    );
    v.publish(BUS, "command.tonny.run", "{}");
    assert_eq!(v.get("agent.commands").as_deref(), Some("{}"));
    rt.block_on(relay.0.close(200, "done".into())).unwrap();
}

#[test]
fn import_says_what_to_do_when_it_cannot_tell_the_bus_or_would_overwrite_a_file() {
    let v = TestVhost::new("import-errors");
    let dir = tempfile::tempdir().unwrap();
    let out = import(&v, dir.path(), &[]);
    fails_saying(&out, &["no topic exchange with queues bound to it"]);

    v.amqp(|ch| async move {
        exchange(&ch, "a.bus").await;
        exchange(&ch, "b.bus").await;
        queue(&ch, "qa", &[], &[("a.bus", "x.#")]).await;
        queue(&ch, "qb", &[], &[("b.bus", "y.#")]).await;
    });
    let out = import(&v, dir.path(), &[]);
    let tie = "a.bus and b.bus have as many queues bound (1)";
    fails_saying(&out, &[tie, "--exchange"]);
    let out = import(&v, dir.path(), &["--exchange", "c.bus"]);
    fails_saying(&out, &["exchange \"c.bus\" does not exist", "a.bus, b.bus"]);
    assert!(!dir.path().join("registry.yaml").exists());

    let out = import(&v, dir.path(), &["--exchange", "a.bus"]);
    assert_exit(&out, 0);
    let registry = std::fs::read_to_string(dir.path().join("registry.yaml")).unwrap();
    assert!(registry.contains("queue_name: \"qa\""), "{registry}");
    let topology = std::fs::read_to_string(dir.path().join("topology/imported.yaml")).unwrap();
    assert!(
        topology.contains("b.bus:") && topology.contains("qb:"),
        "{topology}"
    );

    std::fs::write(dir.path().join("registry.yaml"), "mine\n").unwrap();
    let out = import(&v, dir.path(), &["--exchange", "a.bus"]);
    fails_saying(&out, &["exists: god does not overwrite it"]);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("registry.yaml")).unwrap(),
        "mine\n"
    );

    let wrong = v
        .amqp_url()
        .replace("guest:guest", "guest:not-the-password");
    let out = god()
        .env("RABBITMQ_URL", wrong)
        .args(["import", "registry", "--exchange", "a.bus"])
        .output()
        .unwrap();
    assert_exit(&out, 1);
    assert!(!text(&out).contains("not-the-password"), "{}", text(&out));
}

/// The desired topology `god render` gives for a registry: its exchanges, queues (without the
/// id of the service they belong to) and bindings.
fn rendered_topology(registry: &Path) -> Value {
    let out = god()
        .args([
            "--registry",
            registry.to_str().unwrap(),
            "render",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let mut rendered: Value = serde_json::from_slice(&out.stdout).unwrap();
    for queue in rendered["queues"].as_array_mut().unwrap() {
        queue.as_object_mut().unwrap().remove("service");
    }
    serde_json::json!([
        rendered["exchanges"],
        rendered["queues"],
        rendered["bindings"]
    ])
}

#[test]
fn the_upstream_registry_applied_then_imported_gives_the_same_topology_and_an_empty_plan() {
    let v = TestVhost::new("import-upstream");
    let upstream = upstream("registry-2026-05-main.yaml");
    assert_exit(&v.run(&upstream, &["apply", "--auto-approve"]), 0);
    let dir = tempfile::tempdir().unwrap();
    let out = import(&v, dir.path(), &[]);
    assert_exit(&out, 0);
    let imported = dir.path().join("registry.yaml");
    let registry = std::fs::read_to_string(&imported).unwrap();
    // theboard's five queues, one key each, are one service again, as upstream writes it.
    assert!(registry.contains("  theboard:\n"), "{registry}");
    assert_eq!(
        registry.matches("      - \"services.theboard.").count(),
        5,
        "{registry}"
    );
    // Without consumers to tell them apart, the naming rule groups services.agent.* too.
    assert!(registry.contains("  agent:\n"), "{registry}");
    assert!(
        !dir.path().join("topology").exists(),
        "nothing the registry cannot say"
    );
    assert_eq!(rendered_topology(&imported), rendered_topology(&upstream));
    assert_exit(&v.run(&imported, &["plan", "--detailed-exitcode"]), 0);
}
