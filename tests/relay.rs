//! `god relay` against the real broker: fan-out, topic filters, slow clients, with the gateway
//! publishing end to end.

mod support;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use indoc::indoc;
use serde_json::{Value, json};
use support::*;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Connects a client and reads its welcome.
async fn connect(relay: &ServiceProcess, query: &str) -> Socket {
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws{query}", relay.port))
            .await
            .unwrap();
    let welcome = next_json(&mut socket).await.expect("a welcome");
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    socket
}

/// The next text frame as JSON (binary frames fail the test: the dashboard parses text).
async fn next_json(socket: &mut Socket) -> Option<Value> {
    match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => Some(serde_json::from_str(text.as_str()).unwrap()),
        Ok(Some(Ok(other))) => panic!("expected a text frame, got {other:?}"),
        _ => None,
    }
}

/// The routing keys of the events a client receives within a short wait.
async fn received_keys(socket: &mut Socket) -> Vec<String> {
    let mut keys = Vec::new();
    while let Ok(Some(Ok(Message::Text(text)))) =
        tokio::time::timeout(Duration::from_millis(1500), socket.next()).await
    {
        let v: Value = serde_json::from_str(text.as_str()).unwrap();
        if v["type"] == "event" {
            keys.push(v["routing_key"].as_str().unwrap().to_string());
        }
    }
    keys
}

fn setup(v: &TestVhost, relay_args: &[&str]) -> (ServiceProcess, ServiceProcess) {
    let (_d, registry) = registry_with(indoc! {"
            s:
              queue_name: q
              routing_keys: [\"#\"]
              dead_letter: false
        "});
    assert_exit(&v.run(&registry, &["apply", "--auto-approve"]), 0);
    let gateway = ServiceProcess::start(&v.amqp_url(), "bus", &[]);
    let relay = ServiceProcess::relay(&v.amqp_url(), "bus", relay_args);
    gateway.await_status("/health/ready", 200);
    relay.await_status("/health", 200);
    (gateway, relay)
}

#[test]
fn an_event_posted_to_the_gateway_reaches_relay_clients_with_its_event_id() {
    let v = TestVhost::new("relay");
    let (gateway, relay) = setup(&v, &[]);
    runtime().block_on(async {
        let mut socket = connect(&relay, "").await;
        socket.send(Message::text("ping")).await.unwrap();
        assert_eq!(
            next_json(&mut socket).await.unwrap(),
            json!({"type": "pong"})
        );
        let (status, _, body) = gateway.request(
            "POST",
            "/events/agent.tonny.heartbeat",
            Some(br#"{"n": 1}"#),
            &[],
        );
        assert_eq!(status, 202, "{body}");
        let event_id = serde_json::from_str::<Value>(&body).unwrap()["event_id"].clone();
        let frame = next_json(&mut socket).await.expect("the event");
        assert_eq!(frame["type"], "event");
        assert_eq!(frame["routing_key"], "agent.tonny.heartbeat");
        assert_eq!(frame["envelope"]["event_id"], event_id);
        assert_eq!(frame["envelope"]["payload"], json!({"n": 1}));
    });
}

#[test]
fn client_filters_follow_topic_semantics() {
    let v = TestVhost::new("filters");
    let (_gateway, relay) = setup(&v, &[]);
    let rt = runtime();
    let (mut one_word, mut any_words) = rt.block_on(async {
        let one_word = connect(&relay, "?filter=agent.*.done").await;
        let mut any_words = connect(&relay, "").await;
        any_words
            .send(Message::text(
                json!({"type": "subscribe", "patterns": ["agent.#"]}).to_string(),
            ))
            .await
            .unwrap();
        assert_eq!(
            next_json(&mut any_words).await.unwrap()["type"],
            "subscribed"
        );
        (one_word, any_words)
    });
    for key in ["agent.x.done", "agent.x.y.done", "other.z", "agent"] {
        v.publish("bus", key, r#"{"event_type": "x"}"#);
    }
    rt.block_on(async {
        assert_eq!(received_keys(&mut one_word).await, vec!["agent.x.done"]);
        assert_eq!(
            received_keys(&mut any_words).await,
            vec!["agent.x.done", "agent.x.y.done", "agent"]
        );
    });
}

#[test]
fn a_stalled_client_is_dropped_while_another_keeps_receiving() {
    let v = TestVhost::new("slow");
    let (_gateway, relay) = setup(&v, &["--client-buffer", "1024"]);
    // 32 MiB of events: more than the stalled client's socket buffers (about 10 MiB on
    // loopback) and its 1024 waiting frames (8 MiB) can hold.
    let events = 4000;
    let body = format!(
        r#"{{"event_type": "bulk", "payload": "{}"}}"#,
        "x".repeat(8 * 1024)
    );
    std::thread::scope(|scope| {
        let rt = runtime();
        // Both clients connect; the stalled one then never reads a frame.
        let (_stalled, mut reader) =
            rt.block_on(async { (connect(&relay, "").await, connect(&relay, "").await) });
        scope.spawn(|| v.publish_many("bus", "bulk.event", body.as_bytes(), events));
        let received = rt.block_on(async {
            let mut n = 0;
            while n < events {
                match next_json(&mut reader).await {
                    Some(frame) if frame["type"] == "event" => n += 1,
                    Some(_) => {}
                    None => break,
                }
            }
            n
        });
        assert_eq!(received, events, "the reading client got every event");
    });
    let (_, _, metrics) = relay.request("GET", "/metrics", None, &[]);
    assert!(
        metrics.contains("god_relay_dropped_slow_clients_total 1"),
        "{metrics}"
    );
}

#[test]
fn the_relay_is_degraded_while_the_broker_is_down_and_reconnects_by_itself() {
    let mut broker = DedicatedBroker::start();
    let (_d, registry) = registry_with(indoc! {"
            s:
              queue_name: q
              routing_keys: [\"#\"]
              dead_letter: false
        "});
    broker.apply(&registry);
    let relay = ServiceProcess::relay(&broker.amqp_url(), "bus", &[]);
    relay.await_status("/health", 200);

    broker.stop();
    relay.await_status("/health", 503);
    let (_, _, health) = relay.request("GET", "/health", None, &[]);
    assert!(health.contains("degraded"), "{health}");

    broker.restart();
    relay.await_status("/health", 200);
    // Its queue and binding were declared again: events flow to a new client.
    let rt = runtime();
    let mut socket = rt.block_on(connect(&relay, ""));
    let body = r#"{"event_type": "after.restart"}"#;
    let url = broker.amqp_url();
    rt.block_on(async {
        let conn = lapin::Connection::connect(&url, Default::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        ch.basic_publish(
            "bus".into(),
            "after.restart".into(),
            Default::default(),
            body.as_bytes(),
            Default::default(),
        )
        .await
        .unwrap();
        let frame = next_json(&mut socket)
            .await
            .expect("an event after the restart");
        assert_eq!(frame["routing_key"], "after.restart");
    });
}
