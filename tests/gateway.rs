//! `god gateway` against the real broker: confirmed publishing, validation, refusals.

mod support;

use serde_json::{Value, json};
use support::*;

const BOUND: &str =
    "  s:\n    queue_name: q\n    routing_keys: [\"agent.#\"]\n    dead_letter: false\n";

fn started(v: &TestVhost, env: &[(&str, &str)]) -> GatewayProcess {
    let (_d, registry) = registry_with(BOUND);
    assert_exit(&v.run(&registry, &["apply", "--auto-approve"]), 0);
    let gateway = GatewayProcess::start(&v.amqp_url(), "bus", env);
    gateway.await_status("/health/ready", 200);
    gateway
}

#[test]
fn a_posted_event_reaches_its_queue_with_its_event_id() {
    let v = TestVhost::new("gw");
    let g = started(&v, &[]);
    let (status, _, body) = g.request(
        "POST",
        "/events/agent.tonny.heartbeat",
        Some(br#"{"beat": 1}"#),
        &["X-Correlation-Id: 0b6f6a9e-9a57-4e5c-8d2b-1d6f7b0d3c11"],
    );
    assert_eq!(status, 202, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let event_id = answer["event_id"].as_str().unwrap().to_string();
    let message = v.get("q").expect("the event is in the bound queue");
    let envelope: Value = serde_json::from_str(&message).unwrap();
    assert_eq!(envelope["event_id"], event_id.as_str());
    assert_eq!(envelope["event_type"], "agent.tonny.heartbeat");
    assert_eq!(envelope["payload"], json!({"beat": 1}));
    assert_eq!(
        envelope["correlation_ids"],
        json!(["0b6f6a9e-9a57-4e5c-8d2b-1d6f7b0d3c11"])
    );

    let custom = json!({"event_type": "agent.x.done", "source": {"host": "h", "type": "agent"}, "payload": {}});
    let (status, _, body) = g.request(
        "POST",
        "/events/custom",
        Some(custom.to_string().as_bytes()),
        &[],
    );
    assert_eq!(status, 202, "{body}");
    let envelope: Value = serde_json::from_str(&v.get("q").unwrap()).unwrap();
    assert!(
        envelope["event_id"].is_string() && envelope["timestamp"].is_string(),
        "filled in: {envelope}"
    );
    let (_, _, metrics) = g.request("GET", "/metrics", None, &[]);
    assert!(
        metrics.contains("god_gateway_published_total 2"),
        "{metrics}"
    );
}

#[test]
fn bad_events_are_refused_with_the_right_status_and_never_published() {
    let v = TestVhost::new("gwbad");
    let g = started(&v, &[]);
    let (status, _, _) = g.request("POST", "/events/agent.a", Some(b"{not json"), &[]);
    assert_eq!(status, 400);
    let bad = json!({"event_type": "agent.a", "source": {"host": "h", "type": "nope"}, "payload": {}, "event_id": "not-a-uuid"});
    let (status, _, body) = g.request(
        "POST",
        "/events/custom",
        Some(bad.to_string().as_bytes()),
        &[],
    );
    assert_eq!(status, 422, "{body}");
    let pointers: Vec<String> = serde_json::from_str::<Value>(&body).unwrap()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap().to_string())
        .collect();
    assert!(
        pointers.contains(&"/source/type".to_string())
            && pointers.contains(&"/event_id".to_string()),
        "{pointers:?}"
    );
    let (status, _, body) = g.request("POST", "/events/nobody.listens", Some(b"{}"), &[]);
    assert!(
        !(200..300).contains(&status),
        "an unroutable event must not be a 2xx: {status} {body}"
    );
    assert!(body.contains("unroutable"), "{body}");
    let big = vec![b' '; 2 * 1024 * 1024];
    let (status, _, _) = g.request("POST", "/events/agent.a", Some(&big), &[]);
    assert_eq!(status, 413);
    assert_eq!(v.depth("q"), 0, "nothing was published");
}

#[test]
fn a_token_is_required_when_configured() {
    let v = TestVhost::new("gwtoken");
    let g = started(&v, &[("GOD_GATEWAY_TOKEN", "t0ken")]);
    let (status, _, _) = g.request("POST", "/events/agent.a", Some(b"{}"), &[]);
    assert_eq!(status, 401);
    let (status, _, _) = g.request(
        "POST",
        "/events/agent.a",
        Some(b"{}"),
        &["Authorization: Bearer t0ken"],
    );
    assert_eq!(status, 202);
}

#[test]
fn with_the_broker_down_the_gateway_answers_503_and_recovers_when_it_returns() {
    let mut broker = DedicatedBroker::start();
    let (_d, registry) = registry_with(BOUND);
    broker.apply(&registry);
    let g = GatewayProcess::start(&broker.amqp_url(), "bus", &[]);
    g.await_status("/health/ready", 200);
    assert_eq!(
        g.request("POST", "/events/agent.a", Some(b"{}"), &[]).0,
        202
    );

    broker.stop();
    for _ in 0..5 {
        let (status, headers, body) = g.request("POST", "/events/agent.a", Some(b"{}"), &[]);
        assert_eq!(status, 503, "{body}");
        assert!(
            headers.to_lowercase().contains("retry-after: 1"),
            "{headers}"
        );
    }
    assert_eq!(g.request("GET", "/health/ready", None, &[]).0, 503);

    broker.restart();
    g.await_status("/health/ready", 200);
    assert_eq!(
        g.request("POST", "/events/agent.a", Some(b"{}"), &[]).0,
        202
    );
}
