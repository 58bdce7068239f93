//! The confirming publisher: persistent, mandatory, with publisher confirms. An event is only
//! reported published once the broker confirmed it; a returned (unroutable) event, a nack, a
//! missing connection or a confirm that does not come in time are errors the client sees.
//! A keeper task reconnects in the background when the broker goes away.
//!
//! It uses amqprs rather than lapin (which the rest of god uses): amqprs runs on the tokio
//! runtime instead of a thread of its own, and measured half of lapin's CPU per confirmed
//! publish, which is most of what the gateway spends besides HTTP (README, "Benchmarks").

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use amqprs::callbacks::ChannelCallback;
use amqprs::channel::{
    BasicPublishArguments, Channel, ConfirmSelectArguments, ExchangeDeclareArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, FieldTable, FieldValue, Nack, Return};
use tokio::sync::{Mutex, MutexGuard, RwLock, oneshot};

use super::confirms::{Confirms, Verdict};
use crate::rabbit::endpoints::AmqpAddress;

/// How long a publish waits for the broker's confirm.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the keeper checks the connection.
const KEEPER_PERIOD: Duration = Duration::from_millis(500);

/// A connection whose every publish has been nacked for this long is replaced: after a node
/// failure, a channel opened while its quorum queues elected new leaders can go on nacking
/// (measured on RabbitMQ 3.10), where a fresh channel publishes at once.
const NACKING_LIMIT: Duration = Duration::from_secs(2);

/// Why publishes in flight fail when their connection breaks.
const CONNECTION_LOST: &str = "the connection to the broker was lost before the confirm";

/// Why an event was not published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// No connection to the broker right now.
    Unavailable(String),
    /// The broker returned it: no queue is bound for its routing key.
    Unroutable,
    /// The broker refused it (nack).
    Nacked,
    /// No confirm within [`CONFIRM_TIMEOUT`].
    Timeout,
}

/// An event to publish.
pub struct Outgoing<'a> {
    /// Routing key (the event type).
    pub routing_key: &'a str,
    /// JSON body.
    pub body: Vec<u8>,
    /// AMQP message id (the event id).
    pub message_id: &'a str,
    /// AMQP correlation id, when the event has one.
    pub correlation_id: Option<&'a str>,
}

/// One connection with its confirming channel and the publishes waiting on it.
struct Link {
    connection: Connection,
    channel: Channel,
    confirms: Arc<Confirms>,
    /// The delivery tag of the last publish sent; held while a publish is sent, so that tags
    /// are handed out in the order the broker sees the publishes.
    last_tag: Mutex<u64>,
    /// Since when every verdict on this link has been a nack (None: the last was not).
    nacking_since: std::sync::Mutex<Option<Instant>>,
}

impl Link {
    fn is_open(&self) -> bool {
        self.connection.is_open() && self.channel.is_open() && !self.stuck()
    }

    /// Whether every publish has been nacked for [`NACKING_LIMIT`].
    fn stuck(&self) -> bool {
        let since = *self
            .nacking_since
            .lock()
            .expect("the nack clock is never poisoned");
        since.is_some_and(|t| t.elapsed() >= NACKING_LIMIT)
    }

    /// Notes a verdict: nacks start (or continue) the clock, anything else stops it.
    fn note(&self, nacked: bool) {
        let mut since = self
            .nacking_since
            .lock()
            .expect("the nack clock is never poisoned");
        match (nacked, *since) {
            (true, None) => *since = Some(Instant::now()),
            (true, Some(_)) => {}
            (false, _) => *since = None,
        }
    }

    /// Fails what is still in flight and closes the connection, which may still be open when
    /// only its channel was closed (a clone watches it for failures, so dropping it would not).
    fn give_up(&self) {
        self.confirms.lose_all(CONNECTION_LOST);
        let connection = self.connection.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CONFIRM_TIMEOUT, connection.close()).await;
        });
    }

    /// Sends one publish and returns where its verdict will arrive.
    async fn send(
        &self,
        exchange: &str,
        event: Outgoing<'_>,
    ) -> Result<oneshot::Receiver<Verdict>, PublishError> {
        let last_tag = self.turn_for(event.message_id).await?;
        let mut sending = Sending::start(last_tag, &self.confirms, event.message_id);
        let mut arguments = BasicPublishArguments::new(exchange, event.routing_key);
        arguments.mandatory(true);
        self.channel
            .basic_publish(properties(&event), event.body, arguments)
            .await
            .map_err(|e| PublishError::Unavailable(e.to_string()))?;
        Ok(sending.sent())
    }

    /// Waits until no publish with this message id is in flight (so that a return can be
    /// matched to its publish) and takes the turn to send.
    async fn turn_for(&self, message_id: &str) -> Result<MutexGuard<'_, u64>, PublishError> {
        loop {
            let settled = self.confirms.settled();
            let last_tag = self.last_tag.lock().await;
            if !self.confirms.is_in_flight(message_id) {
                return Ok(last_tag);
            }
            drop(last_tag);
            tokio::time::timeout(CONFIRM_TIMEOUT, settled)
                .await
                .map_err(|_| PublishError::Timeout)?;
        }
    }
}

/// A publish between taking its delivery tag and being handed to the connection. If it is not
/// handed over (an error, or the client went away and the request was dropped), the tag is
/// given back, so that the tags of later publishes still match the broker's count.
struct Sending<'a> {
    last_tag: MutexGuard<'a, u64>,
    confirms: &'a Confirms,
    verdict: Option<oneshot::Receiver<Verdict>>,
}

impl<'a> Sending<'a> {
    fn start(mut last_tag: MutexGuard<'a, u64>, confirms: &'a Confirms, message_id: &str) -> Self {
        *last_tag += 1;
        let verdict = Some(confirms.register(*last_tag, message_id));
        Self {
            last_tag,
            confirms,
            verdict,
        }
    }

    fn sent(&mut self) -> oneshot::Receiver<Verdict> {
        self.verdict.take().expect("a publish is sent once")
    }
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        if self.verdict.is_some() {
            self.confirms.forget(*self.last_tag);
            *self.last_tag -= 1;
        }
    }
}

/// The AMQP properties of an event.
fn properties(event: &Outgoing<'_>) -> BasicProperties {
    let mut headers = FieldTable::new();
    if let (Ok(name), Ok(value)) = ("event_type".try_into(), event.routing_key.try_into()) {
        headers.insert(name, FieldValue::S(value));
    }
    let mut properties = BasicProperties::default();
    properties
        .with_delivery_mode(amqprs::DELIVERY_MODE_PERSISTENT)
        .with_content_type("application/json")
        .with_content_encoding("utf-8")
        .with_message_id(event.message_id)
        .with_headers(headers);
    if let Some(id) = event.correlation_id {
        properties.with_correlation_id(id);
    }
    properties
}

/// Hands the broker's confirms, nacks and returns on the publishing channel to [`Confirms`].
struct ConfirmListener(Arc<Confirms>);

#[async_trait::async_trait]
impl ChannelCallback for ConfirmListener {
    async fn close(
        &mut self,
        _: &Channel,
        close: CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        let why = format!("the broker closed the publishing channel: {close}");
        tracing::warn!("gateway: {why}");
        self.0.lose_all(&why);
        Ok(())
    }

    async fn cancel(&mut self, _: &Channel, _: Cancel) -> Result<(), amqprs::error::Error> {
        Ok(())
    }

    async fn flow(&mut self, _: &Channel, active: bool) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }

    async fn publish_ack(&mut self, _: &Channel, ack: Ack) {
        self.0.acked(ack.delivery_tag(), ack.mutiple());
    }

    async fn publish_nack(&mut self, _: &Channel, nack: Nack) {
        self.0.nacked(nack.delivery_tag(), nack.multiple());
    }

    async fn publish_return(
        &mut self,
        _: &Channel,
        _: Return,
        properties: BasicProperties,
        _: Vec<u8>,
    ) {
        if let Some(id) = properties.message_id() {
            self.0.returned(id);
        }
    }
}

/// A publisher bound to one exchange, shared by all requests. Given several nodes of a
/// cluster, it connects to the first that answers and, when that connection breaks, to the
/// next one (round the list).
pub struct Publisher {
    addresses: Vec<AmqpAddress>,
    next_node: AtomicUsize,
    exchange: String,
    link: RwLock<Option<Arc<Link>>>,
}

impl Publisher {
    /// A publisher that is not connected yet; call [`Publisher::keep_connected`].
    pub fn new(addresses: Vec<AmqpAddress>, exchange: &str) -> Arc<Self> {
        Arc::new(Self {
            addresses,
            next_node: AtomicUsize::new(0),
            exchange: exchange.to_string(),
            link: RwLock::new(None),
        })
    }

    /// The exchange events go to.
    pub fn exchange(&self) -> &str {
        &self.exchange
    }

    /// Connects, and reconnects whenever the connection is lost, until the process ends.
    /// Publishes in flight on a lost connection are answered at once, not at their timeout.
    pub fn keep_connected(self: &Arc<Self>) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                if !me.connected().await {
                    if me.link.read().await.as_ref().is_some_and(|l| l.stuck()) {
                        tracing::warn!(
                            "gateway: every publish on this connection has been nacked for {}s; connecting again",
                            NACKING_LIMIT.as_secs()
                        );
                    }
                    let fresh = match me.connect().await {
                        Ok(link) => Some(Arc::new(link)),
                        Err(e) => {
                            tracing::warn!("gateway: cannot connect to the broker: {e}");
                            None
                        }
                    };
                    let old = std::mem::replace(&mut *me.link.write().await, fresh);
                    if let Some(old) = old {
                        old.give_up();
                    }
                }
                tokio::time::sleep(KEEPER_PERIOD).await;
            }
        });
    }

    /// Connects to the first node that answers, starting with the one after the node of the
    /// last connection when that one broke.
    async fn connect(&self) -> Result<Link, String> {
        let start = self.next_node.load(Ordering::Relaxed);
        let mut failures = Vec::new();
        for step in 0..self.addresses.len() {
            let node = (start + step) % self.addresses.len();
            let address = &self.addresses[node];
            match self.connect_to(address).await {
                Ok(link) => {
                    self.next_node
                        .store((node + 1) % self.addresses.len(), Ordering::Relaxed);
                    tracing::info!(
                        "gateway: connected to the broker at {}:{}",
                        address.host,
                        address.port
                    );
                    return Ok(link);
                }
                Err(e) => failures.push(format!("{}:{} ({e})", address.host, address.port)),
            }
        }
        Err(failures.join(", "))
    }

    async fn connect_to(&self, address: &AmqpAddress) -> Result<Link, String> {
        if address.tls {
            return Err("amqps (TLS) is not supported by the gateway; use amqp://".to_string());
        }
        let mut arguments = OpenConnectionArguments::new(
            &address.host,
            address.port,
            &address.credentials.user,
            address.credentials.password(),
        );
        arguments
            .virtual_host(&address.vhost)
            .connection_name("god gateway");
        let open = async {
            let connection = Connection::open(&arguments).await?;
            let channel = connection.open_channel(None).await?;
            let confirms = Arc::new(Confirms::default());
            channel
                .register_callback(ConfirmListener(Arc::clone(&confirms)))
                .await?;
            channel
                .confirm_select(ConfirmSelectArguments::default())
                .await?;
            Ok::<_, amqprs::error::Error>((connection, channel, confirms))
        };
        let (connection, channel, confirms) = open.await.map_err(|e| e.to_string())?;
        watch_for_network_failure(&connection, &confirms);
        Ok(Link {
            connection,
            channel,
            confirms,
            last_tag: Mutex::new(0),
            nacking_since: std::sync::Mutex::new(None),
        })
    }

    /// Whether the connection and its channel are up.
    pub async fn connected(&self) -> bool {
        self.open_link().await.is_some()
    }

    /// Ready to publish: connected, and the exchange exists (checked with a passive declare on
    /// a channel of its own, since a failed check closes its channel).
    pub async fn ready(&self) -> bool {
        let Some(link) = self.open_link().await else {
            return false;
        };
        let Ok(channel) = link.connection.open_channel(None).await else {
            return false;
        };
        let mut arguments = ExchangeDeclareArguments::new(&self.exchange, "topic");
        arguments.passive = true;
        let check = channel.exchange_declare(arguments);
        let exists = matches!(
            tokio::time::timeout(CONFIRM_TIMEOUT, check).await,
            Ok(Ok(()))
        );
        if channel.is_open() {
            let _ = channel.close().await;
        }
        exists
    }

    /// Publishes and waits for the broker's confirm; returns how long the confirm took.
    pub async fn publish(&self, event: Outgoing<'_>) -> Result<Duration, PublishError> {
        let link = self
            .open_link()
            .await
            .ok_or_else(|| PublishError::Unavailable("not connected to the broker".to_string()))?;
        let started = Instant::now();
        let verdict = link.send(&self.exchange, event).await?;
        let verdict = tokio::time::timeout(CONFIRM_TIMEOUT, verdict).await;
        link.note(matches!(verdict, Ok(Ok(Verdict::Refused))));
        match verdict {
            Err(_) => Err(PublishError::Timeout),
            Ok(Ok(Verdict::Confirmed)) => Ok(started.elapsed()),
            Ok(Ok(Verdict::Returned)) => Err(PublishError::Unroutable),
            Ok(Ok(Verdict::Refused)) => Err(PublishError::Nacked),
            Ok(Ok(Verdict::Lost(why))) => Err(PublishError::Unavailable(why)),
            Ok(Err(_)) => Err(PublishError::Unavailable(CONNECTION_LOST.to_string())),
        }
    }

    /// The current link, if it is open.
    async fn open_link(&self) -> Option<Arc<Link>> {
        self.link.read().await.clone().filter(|l| l.is_open())
    }
}

/// Answers the publishes in flight as soon as the connection breaks.
fn watch_for_network_failure(connection: &Connection, confirms: &Arc<Confirms>) {
    let connection = connection.clone();
    let confirms = Arc::clone(confirms);
    tokio::spawn(async move {
        connection.listen_network_io_failure().await;
        confirms.lose_all(CONNECTION_LOST);
    });
}
