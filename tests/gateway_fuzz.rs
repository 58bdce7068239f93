//! No body makes the gateway panic or answer 500: generated requests (random JSON, mutations of
//! valid envelopes, raw bytes, deep nesting, truncated text) go through the gateway's router and
//! its schema path, in process, with its publisher connected to the real broker. Every answer is
//! 2xx, 400 or 422. `GOD_FUZZ_BODIES` sets how many (100,000 by default, in the suite's time);
//! the README gives a longer run.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use god::rabbit::endpoints::BrokerEndpoints;
use god::services::gateway::envelope::Schemas;
use god::services::gateway::metrics::Metrics;
use god::services::gateway::publisher::Publisher;
use god::services::gateway::{DEFAULT_BODY_LIMIT, Gateway, router};
use serde_json::{Map, Value, json};
use support::*;
use tower::ServiceExt;

/// A small deterministic generator (xorshift64*): the same seed, the same bodies.
/// The keys generated objects use: the envelope's fields first, then the tree's payload fields
/// and the upstream routes' ones.
const KEYS: [&str; 20] = [
    "event_id",
    "event_type",
    "timestamp",
    "version",
    "source",
    "payload",
    "correlation_ids",
    "correlation_id",
    "host",
    "type",
    "app",
    "trigger_type",
    "meeting_id",
    "topic",
    "organizer",
    "text",
    "channel",
    "event",
    "action",
    "data",
];

struct Generator(u64);

impl Generator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn word(&mut self) -> String {
        const PARTS: [&str; 12] = [
            "agent", "theboard", "meeting", "created", "v1", "x", "", "..", "é", "a-b", "#", "*",
        ];
        (0..=self.below(3))
            .map(|_| *self.pick(&PARTS))
            .collect::<Vec<_>>()
            .join(".")
    }

    fn value(&mut self, depth: u32) -> Value {
        match self.below(if depth > 3 { 6 } else { 9 }) {
            0 => Value::Null,
            1 => json!(self.below(2) == 0),
            2 => json!(self.next() as i64),
            3 => json!((self.next() as f64) / 7.0),
            4 => json!(self.word()),
            5 => json!(*self.pick(&[
                "0b6f6a9e-9a57-4e5c-8d2b-1d6f7b0d3c11",
                "not-a-uuid",
                "2026-12-02T08:00:00Z",
                "ada@example.org",
                "v2",
                "2.1.0",
            ])),
            6 => Value::Array((0..self.below(4)).map(|_| self.value(depth + 1)).collect()),
            _ => {
                let keys = KEYS;
                let mut map = Map::new();
                for _ in 0..self.below(6) {
                    map.insert(self.pick(&keys).to_string(), self.value(depth + 1));
                }
                Value::Object(map)
            }
        }
    }

    /// A valid whole event, then a few of its fields broken.
    fn mutated_envelope(&mut self) -> Value {
        let mut envelope = json!({
            "event_id": "0b6f6a9e-9a57-4e5c-8d2b-1d6f7b0d3c11",
            "event_type": *self.pick(&["theboard.meeting.created", "agent.feedback.requested", "shop.order.paid"]),
            "timestamp": "2026-12-02T08:00:00Z",
            "version": *self.pick(&["1.0.0", "v2", "2", "v7", ""]),
            "source": {"host": "h", "app": "a", "trigger_type": "api"},
            "payload": {"meeting_id": "5f1d2a9c-1c2b-4e8a-9f3e-2a7d6c5b4e3f", "topic": "t", "organizer": "ada@example.org", "agent_id": "x", "message": "m"},
        });
        for _ in 0..self.below(3) {
            let field = *self.pick(&KEYS[..6]);
            envelope[field] = self.value(1);
        }
        envelope
    }

    fn body(&mut self) -> Vec<u8> {
        match self.below(10) {
            0..=3 => self.mutated_envelope().to_string().into_bytes(),
            4..=6 => self.value(0).to_string().into_bytes(),
            7 => (0..self.below(64)).map(|_| self.next() as u8).collect(),
            8 => "[".repeat(self.below(400) as usize).into_bytes(),
            _ => {
                let text = self.mutated_envelope().to_string();
                let cut = self.below(text.len() as u64) as usize;
                text.as_bytes()[..cut].to_vec()
            }
        }
    }

    fn path(&mut self) -> String {
        let safe = |s: String| -> String {
            let segment: String = s
                .chars()
                .map(|c| match c.is_ascii_alphanumeric() || "._-".contains(c) {
                    true => c,
                    false => '_',
                })
                .collect();
            // An empty segment, "." and ".." are not names in a URL's path.
            match segment.chars().all(|c| c == '.') {
                true => format!("x{segment}"),
                false => segment,
            }
        };
        match self.below(5) {
            0 => "/events/custom".to_string(),
            1 => format!("/events/{}", safe(self.word())).replace("/events/custom", "/events/x"),
            2 => "/publish".to_string(),
            3 => "/event".to_string(),
            _ => {
                let action = *self.pick(&[
                    "message.received",
                    "heartbeat",
                    "feedback.requested",
                    "dance",
                    "",
                ]);
                format!(
                    "/events/agent/{}/{}",
                    safe(self.word()),
                    if action.is_empty() { "x" } else { action }
                )
            }
        }
    }
}

#[test]
fn no_generated_body_makes_the_gateway_panic_or_answer_500() {
    let bodies: u64 = std::env::var("GOD_FUZZ_BODIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let v = TestVhost::new("fuzz");
    let (_d, registry) = registry_with(
        "all:\n  queue_name: all\n  routing_keys: [\"#\"]\n  dead_letter: false\n  arguments: {x-max-length: 1000}\n",
    );
    assert_exit(&v.run(&registry, &["apply", "--auto-approve"]), 0);
    let endpoints = BrokerEndpoints::resolve(Some(&v.amqp_url()), None).unwrap();
    let tree = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemas/tree");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let answers = runtime.block_on(async {
        let gateway = Arc::new(Gateway {
            publisher: Publisher::new(
                endpoints.amqp_endpoints().map(|e| e.address()).collect(),
                "bus",
            ),
            schemas: Schemas::load(Some(&tree), false).unwrap(),
            metrics: Metrics::default(),
            token: None,
            plane_secret: None,
            plane_intake_project: None,
        });
        gateway.publisher.keep_connected();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !gateway.publisher.ready().await {
            assert!(Instant::now() < deadline, "the publisher never connected");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let app = router(gateway, DEFAULT_BODY_LIMIT);
        let mut generator = Generator(0x9E37_79B9_7F4A_7C15);
        let mut answers: std::collections::BTreeMap<u16, u64> = Default::default();
        let mut batch = Vec::new();
        for _ in 0..bodies {
            let request = Request::post(generator.path())
                .header("content-type", "application/json")
                .body(Body::from(generator.body()))
                .unwrap();
            batch.push(app.clone().oneshot(request));
            if batch.len() == 64 {
                for response in futures::future::join_all(std::mem::take(&mut batch)).await {
                    *answers
                        .entry(response.unwrap().status().as_u16())
                        .or_default() += 1;
                }
            }
        }
        for response in futures::future::join_all(batch).await {
            *answers
                .entry(response.unwrap().status().as_u16())
                .or_default() += 1;
        }
        answers
    });
    eprintln!(
        "{bodies} bodies in {:.1?}: answers by status {answers:?}",
        started.elapsed()
    );
    assert_eq!(answers.values().sum::<u64>(), bodies);
    let allowed = [200, 202, 400, 422];
    let others: Vec<(&u16, &u64)> = answers
        .iter()
        .filter(|(s, _)| !allowed.contains(*s))
        .collect();
    assert!(
        others.is_empty(),
        "answers other than 2xx, 400, 422: {others:?}"
    );
    for status in [
        StatusCode::ACCEPTED,
        StatusCode::BAD_REQUEST,
        StatusCode::UNPROCESSABLE_ENTITY,
    ] {
        assert!(
            answers.contains_key(&status.as_u16()),
            "the generator reaches {status}: {answers:?}"
        );
    }
}
