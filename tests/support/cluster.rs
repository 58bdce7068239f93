//! The local 3-node RabbitMQ cluster of the test run (`scripts/cluster`): `scripts/test` starts it
//! once before the tests and stops it after; a test run alone starts it here. Tests that stop a
//! node hold the cluster alone ([`Cluster::exclusive`]); the others share it
//! ([`Cluster::shared`]) and never see a node down. The hold is a file lock, so it works across
//! the processes nextest runs tests in.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::TestVhost;

/// Nodes of the test cluster.
pub const NODES: usize = 3;
/// AMQP port of node 1 (scripts/cluster's default): node i listens on PORT+i-1, its management
/// API on PORT+10000+i-1.
const PORT: u16 = 5701;

/// A hold on the test cluster, shared or exclusive, released on drop.
pub struct Cluster {
    _lock: File,
}

impl Cluster {
    /// The cluster, with every node running, shared with the other tests that do not stop nodes.
    pub fn shared() -> Self {
        Self::hold(false)
    }

    /// The cluster for this test alone: it may stop and start nodes, and must leave them all
    /// running (see [`NodeDown`]).
    pub fn exclusive() -> Self {
        Self::hold(true)
    }

    fn hold(exclusive: bool) -> Self {
        up();
        let lock = File::create(std::env::temp_dir().join("god-test-cluster.lock")).unwrap();
        if exclusive {
            lock.lock().unwrap();
        } else {
            lock.lock_shared().unwrap();
        }
        Self { _lock: lock }
    }

    /// A vhost of its own on the cluster; god is given every node, node 1 first.
    pub fn vhost(&self, tag: &str) -> TestVhost {
        TestVhost::on_nodes(
            tag,
            (1..=NODES).map(management_url).collect(),
            (1..=NODES)
                .map(|i| format!("127.0.0.1:{}", amqp_port(i)))
                .collect(),
        )
    }

    /// Stops node `i` (1-based) cleanly; it is started again when the guard drops.
    pub fn stop_node(&self, i: usize) -> NodeDown {
        cluster(&["stop-node", &i.to_string()]);
        NodeDown(i)
    }

    /// Kills node `i` (1-based) with SIGKILL; it is started again when the guard drops.
    pub fn kill_node(&self, i: usize) -> NodeDown {
        cluster(&["kill-node", &i.to_string()]);
        NodeDown(i)
    }
}

/// A node a test stopped: started again (and waited for) when dropped, also when the test
/// fails, so that the next test finds the whole cluster.
pub struct NodeDown(usize);

impl NodeDown {
    /// Starts the node again now and waits until it has rejoined.
    pub fn start(self) {
        drop(self);
    }
}

impl Drop for NodeDown {
    fn drop(&mut self) {
        cluster(&["start-node", &self.0.to_string()]);
    }
}

/// The AMQP port of node `i` (1-based).
pub fn amqp_port(i: usize) -> u16 {
    PORT + i as u16 - 1
}

/// The management URL of node `i` (1-based).
pub fn management_url(i: usize) -> String {
    format!("http://127.0.0.1:{}", PORT + 10000 + i as u16 - 1)
}

/// The name of node `i` (1-based).
pub fn node_name(i: usize) -> String {
    format!("godc{i}@localhost")
}

/// Starts the cluster when it does not run (once per test process).
fn up() {
    static UP: OnceLock<()> = OnceLock::new();
    UP.get_or_init(|| cluster(&["up"]));
}

fn cluster(args: &[&str]) {
    let out = Command::new(script())
        .args(args)
        .env_remove("GOD_CLUSTER_NAME")
        .env_remove("GOD_CLUSTER_PORT")
        .env_remove("GOD_CLUSTER_NODES")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/cluster {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster")
}
