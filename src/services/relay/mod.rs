//! `god relay`: RabbitMQ → WebSocket. One exclusive, auto-delete queue bound to the exchange;
//! every event goes to every client whose topic patterns match, as a TEXT frame
//! `{"type":"event","routing_key":...,"envelope":{...}}`. A client that cannot keep up is
//! dropped (its buffer is bounded) so that it never slows the others or the broker.

pub mod metrics;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};

use crate::model::topic;
use crate::rabbit::rotation::{self, NodeRotation, Session, keep_running};

/// The consumer tag of a relay's queue: how `god doctor` finds relays on the broker.
pub const CONSUMER_TAG: &str = "god-relay";

/// Settings of a relay.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// AMQP URLs (with credentials): nodes of one cluster, tried in turn.
    pub amqp_urls: Vec<String>,
    /// Exchange to read from.
    pub exchange: String,
    /// Binding key of the relay's queue.
    pub binding_key: String,
    /// Unacknowledged deliveries at most.
    pub prefetch: u16,
    /// Frames a client may have waiting before it is dropped.
    pub client_buffer: usize,
}

struct Client {
    patterns: Vec<String>,
    frames: mpsc::Sender<Utf8Bytes>,
}

/// The relay's shared state.
pub struct Relay {
    config: RelayConfig,
    clients: Mutex<HashMap<u64, Client>>,
    next_id: AtomicU64,
    nodes: NodeRotation,
    metrics: metrics::Metrics,
}

impl Relay {
    /// A relay not yet consuming.
    pub fn new(config: RelayConfig) -> Arc<Self> {
        Arc::new(Self {
            nodes: NodeRotation::new("relay", config.amqp_urls.clone()),
            config,
            clients: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            metrics: metrics::Metrics::default(),
        })
    }

    /// Consumes from the broker until the process ends, reconnecting (and declaring its queue
    /// and binding again) whenever the connection is lost: to the next node of the list, so that
    /// a cluster with a node down keeps the relay delivering.
    pub fn keep_consuming(self: &Arc<Self>) {
        keep_running(self);
    }

    /// Sends one event to every matching client; drops the clients whose buffer is full.
    async fn fan_out(&self, routing_key: &str, body: &[u8]) {
        let Ok(envelope) = serde_json::from_slice::<Value>(body) else {
            tracing::warn!("relay: dropped a non-JSON message with routing key {routing_key}");
            return;
        };
        let frame = Utf8Bytes::from(
            json!({"type": "event", "routing_key": routing_key, "envelope": envelope}).to_string(),
        );
        let mut clients = self.clients.lock().await;
        let mut slow = Vec::new();
        for (id, client) in clients.iter() {
            if !client
                .patterns
                .iter()
                .any(|p| topic::matches(p, routing_key))
            {
                continue;
            }
            match client.frames.try_send(frame.clone()) {
                Ok(()) => {
                    self.metrics.delivered.inc();
                }
                Err(_) => slow.push(*id),
            }
        }
        for id in slow {
            clients.remove(&id);
            self.metrics.dropped_slow_clients.inc();
        }
    }
}

#[async_trait::async_trait]
impl Session for Relay {
    fn rotation(&self) -> &NodeRotation {
        &self.nodes
    }

    async fn session(&self) -> Result<(), lapin::Error> {
        let (connection, channel) = self.nodes.channel(self.config.prefetch).await?;
        let options = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        };
        let queue = channel
            .queue_declare("".into(), options, FieldTable::default())
            .await?;
        channel
            .queue_bind(
                queue.name().clone(),
                self.config.exchange.as_str().into(),
                self.config.binding_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut deliveries = channel
            .basic_consume(
                queue.name().clone(),
                CONSUMER_TAG.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        self.nodes.set_connected(true);
        let lost = rotation::lost(&connection);
        tokio::pin!(lost);
        loop {
            let delivery = tokio::select! {
                delivery = deliveries.next() => delivery,
                () = &mut lost => None,
            };
            let Some(delivery) = delivery else { break };
            let delivery = delivery?;
            self.fan_out(delivery.routing_key.as_str(), &delivery.data)
                .await;
            delivery.acker.ack(BasicAckOptions::default()).await?;
        }
        Ok(())
    }
}

/// The HTTP routes: `/health`, `/metrics`, and a WebSocket on every other path.
pub fn router(relay: Arc<Relay>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(get(upgrade))
        .with_state(relay)
}

/// Serves until the process ends.
pub async fn serve(relay: Arc<Relay>, listen: SocketAddr) -> std::io::Result<()> {
    relay.keep_consuming();
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(
        "god relay listening on ws://{listen} (exchange {}, key {})",
        relay.config.exchange,
        relay.config.binding_key
    );
    axum::serve(listener, router(relay)).await
}

async fn health(State(relay): State<Arc<Relay>>) -> Response {
    let clients = relay.clients.lock().await.len();
    if relay.nodes.is_connected() {
        (
            StatusCode::OK,
            axum::Json(json!({"status": "ok", "clients": clients})),
        )
            .into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"status": "degraded", "reason": "not connected to the broker", "clients": clients}))).into_response()
    }
}

async fn metrics(State(relay): State<Arc<Relay>>) -> Response {
    let clients = relay.clients.lock().await.len();
    let connected = relay.nodes.is_connected();
    crate::services::metrics::response(relay.metrics.render(clients, connected))
}

async fn upgrade(
    State(relay): State<Arc<Relay>>,
    Query(query): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let patterns = query
        .get("filter")
        .map(|f| {
            f.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect()
        })
        .filter(|p: &Vec<String>| !p.is_empty())
        .unwrap_or_else(|| vec!["#".to_string()]);
    ws.on_upgrade(move |socket| session(relay, socket, patterns))
}

/// One client: a writer fed by its bounded buffer, a reader answering ping and subscribe.
async fn session(relay: Arc<Relay>, socket: WebSocket, patterns: Vec<String>) {
    let id = relay.next_id.fetch_add(1, Ordering::SeqCst);
    let (frames_tx, mut frames_rx) = mpsc::channel::<Utf8Bytes>(relay.config.client_buffer);
    let (mut sink, mut stream) = socket.split();
    let welcome = json!({
        "type": "welcome",
        "message": "Connected to Bloodbank WebSocket Relay",
        "exchange": relay.config.exchange,
        "routing_key": relay.config.binding_key,
        "filters": patterns,
    });
    if sink
        .send(Message::Text(welcome.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    // The map holds the only sender: when the relay drops a slow client, the writer below sees
    // its buffer closed and says goodbye.
    relay.clients.lock().await.insert(
        id,
        Client {
            patterns,
            frames: frames_tx,
        },
    );
    let writer = async {
        while let Some(frame) = frames_rx.recv().await {
            if sink.send(Message::Text(frame)).await.is_err() {
                return;
            }
        }
        // The sender was dropped: the relay let this client go because it fell behind.
        let close = CloseFrame {
            code: 1008,
            reason: "too slow: the relay's buffer for this client overflowed".into(),
        };
        let _ = sink.send(Message::Close(Some(close))).await;
    };
    let reader = async {
        while let Some(Ok(message)) = stream.next().await {
            match message {
                Message::Text(text) => reply(&relay, id, text.as_str()).await,
                Message::Close(_) => return,
                _ => {}
            }
        }
    };
    tokio::select! {
        () = writer => {}
        () = reader => {}
    }
    relay.clients.lock().await.remove(&id);
}

/// Answers a client's text message: `ping` → pong; `{"type":"subscribe","patterns":[...]}`
/// replaces its topic patterns. Anything else is ignored, as upstream.
async fn reply(relay: &Relay, id: u64, text: &str) {
    let answer = if text.trim() == "ping" {
        json!({"type": "pong"})
    } else {
        let Ok(request) = serde_json::from_str::<Value>(text) else {
            return;
        };
        if request["type"] != "subscribe" {
            return;
        }
        let patterns: Vec<String> = request["patterns"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .or_else(|| request["filter"].as_str().map(|f| vec![f.to_string()]))
            .unwrap_or_default();
        if let Some(client) = relay.clients.lock().await.get_mut(&id) {
            client.patterns = patterns.clone();
        }
        json!({"type": "subscribed", "patterns": patterns})
    };
    if let Some(client) = relay.clients.lock().await.get(&id) {
        let _ = client.frames.try_send(Utf8Bytes::from(answer.to_string()));
    }
}
