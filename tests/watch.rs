//! `god watch` against the real broker and engine: heal restores what was deleted by hand
//! within two intervals, warn changes nothing, foreign objects survive, the drift events reach
//! the bus, inputs broken by an edit prune nothing, and a broker restart is survived.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::Value;
use support::*;

/// The interval the tests watch with.
const INTERVAL: Duration = Duration::from_secs(2);
/// Two intervals and the time a tick takes on a loaded machine.
const TWO_INTERVALS: Duration = Duration::from_secs(2 * 2 + 3);

const SERVICES: &str = "orders:\n  queue_name: orders.q\n  routing_keys: [order.created]\nbilling:\n  queue_name: billing.q\n  routing_keys: [\"invoice.#\"]";

/// `god watch` on `vhost` with `registry`, in `mode`, with more arguments.
fn watch(vhost: &TestVhost, registry: &Path, mode: &str, more: &[&str]) -> WatchProcess {
    let mut command = vhost.god();
    command
        .arg("--registry")
        .arg(registry)
        .args(["watch", "--mode", mode, "--interval", "2s"])
        .args(more);
    WatchProcess::spawn(command)
}

fn applied(vhost: &TestVhost, registry: &Path) {
    let out = vhost.run(registry, &["apply", "--auto-approve"]);
    assert_exit(&out, 0);
}

/// Declares a queue god does not know, bound to the bus for the drift events.
fn foreign_drift_queue(vhost: &TestVhost, name: &str) {
    vhost.amqp(|ch| async move {
        ch.queue_declare(
            name.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_bind(
            name.into(),
            "bus".into(),
            "god.drift.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    });
}

fn unbind(vhost: &TestVhost, queue: &str, key: &str) {
    vhost.amqp(|ch| async move {
        ch.queue_unbind(
            queue.into(),
            "bus".into(),
            key.into(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    });
}

fn delete_queue(vhost: &TestVhost, queue: &str) {
    vhost.api(
        "DELETE",
        &format!("queues/{}/{queue}", encode(&vhost.name)),
        None,
    );
}

fn has_binding(vhost: &TestVhost, queue: &str, key: &str) -> bool {
    vhost
        .bindings()
        .iter()
        .any(|(s, d, k)| s == "bus" && d == queue && k == key)
}

#[test]
fn heal_restores_a_deleted_queue_and_binding_leaves_a_foreign_queue_and_tells_the_bus() {
    let vhost = TestVhost::new("watch-heal");
    let (_dir, registry) = registry_with(SERVICES);
    applied(&vhost, &registry);
    foreign_drift_queue(&vhost, "dashboard.drift");
    let w = watch(&vhost, &registry, "heal", &["--prune"]);
    w.await_first_tick();
    let seen = w.events().len();
    assert!(w.health().0 == 200, "{:?}", w.health());

    delete_queue(&vhost, "orders.q");
    unbind(&vhost, "billing.q", "invoice.#");
    let healed = w.await_event(seen, TWO_INTERVALS, |e| {
        names_change(e, "healed", "queue/orders.q")
            && names_change(e, "healed", "binding/bus/queue/billing.q/invoice.#")
    });
    assert!(vhost.queue("orders.q").is_some());
    assert!(has_binding(&vhost, "orders.q", "order.created"));
    assert!(has_binding(&vhost, "billing.q", "invoice.#"));
    assert_eq!(healed["mode"], "heal");
    assert_eq!(healed["vhost"], vhost.name);
    let detected = w.events()[seen..]
        .iter()
        .find(|e| e["event"] == "god.drift.detected")
        .cloned()
        .expect("a detected event before the heal");
    let create = detected["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "queue/orders.q")
        .unwrap();
    assert_eq!(create["action"], "create");
    assert_eq!(create["cause"], "queue of service orders");

    // The foreign queue and its binding to god's exchange survive a heal with --prune, and
    // they received the events, as Bloodbank envelopes, confirmed.
    assert!(has_binding(&vhost, "dashboard.drift", "god.drift.#"));
    let envelopes = drained_until(
        &vhost,
        "dashboard.drift",
        &["god.drift.detected", "god.drift.healed"],
    );
    let bus_healed = envelopes
        .iter()
        .find(|e| e["event_type"] == "god.drift.healed")
        .unwrap();
    assert!(bus_healed["event_id"].is_string());
    assert_eq!(bus_healed["payload"]["changes"], healed["changes"]);
    let metrics = w.metrics();
    assert!(
        metrics.contains("god_watch_healed_changes_total 2")
            || metrics.contains("god_watch_healed_changes_total 3"),
        "{metrics}"
    );
    assert!(metrics.contains("god_watch_changes_pending 0"), "{metrics}");
}

#[test]
fn warn_changes_nothing_and_reports_each_drift_once() {
    let vhost = TestVhost::new("watch-warn");
    let (_dir, registry) = registry_with(SERVICES);
    applied(&vhost, &registry);
    let w = watch(&vhost, &registry, "warn", &[]);
    std::thread::sleep(INTERVAL);
    assert!(
        w.events().is_empty(),
        "a converged vhost: {:#?}",
        w.events()
    );

    delete_queue(&vhost, "orders.q");
    let first = w.await_event(0, TWO_INTERVALS, |e| {
        names_change(e, "detected", "queue/orders.q")
    });
    assert_eq!(first["mode"], "warn");
    unbind(&vhost, "billing.q", "invoice.#");
    let second = w.await_event(1, TWO_INTERVALS, |e| {
        names_change(e, "detected", "binding/bus/queue/billing.q/invoice.#")
    });
    assert!(names_change(&second, "detected", "queue/orders.q"));
    std::thread::sleep(INTERVAL * 2);
    assert!(vhost.queue("orders.q").is_none(), "warn must not heal");
    assert!(!has_binding(&vhost, "billing.q", "invoice.#"));
    let events = w.events();
    assert_eq!(
        events.len(),
        2,
        "one event per drift, not one per tick: {events:#?}"
    );
    assert!(events.iter().all(|e| e["event"] == "god.drift.detected"));
    let (status, health) = w.health();
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["changes_pending"], 3, "{health}");
}

#[test]
fn heal_never_deletes_without_prune_and_says_so() {
    let vhost = TestVhost::new("watch-withheld");
    let (_dir, registry) =
        registry_with(&SERVICES.replace("[order.created]", "[order.created, order.updated]"));
    applied(&vhost, &registry);
    let (_other, fewer) = registry_with(SERVICES);
    let w = watch(&vhost, &fewer, "heal", &[]);
    let id = "binding/bus/queue/orders.q/order.updated";
    let detected = w.await_event(0, TWO_INTERVALS, |e| names_change(e, "detected", id));
    let change = detected["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap();
    assert_eq!(change["action"], "delete");
    assert_eq!(change["withheld"], "heal never deletes without --prune");
    std::thread::sleep(INTERVAL * 2);
    assert!(has_binding(&vhost, "orders.q", "order.updated"));
    assert!(
        w.events()
            .iter()
            .all(|e| e["event"] == "god.drift.detected"),
        "{:#?}",
        w.events()
    );
    assert_eq!(w.health().1["changes_pending"], 1);
}

#[test]
fn heal_recreates_a_removed_container_and_starts_a_stopped_one() {
    let vhost = TestVhost::new("watch-containers");
    let (_dir, registry) = registry_with(SERVICES);
    let p = TestProject::new("watch");
    let (web, api) = (free_port(), free_port());
    let httpd = |name: &str, port: u16| {
        format!(
            "[components.{name}]\nimage = \"busybox:local\"\ncommand = [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"127.0.0.1:{port}\", \"-h\", \"/www\"]\nnetwork_mode = \"host\"\nrestart = \"no\"\n\n"
        )
    };
    let components = p.write(&format!("{}{}", httpd("web", web), httpd("api", api)));
    let out = p.run_with_broker(&registry, &vhost.amqp_url(), &["apply", "--auto-approve"]);
    assert_exit(&out, 0);

    let mut command = vhost.god();
    command
        .arg("--registry")
        .arg(&registry)
        .arg("--components")
        .arg(&components)
        .args(["--project", &p.name])
        .args(["watch", "--mode", "heal", "--interval", "2s"]);
    let w = WatchProcess::spawn(command);
    w.await_first_tick();
    let seen = w.events().len();
    docker(&["rm", "-f", &format!("{}-web", p.name)]).unwrap();
    docker(&["stop", "-t", "0", &format!("{}-api", p.name)]).unwrap();
    w.await_event(seen, TWO_INTERVALS, |e| {
        names_change(e, "healed", &format!("container/{}-web", p.name))
            && names_change(e, "healed", &format!("container/{}-api", p.name))
    });
    for component in ["web", "api"] {
        let state = p.inspect(component).unwrap();
        assert_eq!(state["State"]["Running"], true, "{component}: {state}");
    }
}

#[test]
fn a_broken_or_emptied_registry_keeps_the_last_good_state_and_prunes_nothing() {
    let vhost = TestVhost::new("watch-broken");
    let (_dir, registry) = registry_with(SERVICES);
    applied(&vhost, &registry);
    let w = watch(&vhost, &registry, "heal", &["--prune"]);
    std::thread::sleep(INTERVAL);

    std::fs::write(&registry, "version: \"1.0\"\nexchange: [unclosed\n").unwrap();
    let broken = w.await_event(0, TWO_INTERVALS, |e| e["event"] == "god.drift.failed");
    let error = broken["error"].as_str().unwrap();
    assert!(
        error.contains("registry.yaml:3:1: YAML syntax error"),
        "{error}"
    );
    assert!(
        error.contains("keeps the last good desired state"),
        "{error}"
    );
    let (status, health) = w.health();
    assert_eq!(status, 503, "{health}");

    std::fs::write(
        &registry,
        "version: \"1.0\"\nexchange:\n  name: bus\n  type: topic\n  durable: true\nservices: {}\n",
    )
    .unwrap();
    let emptied = w.await_event(1, TWO_INTERVALS, |e| e["event"] == "god.drift.failed");
    assert!(
        emptied["error"]
            .as_str()
            .unwrap()
            .contains("declares no service"),
        "{emptied}"
    );
    std::thread::sleep(INTERVAL * 2);
    assert!(
        vhost.queue("orders.q").is_some(),
        "an emptied registry pruned"
    );
    assert!(
        vhost.queue("billing.q").is_some(),
        "an emptied registry pruned"
    );

    // A deliberate removal of one service is still pruned.
    let (_other, fewer) =
        registry_with("orders:\n  queue_name: orders.q\n  routing_keys: [order.created]");
    std::fs::copy(&fewer, &registry).unwrap();
    w.await_event(2, TWO_INTERVALS, |e| {
        names_change(e, "healed", "queue/billing.q")
    });
    assert!(vhost.queue("billing.q").is_none());
    assert!(vhost.queue("orders.q").is_some());
    assert_eq!(w.health().0, 200);
}

#[test]
fn a_broker_restart_during_watch_is_survived_and_sigterm_stops_it() {
    let mut broker = DedicatedBroker::start();
    let (_dir, registry) = registry_with(SERVICES);
    broker.apply(&registry);
    let mut command = support::god();
    command
        .arg("--registry")
        .arg(&registry)
        .args(["--amqp-url", &broker.amqp_url()])
        .args(["--management-url", &broker.management_url()])
        .args(["watch", "--mode", "heal", "--interval", "2s"]);
    let mut w = WatchProcess::spawn(command);
    std::thread::sleep(INTERVAL);
    assert_eq!(w.health().0, 200);

    broker.stop();
    let failed = w.await_event(0, TWO_INTERVALS, |e| e["event"] == "god.drift.failed");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("cannot reach RabbitMQ"),
        "{failed}"
    );
    assert_eq!(w.health().0, 503);
    std::thread::sleep(INTERVAL * 2);
    broker.restart();
    let seen = w.events().len();
    let url = format!("{}/api/queues/%2f/orders.q", broker.management_url());
    assert!(
        Command::new("curl")
            .args(["-sf", "-u", "guest:guest", "-X", "DELETE", &url])
            .status()
            .unwrap()
            .success()
    );
    w.await_event(seen, TWO_INTERVALS * 3, |e| {
        names_change(e, "healed", "queue/orders.q")
    });
    assert_eq!(w.health().0, 200);

    let status = w.terminate();
    assert!(status.success(), "{status:?}: {}", w.stderr());
    assert!(w.stderr().contains("god watch: stopped"), "{}", w.stderr());
}

#[test]
fn two_healing_watchers_take_turns_and_heal_a_drift_once() {
    let vhost = TestVhost::new("watch-two");
    let (_dir, registry) = registry_with(SERVICES);
    applied(&vhost, &registry);
    let watchers = [
        watch(&vhost, &registry, "heal", &[]),
        watch(&vhost, &registry, "heal", &[]),
    ];
    for w in &watchers {
        w.await_first_tick();
    }
    for round in 0..3 {
        delete_queue(&vhost, "orders.q");
        let healed_once = |w: &WatchProcess| {
            w.events()
                .iter()
                .filter(|e| names_change(e, "healed", "queue/orders.q"))
                .count()
        };
        let deadline = std::time::Instant::now() + TWO_INTERVALS;
        while watchers.iter().map(healed_once).sum::<usize>() <= round {
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: not healed"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(INTERVAL * 2);
        let healed: usize = watchers.iter().map(healed_once).sum();
        assert_eq!(healed, round + 1, "round {round}: healed twice");
        assert!(vhost.queue("orders.q").is_some());
    }
}

#[test]
fn watch_runs_as_a_container_of_the_project_sees_it_converged_and_heals_it() {
    let vhost = TestVhost::new("watch-container");
    let (_dir, registry) = registry_with(SERVICES);
    let p = TestProject::new("watchc");
    let (web, watch_port) = (free_port(), free_port());
    let components = format!(
        "[components.web]\nimage = \"busybox:local\"\ncommand = [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"127.0.0.1:{web}\", \"-h\", \"/www\"]\nnetwork_mode = \"host\"\n\n[components.watch]\nbuiltin = \"watch\"\ncommand = [\"/god\", \"watch\", \"--listen\", \"127.0.0.1:{watch_port}\", \"--mode\", \"heal\", \"--interval\", \"2s\"]\nnetwork_mode = \"host\"\n\n[components.watch.healthcheck]\nhttp = \"http://127.0.0.1:{watch_port}/health\"\ninterval = \"500ms\"\nretries = 60\n"
    );
    p.write(&components);
    let out = p.run_with_broker(&registry, &vhost.amqp_url(), &["apply", "--auto-approve"]);
    assert_exit(&out, 0);
    let logs = |p: &TestProject| docker(&["logs", &format!("{}-watch", p.name)]).unwrap();
    std::thread::sleep(INTERVAL * 2);
    assert!(
        !logs(&p).contains("god.drift"),
        "the watch inside sees drift where god sees none: {}",
        logs(&p)
    );
    let out = p.run_with_broker(
        &registry,
        &vhost.amqp_url(),
        &["plan", "--detailed-exitcode"],
    );
    assert_exit(&out, 0);
    let doctor = p.run_with_broker(&registry, &vhost.amqp_url(), &["doctor", "--json"]);
    let report: Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let check = doctor_check(&report, "services.watch");
    assert_eq!(check["status"], "ok", "{check}");

    docker(&["rm", "-f", &format!("{}-web", p.name)]).unwrap();
    delete_queue(&vhost, "orders.q");
    let deadline = std::time::Instant::now() + TWO_INTERVALS;
    while !(logs(&p).contains("god.drift.healed") && p.inspect("web").is_some()) {
        assert!(
            std::time::Instant::now() < deadline,
            "not healed: {}",
            logs(&p)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let healed: Vec<Value> = logs(&p)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "god.drift.healed")
        .collect();
    assert!(
        healed
            .iter()
            .any(|e| names_change(e, "healed", &format!("container/{}-web", p.name))),
        "{healed:#?}"
    );
    assert!(vhost.queue("orders.q").is_some());
}

/// The envelopes that reach `queue` until one of each of `types` has come: a watch writes an
/// event's line before it publishes it, so the bus may be a moment behind the line.
fn drained_until(vhost: &TestVhost, queue: &str, types: &[&str]) -> Vec<Value> {
    let deadline = std::time::Instant::now() + TWO_INTERVALS;
    let mut envelopes: Vec<Value> = Vec::new();
    loop {
        let batch = vhost.drain(queue);
        envelopes.extend(
            batch
                .iter()
                .map(|b| serde_json::from_str::<Value>(b).unwrap()),
        );
        let seen = |t: &&str| envelopes.iter().any(|e| e["event_type"] == **t);
        if types.iter().all(seen) {
            return envelopes;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}, waiting for {types:?}",
            envelopes
                .iter()
                .map(|e| &e["event_type"])
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
