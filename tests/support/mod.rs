//! Test support, one fixture per file: a private vhost per test ([`TestVhost`]), a container
//! project per test ([`TestProject`]), god's bundled services as processes ([`ServiceProcess`]),
//! a RabbitMQ node of a test's own ([`DedicatedBroker`]), the local 3-node cluster ([`Cluster`]),
//! the platform's own Python consumers ([`ConsumerProcess`]), `god watch` ([`WatchProcess`]), and god run as a user does ([`cli`]).

// Each test crate and benchmark includes this module and uses a part of it.
#![allow(dead_code, unused_imports)]

mod broker;
mod cli;
pub mod cluster;
mod consumer;
mod project;
mod service;
mod vhost;
mod watch;

use std::sync::atomic::{AtomicUsize, Ordering};

pub use broker::DedicatedBroker;
pub use cli::*;
pub use cluster::Cluster;
pub use consumer::{ConsumerProcess, venv};
pub use project::{
    TestProject, broker_component, broker_image, builtin_component, docker,
    remove_project_containers,
};
pub use service::{GatewayProcess, ServiceProcess, cpu_seconds_of, http_request, post_event};
pub use vhost::TestVhost;
pub use watch::{WatchProcess, names_change};

/// The management API of the broker `scripts/bootstrap` starts, god's default.
pub const DEFAULT_MANAGEMENT: &str = "http://127.0.0.1:15672";

/// The management API of the single-node broker the tests run on: the node of
/// `scripts/bootstrap` (RabbitMQ 3.10), or the one `GOD_TEST_MANAGEMENT` names (scripts/test's
/// second pass, on RabbitMQ 4.0 from `scripts/rabbitmq4`).
pub fn management() -> String {
    std::env::var("GOD_TEST_MANAGEMENT").unwrap_or_else(|_| DEFAULT_MANAGEMENT.to_string())
}

/// The AMQP `host:port` of that broker (`GOD_TEST_AMQP`, else 127.0.0.1:5672).
pub fn amqp_node() -> String {
    std::env::var("GOD_TEST_AMQP").unwrap_or_else(|_| "127.0.0.1:5672".to_string())
}

/// What names this test process's objects (vhosts, projects, nodes): its pid and the moment it
/// started, so that a later process given the same pid never meets what a killed run left.
pub fn process_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() % 1_000_000);
        format!("{}-{started}", std::process::id())
    })
}

/// A number no other fixture of this process has, for unique names.
fn next_id() -> usize {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    COUNTER.fetch_add(1, Ordering::SeqCst)
}

/// A free TCP port on the loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Three distinct free TCP ports on the loopback.
pub(crate) fn free_ports() -> [u16; 3] {
    let listeners: Vec<std::net::TcpListener> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    [ports[0], ports[1], ports[2]]
}
