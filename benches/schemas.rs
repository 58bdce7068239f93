//! `cargo bench --bench schemas`: what checking events against a Holyfields tree costs the
//! gateway. Two gateways run side by side on one vhost of the real broker, one with the schema
//! tree of god's tests (tests/schemas/tree) and one without; 64 keep-alive clients post the same
//! valid events to each in turn. Two events: a whole envelope of `theboard.meeting.created` v2,
//! whose payload schema takes its uuid and email types from `_common/` by `$id` (formats
//! asserted), and a bare payload of `agent.message.received`.
//!
//! Each row is GOD_BENCH_ROUNDS (default 5) rounds of GOD_BENCH_SECONDS (default 3): checked,
//! then unchecked. The ratio is the median of the rounds' ratios with their range, so the drift
//! of this shared machine falls on both sides. A consumer drains the queue throughout.
//!
//! Needs the broker of `scripts/bootstrap`. GOD_BENCH_CLIENTS (default 64) sets the clients.

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;

use common::load::{Request, http_load};
use common::{
    Drain, applied_registry, delete_vhost, env_number, fresh_vhost, print_median_ratio,
    two_thread_runtime,
};
use support::ServiceProcess;

const VHOST: &str = "god-bench-schemas";

/// A whole v2 envelope: the tree's schema for v2 checks its payload, with `$ref`s across files.
/// It has no `event_id`, so the gateway gives each post its own, as for distinct events (posts
/// of one `event_id` at once take turns, so that a returned message is matched to its post).
const MEETING: Request = Request::Post {
    path: "/events/custom",
    body: r#"{"event_type": "theboard.meeting.created", "timestamp": "2026-12-02T08:00:00Z", "version": "v2", "source": {"host": "bench", "app": "theboard", "trigger_type": "api"}, "correlation_ids": [], "payload": {"meeting_id": "5f1d2a9c-1c2b-4e8a-9f3e-2a7d6c5b4e3f", "topic": "benchmark", "organizer": "ops@example.com"}}"#,
};

/// A bare payload posted to its type's route, wrapped into an envelope by the gateway.
const MESSAGE: Request = Request::Post {
    path: "/events/agent.message.received",
    body: r#"{"text": "benchmark", "channel": "cli"}"#,
};

fn main() {
    let seconds: u64 = env_number("GOD_BENCH_SECONDS", 3);
    let rounds: usize = env_number("GOD_BENCH_ROUNDS", 5);
    let clients: usize = env_number("GOD_BENCH_CLIENTS", 64);
    let tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemas/tree");
    two_thread_runtime().block_on(async move {
        let http = reqwest::Client::new();
        fresh_vhost(&http, VHOST).await;
        let amqp = format!("amqp://guest:guest@127.0.0.1:5672/{VHOST}");
        let _registry = applied_registry(
            &amqp,
            "version: \"1.0\"\nexchange: {name: bus, type: topic, durable: true}\nservices:\n  sink:\n    queue_name: sink\n    routing_keys: [\"#\"]\n    dead_letter: false\n",
        );
        let checked = ServiceProcess::start(
            &amqp,
            "bus",
            &[("HOLYFIELDS_SCHEMA_DIR", tree.to_str().unwrap())],
        );
        let unchecked = ServiceProcess::start(&amqp, "bus", &[]);
        checked.await_status("/health/ready", 200);
        unchecked.await_status("/health/ready", 200);
        let drain = Drain::start(&amqp, "sink").await;

        println!("| event | round | with schemas events/s | without events/s | with / without |");
        println!("|---|---|---|---|---|");
        for (name, request) in [("meeting.created v2 (envelope)", MEETING), ("message.received (payload)", MESSAGE)] {
            let mut ratios = Vec::new();
            for round in 1..=rounds {
                let with = http_load(checked.port, request, 202, clients, seconds).await.rate();
                let without = http_load(unchecked.port, request, 202, clients, seconds).await.rate();
                ratios.push(with / without);
                println!("| {name} | {round} | {with:.0} | {without:.0} | {:.2} |", with / without);
            }
            print_median_ratio(&format!("{name}: with schemas / without, {clients} clients"), ratios);
        }
        drain.stop().await;
        delete_vhost(&http, VHOST).await;
    });
}
