//! The broker connection of god's long-running consumers (the relay, the retry mover): a lapin
//! connection to one node of the list after another, so that a service whose node went down
//! reconnects to the next, and a loop that keeps its session running for the life of the
//! process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use lapin::options::BasicQosOptions;
use lapin::types::LongString;
use lapin::{Channel, Connection, ConnectionProperties};

use crate::rabbit::endpoints::mask_url_str;

/// The nodes a service connects to in turn, and whether it is connected now.
pub struct NodeRotation {
    service: &'static str,
    urls: Vec<String>,
    next: AtomicUsize,
    connected: AtomicBool,
}

impl NodeRotation {
    /// The rotation of `service` (`relay`, `retry`) over these AMQP URLs (with credentials).
    pub fn new(service: &'static str, urls: Vec<String>) -> Self {
        Self {
            service,
            urls,
            next: AtomicUsize::new(0),
            connected: AtomicBool::new(false),
        }
    }

    /// Connects to the next node and opens a channel that takes `prefetch` unacknowledged
    /// deliveries at most; the channel lives as long as its connection is kept.
    pub async fn channel(&self, prefetch: u16) -> Result<(Connection, Channel), lapin::Error> {
        let connection = self.connect().await?;
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        Ok((connection, channel))
    }

    /// Connects to the next node of the list, the connection named `god <service>`.
    async fn connect(&self) -> Result<Connection, lapin::Error> {
        let node = self.next.fetch_add(1, Ordering::Relaxed) % self.urls.len();
        let name = LongString::from(format!("god {}", self.service));
        let properties = ConnectionProperties::default().with_connection_name(name);
        let connection = Connection::connect(&self.urls[node], properties).await?;
        tracing::info!(
            "{}: connected to the broker at {}",
            self.service,
            mask_url_str(&self.urls[node])
        );
        Ok(connection)
    }

    /// Whether the session is consuming now.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// Says whether the session is consuming.
    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::SeqCst);
    }
}

/// Resolves once `connection` is no longer connected (looked at every second). A session
/// selects on it beside its deliveries: a delivery stream does not always end when its broker
/// vanishes (a node killed while the process is busy), and a session that waits on it forever
/// never moves to the next node.
pub async fn lost(connection: &Connection) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if !connection.status().connected() {
            return;
        }
    }
}

/// A consumer that runs one broker session at a time.
#[async_trait::async_trait]
pub trait Session: Send + Sync + 'static {
    /// Its nodes.
    fn rotation(&self) -> &NodeRotation;
    /// Connects and consumes until the connection ends.
    async fn session(&self) -> Result<(), lapin::Error>;
}

/// Runs `service`'s session again and again for the life of the process: when it ends or
/// fails, says why, marks the service disconnected, and starts again half a second later, on
/// the next node.
pub fn keep_running<S: Session>(service: &Arc<S>) {
    let service = Arc::clone(service);
    tokio::spawn(async move {
        loop {
            if let Err(e) = service.session().await {
                let name = service.rotation().service;
                tracing::warn!("{name}: broker connection lost: {e}");
            }
            service.rotation().set_connected(false);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
}
