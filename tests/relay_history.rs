//! The relay's history against the real broker: every event frame has its position (offset,
//! epoch); a client that comes back with `?since=&epoch=` gets what it missed, in order and
//! once; a gap beyond the history, or another epoch, answers `recovered: false`; filters hold
//! on replay.

mod support;

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::Value;
use support::*;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const STREAM: &str = "god.relay.history";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn relay(v: &TestVhost, args: &[&str]) -> ServiceProcess {
    let (_d, _registry) = applied_registry(v);
    let relay = ServiceProcess::relay(&v.amqp_url(), "bus", args);
    relay.await_status("/health", 200);
    relay
}

fn applied_registry(v: &TestVhost) -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, registry) =
        registry_with("s:\n  queue_name: q\n  routing_keys: [\"#\"]\n  dead_letter: false");
    assert_exit(&v.run(&registry, &["apply", "--auto-approve"]), 0);
    (dir, registry)
}

/// Connects with `query`; returns the socket and its welcome.
async fn connect(relay: &ServiceProcess, query: &str) -> (Socket, Value) {
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/{query}", relay.port))
            .await
            .unwrap();
    let welcome = next_json(&mut socket).await.expect("a welcome");
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    (socket, welcome)
}

async fn next_json(socket: &mut Socket) -> Option<Value> {
    match tokio::time::timeout(Duration::from_secs(15), socket.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => Some(serde_json::from_str(text.as_str()).unwrap()),
        Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Err(_) => None,
        Ok(Some(Ok(_))) => Box::pin(next_json(socket)).await,
        Ok(Some(Err(e))) => panic!("{e}"),
    }
}

/// Publishes `count` events `{"seq": i}` with `key(i)` as routing key, confirmed, `pause`
/// between batches of 10.
async fn publish(v_url: String, count: u64, key: impl Fn(u64) -> String, pause: Duration) {
    let connection = Connection::connect(&v_url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for i in 0..count {
        let body = format!("{{\"seq\": {i}}}");
        channel
            .basic_publish(
                "bus".into(),
                key(i).as_str().into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        if i % 10 == 9 {
            tokio::time::sleep(pause).await;
        }
    }
    let _ = connection.close(200, "done".into()).await;
}

/// A client that reads until it saw `count` events, dropping its connection after every
/// `drop_every` events (`drops` times) and resuming from the last offset it saw. Returns the
/// sequence numbers it got, in order, and the recovery frames.
async fn resuming_client(
    relay_port: u16,
    count: u64,
    drop_every: usize,
    drops: usize,
    pause: Duration,
) -> (Vec<u64>, Vec<Value>) {
    let relay_url = format!("ws://127.0.0.1:{relay_port}/");
    let (mut socket, _) = tokio_tungstenite::connect_async(&relay_url).await.unwrap();
    let welcome = next_json(&mut socket).await.unwrap();
    let mut epoch = welcome["epoch"].as_str().unwrap().to_string();
    let mut last: Option<u64> = welcome["offset"].as_u64();
    let mut seqs = Vec::new();
    let mut recoveries = Vec::new();
    let mut since_drop = 0;
    let mut dropped = 0;
    while (seqs.len() as u64) < count {
        let Some(frame) = next_json(&mut socket).await else {
            panic!("the relay stopped sending after {} events", seqs.len());
        };
        match frame["type"].as_str() {
            Some("event") => {
                seqs.push(frame["envelope"]["seq"].as_u64().unwrap());
                last = frame["offset"].as_u64();
                epoch = frame["epoch"].as_str().unwrap().to_string();
                since_drop += 1;
            }
            Some("recovery") => recoveries.push(frame),
            _ => {}
        }
        if dropped < drops && since_drop == drop_every {
            drop(socket);
            tokio::time::sleep(pause).await;
            let since = last.map_or(String::new(), |l| l.to_string());
            let url = format!("{relay_url}?since={since}&epoch={epoch}");
            socket = tokio_tungstenite::connect_async(&url).await.unwrap().0;
            let _welcome = next_json(&mut socket).await.unwrap();
            dropped += 1;
            since_drop = 0;
        }
    }
    (seqs, recoveries)
}

#[test]
fn clients_that_drop_and_resume_miss_nothing_and_receive_nothing_twice() {
    let v = TestVhost::new("history-resume");
    let relay = relay(&v, &[]);
    let rt = runtime();
    let count = 1500;
    let (results, ()) = rt.block_on(async {
        let clients: Vec<_> = [(200, 2), (333, 3), (500, 2)]
            .into_iter()
            .map(|(every, drops)| {
                tokio::spawn(resuming_client(
                    relay.port,
                    count,
                    every,
                    drops,
                    Duration::from_millis(500),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let published = publish(
            v.amqp_url(),
            count,
            |i| format!("t.k{}", i % 7),
            Duration::from_millis(10),
        );
        let (done, ()) = tokio::join!(futures::future::join_all(clients), published);
        (done, ())
    });
    for result in results {
        let (seqs, recoveries) = result.unwrap();
        let expected: Vec<u64> = (0..count).collect();
        assert_eq!(seqs, expected, "in order, each once");
        assert!(!recoveries.is_empty());
        for r in &recoveries {
            assert_eq!(r["recovered"], true, "{r}");
        }
    }
}

#[test]
fn filters_hold_on_replay() {
    let v = TestVhost::new("history-filter");
    let relay = relay(&v, &[]);
    let rt = runtime();
    rt.block_on(async {
        let (mut socket, welcome) = connect(&relay, "?filter=a.%23").await;
        let epoch = welcome["epoch"].as_str().unwrap().to_string();
        publish(v.amqp_url(), 1, |_| "a.first".to_string(), Duration::ZERO).await;
        let first = next_json(&mut socket).await.unwrap();
        assert_eq!(first["routing_key"], "a.first");
        let offset = first["offset"].as_u64().unwrap();
        drop(socket);
        publish(
            v.amqp_url(),
            20,
            |i| {
                if i % 2 == 0 {
                    format!("a.k{i}")
                } else {
                    format!("b.k{i}")
                }
            },
            Duration::ZERO,
        )
        .await;
        let (mut socket, _) = connect(
            &relay,
            &format!("?filter=a.%23&since={offset}&epoch={epoch}"),
        )
        .await;
        let mut keys = Vec::new();
        let mut recovery = None;
        while keys.len() < 10 || recovery.is_none() {
            let frame = next_json(&mut socket).await.expect("ten events");
            match frame["type"].as_str() {
                Some("recovery") => recovery = Some(frame),
                _ => keys.push(frame["routing_key"].as_str().unwrap().to_string()),
            }
        }
        // Replayed up to where the relay stood when the client came back, the rest live.
        let recovery = recovery.expect("a recovery frame among them");
        assert_eq!(recovery["recovered"], true, "{recovery}");
        let expected: Vec<String> = (0..20).step_by(2).map(|i| format!("a.k{i}")).collect();
        assert_eq!(keys, expected);
    });
    // The relay's history is the relay's: god plans nothing for it, not even with --prune.
    let (_d, registry) = applied_registry(&v);
    assert!(v.queue(STREAM).is_some());
    assert_exit(
        &v.run(&registry, &["plan", "--prune", "--detailed-exitcode"]),
        0,
    );
}

#[test]
fn another_epoch_or_a_gap_beyond_the_history_answers_recovered_false() {
    let v = TestVhost::new("history-gap");
    // A history of small segments, so that retention drops the oldest events here.
    v.amqp(|ch| async move {
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("stream".into()),
        );
        arguments.insert("x-max-length-bytes".into(), AMQPValue::LongLongInt(40_000));
        arguments.insert(
            "x-stream-max-segment-size-bytes".into(),
            AMQPValue::LongLongInt(10_000),
        );
        arguments.insert(
            "x-god-epoch".into(),
            AMQPValue::LongString("epoch-one".into()),
        );
        let options = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        ch.queue_declare(STREAM.into(), options, arguments)
            .await
            .unwrap();
    });
    let relay = relay(&v, &[]);
    let rt = runtime();
    rt.block_on(async {
        let (mut live, welcome) = connect(&relay, "").await;
        assert_eq!(welcome["epoch"], "epoch-one");
        publish(v.amqp_url(), 3000, |_| "t.k".to_string(), Duration::ZERO).await;
        let mut offsets = Vec::new();
        while offsets.len() < 3000 {
            let frame = next_json(&mut live).await.expect("3000 live events");
            assert_eq!(frame["envelope"]["seq"], offsets.len());
            offsets.push(frame["offset"].as_u64().unwrap());
        }

        let (mut socket, _) =
            connect(&relay, &format!("?since={}&epoch=epoch-one", offsets[0])).await;
        let frame = next_json(&mut socket).await.unwrap();
        assert_eq!(frame["type"], "recovery", "{frame}");
        assert_eq!(frame["recovered"], false, "{frame}");
        let reason = frame["reason"].as_str().unwrap();
        assert!(reason.contains("no longer holds offset"), "{frame}");
        assert_eq!(frame["epoch"], "epoch-one");

        let since = offsets[2990];
        let (mut socket, _) = connect(&relay, &format!("?since={since}&epoch=epoch-two")).await;
        let frame = next_json(&mut socket).await.unwrap();
        assert_eq!(frame["recovered"], false, "{frame}");
        assert!(
            frame["reason"].as_str().unwrap().contains("epoch"),
            "{frame}"
        );

        let (mut socket, _) = connect(&relay, &format!("?since={since}&epoch=epoch-one")).await;
        let mut replayed = Vec::new();
        loop {
            let frame = next_json(&mut socket).await.unwrap();
            if frame["type"] == "recovery" {
                assert_eq!(frame["recovered"], true, "{frame}");
                break;
            }
            replayed.push(frame["envelope"]["seq"].as_u64().unwrap());
        }
        assert_eq!(replayed, (2991..3000).collect::<Vec<u64>>());
    });
}

#[test]
fn the_epoch_changes_when_the_stream_is_created_again() {
    let v = TestVhost::new("history-epoch");
    let relay = relay(&v, &[]);
    let rt = runtime();
    let first = rt.block_on(async {
        let (_socket, welcome) = connect(&relay, "").await;
        let first = welcome["epoch"].as_str().unwrap().to_string();
        assert!(!first.is_empty());
        publish(v.amqp_url(), 5, |_| "t.k".to_string(), Duration::ZERO).await;
        first
    });
    v.api(
        "DELETE",
        &format!("queues/{}/{STREAM}", encode(&v.name)),
        None,
    );
    rt.block_on(async {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let second = loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let (_s, welcome) = connect(&relay, "").await;
            let epoch = welcome["epoch"].as_str().unwrap_or_default().to_string();
            if !epoch.is_empty() && epoch != first {
                break epoch;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no new epoch: {}",
                relay.stderr()
            );
        };
        let (mut socket, _) = connect(&relay, &format!("?since=3&epoch={first}")).await;
        let frame = next_json(&mut socket).await.unwrap();
        assert_eq!(frame["recovered"], false, "{frame}");
        assert_eq!(frame["epoch"], second.as_str());
        // The new stream serves from its own start.
        publish(v.amqp_url(), 1, |_| "t.after".to_string(), Duration::ZERO).await;
        let event = next_json(&mut socket).await.unwrap();
        assert_eq!(event["routing_key"], "t.after");
        assert_eq!(event["offset"], 0);
        assert_eq!(event["epoch"], second.as_str());
    });
}

/// The plan of the broker with components.toml's relays, --prune included, is empty.
#[track_caller]
fn assert_converged_with(v: &TestVhost, registry: &std::path::Path, components: &str) {
    let args = [
        "plan",
        "--only",
        "rabbitmq",
        "--prune",
        "--detailed-exitcode",
    ];
    let converged = v.run(
        registry,
        &[&args[..], &["--components", components]].concat(),
    );
    assert_exit(&converged, 0);
}

/// `god apply --prune` of the broker with components.toml's relays succeeds.
#[track_caller]
fn apply_with(v: &TestVhost, registry: &std::path::Path, components: &str) {
    let args = ["apply", "--prune", "--auto-approve", "--only", "rabbitmq"];
    let applied = v.run(
        registry,
        &[&args[..], &["--components", components]].concat(),
    );
    assert_exit(&applied, 0);
}

/// A components.toml that runs a relay (never started here: the plan reads its settings).
fn relay_components(dir: &std::path::Path, extra: &str) -> String {
    let path = dir.join("components.toml");
    let text = format!("[components.relay]\nbuiltin = \"relay\"\nnetwork_mode = \"host\"\n{extra}");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn json_plan(v: &TestVhost, registry: &std::path::Path, args: &[&str]) -> Value {
    let out = v.run(
        registry,
        &[&["plan", "--only", "rabbitmq", "--json"], args].concat(),
    );
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn gods_plan_declares_the_relays_history_keeps_it_without_drift_and_draws_it() {
    let v = TestVhost::new("history-plan");
    let (dir, registry) =
        registry_with("s:\n  queue_name: q\n  routing_keys: [\"#\"]\n  dead_letter: false");
    let components = relay_components(
        dir.path(),
        "env = { GOD_RELAY_HISTORY_MAX_AGE = \"2h\", ROUTING_KEY = \"t.#\" }\n",
    );
    let with = ["--components", components.as_str()];
    let plan = json_plan(&v, &registry, &with);
    let ids = change_ids(&plan);
    assert!(ids.contains(&"queue/god.relay.history"), "{ids:?}");
    assert!(
        ids.contains(&"binding/bus/queue/god.relay.history/t.#"),
        "{ids:?}"
    );
    let cause = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "queue/god.relay.history")
        .map(|c| c["cause"].to_string())
        .unwrap();
    assert!(cause.contains("the history of relay relay"), "{cause}");

    let applied = v.run(
        &registry,
        &[
            "apply",
            "--only",
            "rabbitmq",
            "--auto-approve",
            "--components",
            &components,
        ],
    );
    assert_exit(&applied, 0);
    let stream = v.queue(STREAM).expect("the stream was declared");
    assert_eq!(stream["arguments"]["x-queue-type"], "stream");
    assert_eq!(stream["arguments"]["x-max-age"], "2h");
    let epoch = stream["arguments"]["x-god-epoch"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(epoch.len(), 36, "a UUID: {epoch}");

    // The relay serves the stream god declared, with god's epoch; the plan stays empty, even
    // with --prune, while a relay uses it.
    let relay = ServiceProcess::relay(&v.amqp_url(), "bus", &["--binding-key", "t.#"]);
    relay.await_status("/health", 200);
    let welcome = runtime().block_on(async { connect(&relay, "").await.1 });
    assert_eq!(welcome["epoch"], epoch.as_str());
    // The line the platform's OPS guide greps for.
    assert!(
        relay
            .stderr()
            .contains("Bound to exchange 'bus' with routing key 't.#'"),
        "{}",
        relay.stderr()
    );
    assert_converged_with(&v, &registry, &components);

    let graph = v.run(&registry, &["graph", "--components", &components]);
    assert_exit(&graph, 0);
    assert!(
        text(&graph).contains("god.relay.history"),
        "{}",
        text(&graph)
    );

    // Without a relay in components.toml, --prune deletes the stream god created.
    std::fs::write(&components, "[components]\n").unwrap();
    let pruned = json_plan(&v, &registry, &["--prune", "--components", &components]);
    let deleted = pruned["changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == "queue/god.relay.history" && c["action"] == "delete");
    assert!(deleted, "{pruned:#}");
}

#[test]
fn a_history_the_relay_declared_itself_is_no_drift_and_never_pruned() {
    let v = TestVhost::new("history-adopt");
    let relay = relay(&v, &[]);
    let epoch = runtime().block_on(async { connect(&relay, "").await.1["epoch"].clone() });
    let (dir, registry) =
        registry_with("s:\n  queue_name: q\n  routing_keys: [\"#\"]\n  dead_letter: false");
    let components = relay_components(dir.path(), "");
    let plan = json_plan(&v, &registry, &["--prune", "--components", &components]);
    let stream_changes: Vec<&Value> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["id"].as_str().is_some_and(|id| id.contains(STREAM)))
        .collect();
    assert!(
        stream_changes.iter().all(|c| c["action"] == "adopt"),
        "{plan:#}"
    );
    apply_with(&v, &registry, &components);
    assert_converged_with(&v, &registry, &components);
    // Without the relay in components.toml, god never deletes the stream it did not create.
    std::fs::write(&components, "[components]\n").unwrap();
    apply_with(&v, &registry, &components);
    let stream = v.queue(STREAM).expect("the relay's stream is kept");
    assert_eq!(stream["arguments"]["x-god-epoch"], epoch);
}

#[test]
fn doctor_says_how_many_events_the_history_holds_and_how_old_the_oldest_is() {
    let v = TestVhost::new("history-doctor");
    let (_dir, registry) = applied_registry(&v);
    let relay = ServiceProcess::relay(&v.amqp_url(), "bus", &[]);
    relay.await_status("/health", 200);
    let ten_minutes_ago = time::OffsetDateTime::now_utc() - time::Duration::minutes(10);
    let stamp = ten_minutes_ago
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    for i in 0..3 {
        v.publish(
            "bus",
            "t.k",
            &format!("{{\"seq\": {i}, \"timestamp\": \"{stamp}\"}}"),
        );
    }
    // The broker lists the relay's consumer within a few seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let details = loop {
        let out = v.run(&registry, &["doctor", "--json"]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let check = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == "flow.relay_history")
            .cloned();
        if let Some(check) = check.filter(|c| c["details"].to_string().contains("3 event(s)")) {
            break check["details"].to_string();
        }
        assert!(std::time::Instant::now() < deadline, "{report:#}");
        std::thread::sleep(Duration::from_secs(1));
    };
    assert!(details.contains("(the oldest 10m"), "{details}");
    assert!(details.contains("kept 1h"), "{details}");
}
