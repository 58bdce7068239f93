//! `god relay`: RabbitMQ → WebSocket. The relay reads its history, a stream bound to the
//! exchange ([`history`]), from where it stands (or, with the history off, an exclusive,
//! auto-delete queue); every event goes to every client whose topic patterns match, as a TEXT
//! frame `{"type":"event","offset":N,"epoch":"…","routing_key":...,"envelope":{...}}`. A client
//! that comes back with `?since=OFFSET&epoch=EPOCH` is first given what it missed from the
//! stream, then the live events. A client that cannot keep up is dropped (its buffer is
//! bounded) so that it never slows the others or the broker.

pub mod history;
pub mod metrics;
pub mod planned;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, Consumer};
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};

use crate::model::topic;
use crate::rabbit::amqp::reply_code;
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
    /// The history clients resume from (None: no history, no positions).
    pub history: Option<history::HistoryConfig>,
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
    /// The offset of the last event fanned out (-1: none yet); written under the clients' lock.
    last_offset: AtomicI64,
    /// The history's epoch ("" while unknown).
    epoch: RwLock<Arc<str>>,
    /// The broker connection of the current session, where replays open their channels.
    connection: std::sync::Mutex<Option<Arc<Connection>>>,
}

/// How often a relay whose history is not available tries it again.
const HISTORY_RETRY: Duration = Duration::from_secs(30);
/// How long a replay waits for the history's next delivery before giving up.
const REPLAY_STALL: Duration = Duration::from_secs(5);
/// Replayed deliveries acknowledged at once.
const REPLAY_ACK_EVERY: u64 = 500;

/// What a client asks for when it comes back: `?since=OFFSET&epoch=EPOCH`.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    since: Option<String>,
    epoch: Option<String>,
}

impl Resume {
    /// The request in a query string, if the client makes one.
    fn of(query: &HashMap<String, String>) -> Option<Self> {
        let resume = Self {
            since: query.get("since").cloned(),
            epoch: query.get("epoch").cloned(),
        };
        (resume.since.is_some() || resume.epoch.is_some()).then_some(resume)
    }
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
            last_offset: AtomicI64::new(-1),
            epoch: RwLock::new(Arc::from("")),
            connection: std::sync::Mutex::new(None),
        })
    }

    /// The offset of the last event fanned out.
    fn last(&self) -> Option<u64> {
        u64::try_from(self.last_offset.load(Ordering::SeqCst)).ok()
    }

    /// The history's epoch ("" while unknown).
    fn epoch(&self) -> Arc<str> {
        self.epoch.read().expect("epoch lock").clone()
    }

    /// The frame of one event: None for a message that is not JSON.
    fn event_frame(
        &self,
        routing_key: &str,
        body: &[u8],
        offset: Option<u64>,
    ) -> Option<Utf8Bytes> {
        let Ok(envelope) = serde_json::from_slice::<Value>(body) else {
            tracing::warn!("relay: dropped a non-JSON message with routing key {routing_key}");
            return None;
        };
        let frame = match offset {
            Some(offset) => {
                json!({"type": "event", "offset": offset, "epoch": &*self.epoch(), "routing_key": routing_key, "envelope": envelope})
            }
            None => json!({"type": "event", "routing_key": routing_key, "envelope": envelope}),
        };
        Some(Utf8Bytes::from(frame.to_string()))
    }

    /// Consumes from the broker until the process ends, reconnecting (and declaring its queue
    /// and binding again) whenever the connection is lost: to the next node of the list, so that
    /// a cluster with a node down keeps the relay delivering.
    pub fn keep_consuming(self: &Arc<Self>) {
        keep_running(self);
    }

    /// Sends one event to every matching client; drops the clients whose buffer is full.
    async fn fan_out(&self, routing_key: &str, body: &[u8], offset: Option<u64>) {
        let frame = self.event_frame(routing_key, body, offset);
        let mut clients = self.clients.lock().await;
        if let Some(offset) = offset {
            self.last_offset
                .store(i64::try_from(offset).unwrap_or(i64::MAX), Ordering::SeqCst);
        }
        let Some(frame) = frame else {
            return;
        };
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
        let connection = Arc::new(connection);
        let history = match &self.config.history {
            Some(history) => match self.consume_history(&connection, history).await {
                Ok(reading) => Some(reading),
                Err(e) if reply_code(&e) == Some(404) => {
                    tracing::warn!(
                        "relay: its history is not available ({e}); serving live events from a queue of its own, without positions, and trying the history again in {}s",
                        HISTORY_RETRY.as_secs()
                    );
                    None
                }
                Err(e) => return Err(e),
            },
            None => None,
        };
        let without_history = history.is_none();
        let (_reading, mut deliveries) = match history {
            Some(reading) => reading,
            None => self.consume_own_queue(channel).await?,
        };
        *self.connection.lock().expect("connection lock") = Some(connection.clone());
        self.nodes.set_connected(true);
        // The upstream relay's line, which the platform's OPS guide greps for.
        tracing::info!(
            "Bound to exchange '{}' with routing key '{}'",
            self.config.exchange,
            self.config.binding_key
        );
        let lost = rotation::lost(&connection);
        tokio::pin!(lost);
        // Without the history it wanted, the session ends now and then to try it again.
        let retry_history = without_history && self.config.history.is_some();
        let retry = async {
            match retry_history {
                true => tokio::time::sleep(HISTORY_RETRY).await,
                false => std::future::pending().await,
            }
        };
        tokio::pin!(retry);
        loop {
            let delivery = tokio::select! {
                delivery = deliveries.next() => delivery,
                () = &mut lost => None,
                () = &mut retry => None,
            };
            let Some(delivery) = delivery else { break };
            let delivery = delivery?;
            self.deliver(&delivery).await;
            delivery.acker.ack(BasicAckOptions::default()).await?;
        }
        *self.connection.lock().expect("connection lock") = None;
        Ok(())
    }
}

impl Relay {
    /// Fans out one delivery, unless the history already gave it (a session that starts again
    /// reads from the last offset on).
    async fn deliver(&self, delivery: &Delivery) {
        let offset = match &self.config.history {
            Some(_) => history::offset_of(delivery),
            None => None,
        };
        if offset.is_some() && offset <= self.last() {
            return;
        }
        if !self.serves(delivery) {
            return;
        }
        self.fan_out(delivery.routing_key.as_str(), &delivery.data, offset)
            .await;
    }

    /// Whether the relay's binding key matches a delivery of its history (which may hold what
    /// an earlier relay with another key bound).
    fn serves(&self, delivery: &Delivery) -> bool {
        self.config.history.is_none()
            || topic::matches(&self.config.binding_key, delivery.routing_key.as_str())
    }

    /// Prepares the history and reads it from after the last event fanned out (at the relay's
    /// start: from its end). A stream created again (another epoch) is read from its start.
    async fn consume_history(
        &self,
        connection: &Connection,
        config: &history::HistoryConfig,
    ) -> Result<(Channel, Consumer), lapin::Error> {
        let epoch = history::prepare(
            connection,
            config,
            &self.config.exchange,
            &self.config.binding_key,
        )
        .await?;
        let previous = self.epoch();
        // An epoch that cannot be read now is taken for the one known: only another epoch
        // means another stream.
        if !epoch.is_empty() && *previous != *epoch {
            *self.epoch.write().expect("epoch lock") = Arc::from(epoch.as_str());
            self.last_offset.store(-1, Ordering::SeqCst);
        }
        let start = match self.last() {
            Some(last) => last + 1,
            // A stream created again while the relay ran: all of it is new to its clients.
            None if !previous.is_empty() => 0,
            None => {
                let end = history::end_offset(connection, &config.stream).await?;
                if let Some(end) = end {
                    self.last_offset
                        .store(i64::try_from(end).unwrap_or(i64::MAX), Ordering::SeqCst);
                }
                end.map_or(0, |e| e + 1)
            }
        };
        let start = AMQPValue::LongLongInt(i64::try_from(start).unwrap_or(i64::MAX));
        history::consume_from(
            connection,
            &config.stream,
            start,
            self.config.prefetch,
            CONSUMER_TAG,
        )
        .await
    }

    /// Without history: an exclusive queue of the relay's own, bound to the exchange.
    async fn consume_own_queue(
        &self,
        channel: Channel,
    ) -> Result<(Channel, Consumer), lapin::Error> {
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
        let consumer = channel
            .basic_consume(
                queue.name().clone(),
                CONSUMER_TAG.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok((channel, consumer))
    }

    /// Whether a client's resume request can be met: the offset it saw last, or why not.
    fn resumable(&self, resume: &Resume, epoch: &str) -> Result<u64, String> {
        if self.config.history.is_none() {
            return Err("the relay keeps no history".to_string());
        }
        if epoch.is_empty() {
            return Err(
                "the history's epoch is unknown (the management API does not answer)".to_string(),
            );
        }
        if resume.epoch.as_deref() != Some(epoch) {
            return Err(format!(
                "the history is not the one the client read (epoch {epoch} now)"
            ));
        }
        resume
            .since
            .as_deref()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| "since is not an offset".to_string())
    }

    /// Sends a client what it missed: the history's events after the offset it saw last, up to
    /// `upto` (the last event fanned out before it was registered; the later ones wait in its
    /// buffer), then `{"type":"recovery","recovered":true,…}`; or, when the history cannot give
    /// them, `recovered: false` and why.
    async fn replay(
        &self,
        sink: &mut SplitSink<WebSocket, Message>,
        resume: &Resume,
        upto: Option<u64>,
        patterns: &[String],
    ) -> Result<(), axum::Error> {
        let epoch = self.epoch();
        let outcome = match self.resumable(resume, &epoch) {
            Err(reason) => Err(reason),
            Ok(since) => self.replay_events(sink, since, upto, patterns).await,
        };
        let mut frame = json!({"type": "recovery", "recovered": outcome.is_ok(), "epoch": &*epoch, "offset": upto});
        match outcome {
            Ok(replayed) => frame["replayed"] = json!(replayed),
            Err(reason) => frame["reason"] = json!(reason),
        }
        sink.send(Message::Text(frame.to_string().into())).await
    }

    /// The events after `since` up to `upto` that match `patterns`, sent to `sink`; how many, or
    /// why the history could not give them all.
    async fn replay_events(
        &self,
        sink: &mut SplitSink<WebSocket, Message>,
        since: u64,
        upto: Option<u64>,
        patterns: &[String],
    ) -> Result<u64, String> {
        let Some(upto) = upto.filter(|u| *u > since) else {
            return Ok(0);
        };
        let (Some(config), Some(connection)) = (
            &self.config.history,
            self.connection.lock().expect("connection lock").clone(),
        ) else {
            return Err("the relay is not connected to the broker".to_string());
        };
        // From `since` itself: the client saw it, so it is an event, and the chunk holding it
        // comes first while the history still has it (offsets are not contiguous: the stream
        // numbers some entries of its own).
        let (channel, mut consumer) = history::replay_from(&connection, &config.stream, since)
            .await
            .map_err(|e| format!("the history cannot be read: {e}"))?;
        let mut replayed = 0;
        let mut read = 0;
        let mut first = true;
        let outcome = loop {
            let delivery = match tokio::time::timeout(REPLAY_STALL, consumer.next()).await {
                Ok(Some(Ok(delivery))) => delivery,
                _ => break Err("the history stopped answering".to_string()),
            };
            read += 1;
            if read % REPLAY_ACK_EVERY == 0 {
                let multiple = lapin::options::BasicAckOptions { multiple: true };
                let _ = delivery.acker.ack(multiple).await;
            }
            let Some(offset) = history::offset_of(&delivery) else {
                continue;
            };
            if first && offset > since {
                break Err(format!(
                    "the history no longer holds offset {since} (it starts at {offset})"
                ));
            }
            first = false;
            if offset <= since {
                continue;
            }
            let key = delivery.routing_key.as_str();
            if self.serves(&delivery)
                && patterns.iter().any(|p| topic::matches(p, key))
                && let Some(frame) = self.event_frame(key, &delivery.data, Some(offset))
            {
                if sink.feed(Message::Text(frame)).await.is_err() {
                    break Err("the client went away".to_string());
                }
                replayed += 1;
            }
            if offset >= upto {
                break Ok(replayed);
            }
        };
        let _ = channel.close(200, "replayed".into()).await;
        let _ = sink.flush().await;
        outcome
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
    let resume = Resume::of(&query);
    ws.on_upgrade(move |socket| session(relay, socket, patterns, resume))
}

/// One client: a writer fed by its bounded buffer (after what it missed, when it resumes), a
/// reader answering ping and subscribe.
async fn session(
    relay: Arc<Relay>,
    socket: WebSocket,
    patterns: Vec<String>,
    resume: Option<Resume>,
) {
    let id = relay.next_id.fetch_add(1, Ordering::SeqCst);
    let (frames_tx, mut frames_rx) = mpsc::channel::<Utf8Bytes>(relay.config.client_buffer);
    let (mut sink, mut stream) = socket.split();
    let mut welcome = json!({
        "type": "welcome",
        "message": "Connected to Bloodbank WebSocket Relay",
        "exchange": relay.config.exchange,
        "routing_key": relay.config.binding_key,
        "filters": patterns,
    });
    if relay.config.history.is_some() {
        welcome["epoch"] = json!(&*relay.epoch());
        welcome["offset"] = json!(relay.last());
    }
    if sink
        .send(Message::Text(welcome.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    // The map holds the only sender: when the relay drops a slow client, the writer below sees
    // its buffer closed and says goodbye.
    // The last event fanned out before this client joined: later ones come to its buffer,
    // earlier ones from the history.
    let upto = {
        let mut clients = relay.clients.lock().await;
        clients.insert(
            id,
            Client {
                patterns: patterns.clone(),
                frames: frames_tx,
            },
        );
        relay.last()
    };
    let writer = async {
        if let Some(resume) = &resume
            && relay
                .replay(&mut sink, resume, upto, &patterns)
                .await
                .is_err()
        {
            return;
        }
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
