//! god on the local 3-node RabbitMQ cluster (`scripts/cluster`): quorum queues and their
//! dead-letter queues spread over the nodes, a node down (its queues left alone, the next node
//! used), and the bundled gateway and relay moving to another node when theirs is killed.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use indoc::indoc;
use serde_json::{Value, json};
use support::cluster::{management_url, node_name};
use support::*;

/// A live queue's entry, as the management API reports it.
fn queue_entry(v: &TestVhost, queue: &str) -> Value {
    v.queue(queue).unwrap_or_else(|| panic!("no queue {queue}"))
}

/// Services s<i> with queue q<i> bound with k<i>, quorum queues by the registry's default, each
/// with its dead-letter queue.
fn quorum_services(
    ids: std::ops::RangeInclusive<usize>,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let services: String = ids
        .map(|i| {
            format!("s{i}:\n  queue_name: q{i}\n  routing_keys: [k{i}]\n  dead_letter: true\n")
        })
        .collect();
    let (dir, path) = registry_with(&services);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(
            "services:\n",
            "defaults:\n  queue_type: quorum\nservices:\n",
        ),
    )
    .unwrap();
    (dir, path)
}

#[test]
fn quorum_queues_and_their_dead_letter_queues_apply_spread_over_the_nodes_and_prune_safely() {
    let cluster = Cluster::shared();
    let v = cluster.vhost("cquorum");
    let (_d, registry) = quorum_services(1..=6);
    assert_exit(
        &v.run_on_node(0, &registry, &["apply", "--auto-approve"]),
        0,
    );

    let mut leaders = BTreeSet::new();
    for i in 1..=6 {
        for queue in [format!("q{i}"), format!("q{i}_dlq")] {
            let entry = queue_entry(&v, &queue);
            assert_eq!(entry["type"], "quorum", "{queue}: {entry}");
            assert_eq!(
                entry["members"].as_array().map(Vec::len),
                Some(3),
                "{queue} is replicated on every node: {entry}"
            );
            leaders.insert(entry["leader"].as_str().unwrap_or_default().to_string());
        }
    }
    assert!(
        leaders.len() >= 2,
        "god is connected to node 1, yet the leaders of its 12 queues are spread: {leaders:?}"
    );
    assert_exit(&v.run(&registry, &["plan", "--detailed-exitcode"]), 0);

    v.publish("bus", "k2", "still needed");
    let (_d2, fewer) = quorum_services(3..=6);
    let out = v.run(&fewer, &["apply", "--auto-approve", "--prune"]);
    let shown = text(&out);
    assert_exit(&out, 1);
    assert!(
        v.queue("q1").is_none() && v.queue("q1_dlq").is_none(),
        "the empty quorum queue goes with its dead-letter queue: {shown}"
    );
    assert!(
        shown.contains("- queue/q2 (refused: the queue holds 1 message;"),
        "{shown}"
    );
    assert!(
        v.queue("q2").is_some() && v.queue("q2_dlq").is_some(),
        "the queue holding a message is kept, and so is its dead-letter queue: {shown}"
    );
    assert_eq!(v.depth("q2"), 1);
}

/// god's ownership records of a vhost: (object, how god came to manage it).
fn records(v: &TestVhost) -> BTreeSet<(String, String)> {
    v.bindings()
        .into_iter()
        .filter(|(source, _, _)| source == "god.managed")
        .map(|(_, object, origin)| (object, origin))
        .collect()
}

#[test]
fn with_a_node_stopped_god_works_through_the_next_and_leaves_that_nodes_queues_alone() {
    let cluster = Cluster::exclusive();
    let mut v = cluster.vhost("cdown");
    let one = indoc! {"
        classic:
          queue_name: c
          routing_keys: [c.#]
          dead_letter: true
        replicated:
          queue_name: r
          queue_type: quorum
          routing_keys: [r.#]
          dead_letter: true
    "};
    let (_d, registry) = registry_with(one);
    assert_exit(
        &v.run_on_node(0, &registry, &["apply", "--auto-approve"]),
        0,
    );
    assert_eq!(queue_entry(&v, "c")["node"], node_name(1).as_str());
    let records_before = records(&v);
    assert!(records_before.contains(&("c".into(), "created".into())));

    let down = cluster.stop_node(1);
    v.use_node(1);
    let on_a_live_node = v.run_on_node(1, &registry, &["plan", "--detailed-exitcode"]);
    assert_exit(&on_a_live_node, 0);
    assert!(
        !text(&on_a_live_node).contains("adopt"),
        "{}",
        text(&on_a_live_node)
    );
    let out = v.run(&registry, &["plan", "--detailed-exitcode", "--json"]);
    assert_exit(&out, 0);
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_plan_schema(&plan);
    assert_eq!(
        plan["changes"],
        json!([]),
        "nothing adopted or bound again: {plan}"
    );
    let unavailable: BTreeSet<&str> = plan["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "unavailable")
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(unavailable, BTreeSet::from(["queue/c", "queue/c_dlq"]));
    assert!(
        text(&out).contains(&format!("using {}", management_url(2))),
        "god says which node it uses: {}",
        text(&out)
    );

    let (_d2, two) = registry_with(&format!(
        "{one}added:\n  queue_name: a\n  queue_type: quorum\n  routing_keys: [a.#]\n"
    ));
    let out = v.run(&two, &["apply", "--auto-approve"]);
    let shown = text(&out);
    assert_exit(&out, 0);
    assert!(v.queue("a").is_some(), "{shown}");
    assert!(
        shown.contains("queue/c: its node godc1@localhost is down"),
        "apply says what it left alone: {shown}"
    );
    assert!(!shown.contains("adopt"), "{shown}");

    let doctor = v.run(&two, &["doctor"]);
    let report = text(&doctor);
    assert!(
        report.contains(&format!("management API answers at {}", management_url(2))),
        "{report}"
    );
    assert!(
        report.contains("godc1@localhost"),
        "the stopped node is named: {report}"
    );
    assert!(
        report.contains("r: replica on godc1@localhost down"),
        "the quorum queue serving without one replica is named: {report}"
    );
    assert!(
        report.contains("c on godc1@localhost"),
        "the classic queue is a single point of failure: {report}"
    );

    down.start();
    assert_exit(&v.run(&two, &["plan", "--detailed-exitcode"]), 0);
    assert!(
        records(&v).is_superset(&records_before),
        "the records were not rewritten while the node was down: {:?}",
        records(&v)
    );
    let (_d3, without_classic) = registry_with(indoc! {"
        replicated:
          queue_name: r
          queue_type: quorum
          routing_keys: [r.#]
          dead_letter: true
        added:
          queue_name: a
          queue_type: quorum
          routing_keys: [a.#]
    "});
    let out = v.run(&without_classic, &["apply", "--auto-approve", "--prune"]);
    assert_exit(&out, 0);
    assert!(
        v.queue("c").is_none() && v.queue("c_dlq").is_none(),
        "prune still deletes what god created: {}",
        text(&out)
    );
}

/// Event ids the gateway answered 202 for, and whether any came after `after` was set.
#[derive(Default)]
struct Accepted {
    ids: Mutex<Vec<String>>,
    after_kill: Mutex<usize>,
    /// The last refusal, for the failure message.
    last_refusal: Mutex<String>,
}

/// Posts events to the gateway from `workers` tasks until `stop` is set.
async fn post_until(
    gateway: &ServiceProcess,
    workers: usize,
    killed: &AtomicBool,
    stop: &AtomicBool,
    accepted: &Accepted,
) {
    let client = reqwest::Client::new();
    let url = format!("{}/events/agent.load", gateway.url);
    let tasks = (0..workers).map(|_| async {
        while !stop.load(Ordering::SeqCst) {
            let answer = client
                .post(&url)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await;
            let Ok(answer) = answer else { continue };
            if answer.status() == 202 {
                let body: Value = answer.json().await.unwrap();
                accepted
                    .ids
                    .lock()
                    .unwrap()
                    .push(body["event_id"].as_str().unwrap().to_string());
                if killed.load(Ordering::SeqCst) {
                    *accepted.after_kill.lock().unwrap() += 1;
                }
            } else {
                let refusal = format!(
                    "{} {}",
                    answer.status(),
                    answer.text().await.unwrap_or_default()
                );
                *accepted.last_refusal.lock().unwrap() = refusal;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    futures::future::join_all(tasks).await;
}

/// The node a named connection of the vhost is on, once the broker lists it (within 10 s).
fn node_of_connection(v: &TestVhost, name: &str) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let connections = v.api(
            "GET",
            "connections?columns=vhost,node,client_properties",
            None,
        );
        let node = connections.as_array().and_then(|all| {
            all.iter()
                .find(|c| {
                    c["vhost"] == v.name.as_str()
                        && c["client_properties"]["connection_name"] == name
                })
                .map(|c| c["node"].as_str().unwrap().to_string())
        });
        if node.is_some() || Instant::now() > deadline {
            return node;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every message of a queue (drained), counted by event id.
fn drain_event_ids(v: &TestVhost, queue: &str) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for message in v.drain(queue) {
        let envelope: Value = serde_json::from_str(&message).unwrap();
        *seen
            .entry(envelope["event_id"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    seen
}

#[test]
fn the_gateway_and_the_relay_survive_a_kill_9_of_their_node_and_no_accepted_event_is_lost() {
    let cluster = Cluster::exclusive();
    let mut v = cluster.vhost("ckill");
    let (_d, registry) = registry_with(indoc! {r##"
        store:
          queue_name: q
          queue_type: quorum
          leader_locator: client-local
          routing_keys: ["#"]
          dead_letter: false
    "##});
    // The queue's leader is on node 1, the node that is killed: the worst case.
    assert_exit(
        &v.run_on_node(0, &registry, &["apply", "--auto-approve"]),
        0,
    );
    assert_eq!(queue_entry(&v, "q")["leader"], node_name(1).as_str());
    let gateway = ServiceProcess::start(&v.amqp_urls(), "bus", &[]);
    let relay = ServiceProcess::relay_at(&v.amqp_urls(), &v.management_urls(), "bus");
    gateway.await_status("/health/ready", 200);
    relay.await_status("/health", 200);
    assert_eq!(node_of_connection(&v, "god gateway"), Some(node_name(1)));
    assert_eq!(node_of_connection(&v, "god relay"), Some(node_name(1)));

    let accepted = Accepted::default();
    let killed = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // A dashboard that reads the relay until the kill, then goes away.
    let leave = std::sync::Arc::new(AtomicBool::new(false));
    let dashboard = rt.spawn(read_until(relay.port, leave.clone()));
    let down = std::thread::scope(|scope| {
        let load = scope.spawn(|| rt.block_on(post_until(&gateway, 8, &killed, &stop, &accepted)));
        std::thread::sleep(Duration::from_secs(2));
        let down = cluster.kill_node(1);
        leave.store(true, Ordering::SeqCst);
        killed.store(true, Ordering::SeqCst);
        let kill = Instant::now();
        let mut first_after_kill = None;
        while *accepted.after_kill.lock().unwrap() < 200 && kill.elapsed() < Duration::from_secs(45)
        {
            if first_after_kill.is_none() && *accepted.after_kill.lock().unwrap() > 0 {
                first_after_kill = Some(kill.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("first event accepted {first_after_kill:?} after the kill");
        stop.store(true, Ordering::SeqCst);
        load.join().unwrap();
        down
    });
    let after_kill = *accepted.after_kill.lock().unwrap();
    if after_kill < 200 {
        v.use_node(1);
        eprintln!(
            "queues: {}\nbindings: {:?}",
            v.api(
                "GET",
                &format!(
                    "queues/{}?columns=name,node,state,type,leader,online,members",
                    encode(&v.name)
                ),
                None
            ),
            v.bindings()
        );
    }
    assert!(
        after_kill >= 200,
        "the gateway moved to another node and accepts events again ({after_kill} since the kill; last refusal: {}):\n{}",
        accepted.last_refusal.lock().unwrap(),
        gateway.stderr()
    );

    v.use_node(1);
    relay.await_status("/health", 200);
    let relayed = rt.block_on(async {
        let (mut socket, _) =
            tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws", relay.port))
                .await
                .unwrap();
        let _welcome = socket.next().await;
        std::thread::scope(|scope| {
            scope.spawn(|| v.publish("bus", "agent.after", r#"{"event_id": "after-the-kill"}"#));
        });
        let mut relayed = false;
        while let Ok(Some(Ok(frame))) =
            tokio::time::timeout(Duration::from_secs(10), socket.next()).await
        {
            if frame
                .to_text()
                .unwrap_or_default()
                .contains("after-the-kill")
            {
                relayed = true;
                break;
            }
        }
        relayed
    });
    assert!(
        relayed,
        "the relay moved to another node and keeps delivering:\n{}",
        relay.stderr()
    );
    assert_ne!(node_of_connection(&v, "god relay"), Some(node_name(1)));

    // The history is replicated: on another node the relay serves the same positions, and
    // the dashboard resumes where it left off.
    let (since, epoch) = rt.block_on(dashboard).unwrap();
    let since = since.expect("the dashboard saw events before the kill");
    let recovery = rt.block_on(async {
        let url = format!("ws://127.0.0.1:{}/?since={since}&epoch={epoch}", relay.port);
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), socket.next()).await;
            let Ok(Some(Ok(frame))) = frame else {
                panic!("no recovery frame: {}", relay.stderr());
            };
            let frame: Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
            if frame["type"] == "recovery" {
                return frame;
            }
        }
    });
    assert_eq!(
        recovery["recovered"],
        true,
        "{recovery}\n{}",
        relay.stderr()
    );
    assert_eq!(recovery["epoch"], epoch.as_str());
    assert!(recovery["replayed"].as_u64().unwrap() > 0, "{recovery}");

    let ids = accepted.ids.lock().unwrap().clone();
    let mut seen = drain_event_ids(&v, "q");
    seen.remove("after-the-kill");
    let lost: Vec<&String> = ids.iter().filter(|id| !seen.contains_key(*id)).collect();
    let duplicated = seen.values().filter(|n| **n > 1).count();
    eprintln!(
        "{} events answered 202 ({after_kill} after the kill), {} lost, {duplicated} duplicated; the gateway replaced a nacking connection {} time(s)",
        ids.len(),
        lost.len(),
        gateway.stderr().matches("connecting again").count()
    );
    assert!(
        lost.is_empty(),
        "{} accepted events lost: {lost:?}",
        lost.len()
    );
    down.start();
}

/// Reads the relay as a dashboard does until `leave`; returns the last offset and the epoch it
/// saw.
async fn read_until(port: u16, leave: std::sync::Arc<AtomicBool>) -> (Option<u64>, String) {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/"))
        .await
        .unwrap();
    let mut last = None;
    let mut epoch = String::new();
    while !leave.load(Ordering::SeqCst) {
        let Ok(Some(Ok(frame))) =
            tokio::time::timeout(Duration::from_millis(100), socket.next()).await
        else {
            continue;
        };
        let frame: Value =
            serde_json::from_str(frame.to_text().unwrap_or("{}")).unwrap_or_default();
        if let Some(e) = frame["epoch"].as_str() {
            epoch = e.to_string();
        }
        if frame["type"] == "event" {
            last = frame["offset"].as_u64();
        }
    }
    (last, epoch)
}
