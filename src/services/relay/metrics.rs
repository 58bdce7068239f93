//! The relay's metrics, exposed at `GET /metrics` in the OpenMetrics text format
//! (prometheus-client): clients, deliveries, slow clients dropped, and the broker connection.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The relay's metrics.
pub struct Metrics {
    registry: Registry,
    /// Frames sent to clients.
    pub delivered: Counter,
    /// Clients dropped because they fell too far behind.
    pub dropped_slow_clients: Counter,
    clients: Gauge,
    connected: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let delivered = Counter::default();
        let dropped_slow_clients = Counter::default();
        let clients = Gauge::default();
        let connected = Gauge::default();
        let mut registry = Registry::with_prefix("god_relay");
        registry.register(
            "delivered",
            "Event frames sent to clients",
            delivered.clone(),
        );
        registry.register(
            "dropped_slow_clients",
            "Clients dropped because they fell too far behind",
            dropped_slow_clients.clone(),
        );
        registry.register("clients", "WebSocket clients connected", clients.clone());
        registry.register(
            "connected",
            "1 while the relay is connected to the broker",
            connected.clone(),
        );
        Self {
            registry,
            delivered,
            dropped_slow_clients,
            clients,
            connected,
        }
    }
}

impl Metrics {
    /// The exposition, with the clients and the connection as they are now.
    pub fn render(&self, clients: usize, connected: bool) -> String {
        self.clients.set(i64::try_from(clients).unwrap_or(i64::MAX));
        self.connected.set(i64::from(connected));
        crate::services::metrics::render(&self.registry)
    }
}
