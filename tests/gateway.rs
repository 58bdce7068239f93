//! `god gateway` against the real broker: confirmed publishing, validation, refusals.

mod support;

use indoc::indoc;
use serde_json::{Value, json};
use support::*;

const BOUND: &str = indoc! {r#"
        s:
          queue_name: q
          routing_keys: ["agent.#"]
          dead_letter: false
    "#};

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
    let (message, properties) = v
        .get_with_properties("q")
        .expect("the event is in the bound queue");
    let envelope: Value = serde_json::from_str(&message).unwrap();
    assert_eq!(envelope["event_id"], event_id.as_str());
    let text = |s: &Option<lapin::types::ShortString>| s.as_ref().map(|s| s.to_string());
    assert_eq!(text(properties.message_id()), Some(event_id.clone()));
    assert_eq!(
        text(properties.correlation_id()).as_deref(),
        Some("0b6f6a9e-9a57-4e5c-8d2b-1d6f7b0d3c11")
    );
    assert_eq!(
        text(properties.content_type()).as_deref(),
        Some("application/json")
    );
    assert_eq!(*properties.delivery_mode(), Some(2), "persistent");
    let event_type_header = properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("event_type"))
        .and_then(|v| v.as_long_string())
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    assert_eq!(
        event_type_header.as_deref(),
        Some("agent.tonny.heartbeat"),
        "{properties:?}"
    );
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

/// Posts concurrently, one thread per request; returns each request's status and body.
fn post_concurrently(g: &GatewayProcess, requests: &[(String, String)]) -> Vec<(u16, String)> {
    std::thread::scope(|scope| {
        let posts: Vec<_> = requests
            .iter()
            .map(|(path, body)| {
                scope.spawn(move || {
                    let (status, _, answer) = g.request("POST", path, Some(body.as_bytes()), &[]);
                    (status, answer)
                })
            })
            .collect();
        posts.into_iter().map(|p| p.join().unwrap()).collect()
    })
}

#[test]
fn concurrent_events_each_get_their_own_verdict() {
    let v = TestVhost::new("gwmany");
    let g = started(&v, &[]);
    let requests: Vec<(String, String)> = (0..60)
        .map(|i| {
            let path = if i % 3 == 0 {
                "/events/nobody.listens"
            } else {
                "/events/agent.n"
            };
            (path.to_string(), format!("{{\"i\": {i}}}"))
        })
        .collect();
    let answers = post_concurrently(&g, &requests);
    let mut accepted = std::collections::BTreeSet::new();
    for ((path, _), (status, body)) in requests.iter().zip(&answers) {
        if path.ends_with("agent.n") {
            assert_eq!(*status, 202, "{path}: {body}");
            let answer: Value = serde_json::from_str(body).unwrap();
            accepted.insert(answer["event_id"].as_str().unwrap().to_string());
        } else {
            assert_eq!(*status, 422, "{path}: {body}");
            assert!(body.contains("unroutable"), "{body}");
        }
    }
    let mut queued = std::collections::BTreeSet::new();
    while let Some(message) = v.get("q") {
        let envelope: Value = serde_json::from_str(&message).unwrap();
        queued.insert(envelope["event_id"].as_str().unwrap().to_string());
    }
    assert_eq!(accepted.len(), 40);
    assert_eq!(queued, accepted, "exactly the accepted events are queued");
}

#[test]
fn one_event_id_posted_twice_at_once_gets_each_post_its_own_verdict() {
    let v = TestVhost::new("gwdup");
    let g = started(&v, &[]);
    let requests: Vec<(String, String)> = (0..10)
        .flat_map(|round| {
            let id = format!("00000000-0000-4000-8000-{round:012}");
            ["agent.dup", "nobody.dup"].map(|event_type| {
                let envelope = json!({"event_id": id, "event_type": event_type,
                    "source": {"host": "h", "type": "agent"}, "payload": {}});
                ("/events/custom".to_string(), envelope.to_string())
            })
        })
        .collect();
    let answers = post_concurrently(&g, &requests);
    for ((_, request), (status, body)) in requests.iter().zip(&answers) {
        let expected = if request.contains("agent.dup") {
            202
        } else {
            422
        };
        assert_eq!(*status, expected, "{request}: {body}");
    }
    assert_eq!(v.depth("q"), 10);
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
    assert!(!g.stderr().contains("panicked"), "{}", g.stderr());

    broker.restart();
    g.await_status("/health/ready", 200);
    assert_eq!(
        g.request("POST", "/events/agent.a", Some(b"{}"), &[]).0,
        202
    );
    assert!(!g.stderr().contains("panicked"), "{}", g.stderr());
}

#[test]
fn an_event_waiting_for_its_confirm_when_the_broker_dies_gets_a_503_before_the_timeout() {
    // A broker over its memory limit stops reading from publishers, so the event waits for its
    // confirm until the broker is killed under it.
    let mut broker = DedicatedBroker::start_with("vm_memory_high_watermark.absolute = 1\n");
    let (_d, registry) = registry_with(BOUND);
    broker.apply(&registry);
    let g = GatewayProcess::start(&broker.amqp_url(), "bus", &[]);
    g.await_status("/health/ready", 200);
    std::thread::scope(|scope| {
        let post = scope.spawn(|| {
            let started = std::time::Instant::now();
            let (status, _, body) = g.request("POST", "/events/agent.a", Some(b"{}"), &[]);
            (status, body, started.elapsed())
        });
        std::thread::sleep(std::time::Duration::from_secs(1));
        broker.stop();
        let (status, body, waited) = post.join().unwrap();
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("lost before the confirm"), "{body}");
        assert!(
            waited < god::services::gateway::publisher::CONFIRM_TIMEOUT,
            "answered when the connection broke, not at the timeout: {waited:?}"
        );
    });
}

#[test]
fn with_its_exchange_deleted_the_gateway_refuses_events_and_recovers_when_it_is_back() {
    let v = TestVhost::new("gwnoex");
    let g = started(&v, &[]);
    v.api(
        "DELETE",
        &format!("exchanges/{}/bus", encode(&v.name)),
        None,
    );
    let (status, _, body) = g.request("POST", "/events/agent.a", Some(b"{}"), &[]);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no exchange"), "the broker's reason: {body}");
    for _ in 0..3 {
        let (status, _, body) = g.request("POST", "/events/agent.a", Some(b"{}"), &[]);
        assert_eq!(status, 503, "{body}");
    }
    assert_eq!(g.request("GET", "/health/ready", None, &[]).0, 503);

    let (_d, registry) = registry_with(BOUND);
    assert_exit(&v.run(&registry, &["apply", "--auto-approve"]), 0);
    g.await_status("/health/ready", 200);
    let (status, _, body) = g.request("POST", "/events/agent.a", Some(b"{}"), &[]);
    assert_eq!(status, 202, "{body}");
    assert_eq!(v.depth("q"), 1);
    assert_eq!(
        settled_connection_count(&v),
        1,
        "the connection given up on is closed, not left open"
    );
}

/// The number of AMQP connections to the vhost, as the broker's management API lists them,
/// once it is down to exactly one or after 15 s. The API lists connections after its next
/// statistics round (every 5 s), so a count is taken again until it settles: a connection given
/// up on and left open keeps it at two, none at all keeps it at zero.
fn settled_connection_count(v: &TestVhost) -> usize {
    let count = || {
        v.api(
            "GET",
            &format!("vhosts/{}/connections", encode(&v.name)),
            None,
        )
        .as_array()
        .map_or(0, Vec::len)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let now = count();
        if now == 1 || std::time::Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// Waits until a gateway that cannot reach its broker has logged that, and returns the log.
fn broker_warning(env: &[(&str, &str)]) -> String {
    let nowhere = format!("amqp://guest:guest@127.0.0.1:{}/%2f", free_port());
    let g = GatewayProcess::start(&nowhere, "bus", env);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !g.stderr().contains("cannot connect to the broker") {
        assert!(
            std::time::Instant::now() < deadline,
            "no warning logged: {}",
            g.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    g.stderr()
}

#[test]
fn logs_off_a_terminal_carry_no_colour_codes() {
    let log = broker_warning(&[]);
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escape in a log file: {log:?}"
    );
    assert!(log.contains("WARN"), "{log}");
}

#[test]
fn god_log_format_json_writes_one_json_object_per_line() {
    let log = broker_warning(&[("GOD_LOG_FORMAT", "json")]);
    let entries: Vec<Value> = log
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line:?}"))
        })
        .collect();
    for entry in &entries {
        assert!(entry["fields"]["message"].is_string(), "{entry}");
        assert!(entry["timestamp"].is_string(), "{entry}");
    }
    let warning = entries
        .iter()
        .find(|e| e["level"] == "WARN")
        .expect("the broker warning");
    assert!(
        warning["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot connect to the broker"),
        "{warning}"
    );
}
