//! The confirming publisher: persistent, mandatory, with publisher confirms. An event is only
//! reported published once the broker confirmed it; a returned (unroutable) event, a nack, a
//! missing connection or a confirm that does not come in time are errors the client sees.
//! A keeper task reconnects in the background when the broker goes away.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::Confirmation;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::RwLock;

/// How long a publish waits for the broker's confirm.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

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

struct Link {
    connection: Connection,
    channel: Channel,
}

/// A publisher bound to one exchange, shared by all requests.
pub struct Publisher {
    url: String,
    exchange: String,
    link: RwLock<Option<Arc<Link>>>,
}

impl Publisher {
    /// A publisher that is not connected yet; call [`Publisher::keep_connected`].
    pub fn new(url: &str, exchange: &str) -> Arc<Self> {
        Arc::new(Self {
            url: url.to_string(),
            exchange: exchange.to_string(),
            link: RwLock::new(None),
        })
    }

    /// The exchange events go to.
    pub fn exchange(&self) -> &str {
        &self.exchange
    }

    /// Connects, and reconnects whenever the connection is lost, until the process ends.
    pub fn keep_connected(self: &Arc<Self>) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                if !me.connected().await {
                    match me.connect().await {
                        Ok(link) => *me.link.write().await = Some(Arc::new(link)),
                        Err(e) => {
                            tracing::warn!("gateway: cannot connect to the broker: {e}");
                            *me.link.write().await = None;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    async fn connect(&self) -> Result<Link, lapin::Error> {
        let properties =
            ConnectionProperties::default().with_connection_name(LongString::from("god gateway"));
        let connection = Connection::connect(&self.url, properties).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Link {
            connection,
            channel,
        })
    }

    /// Whether the connection and its channel are up.
    pub async fn connected(&self) -> bool {
        match self.link.read().await.as_ref() {
            Some(link) => link.connection.status().connected() && link.channel.status().connected(),
            None => false,
        }
    }

    /// Ready to publish: connected, and the exchange exists (checked with a passive declare on
    /// a channel of its own, since a failed check closes its channel).
    pub async fn ready(&self) -> bool {
        let Some(link) = self.link.read().await.clone() else {
            return false;
        };
        let Ok(channel) = link.connection.create_channel().await else {
            return false;
        };
        let options = ExchangeDeclareOptions {
            passive: true,
            ..ExchangeDeclareOptions::default()
        };
        let exists = channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Topic,
                options,
                FieldTable::default(),
            )
            .await
            .is_ok();
        let _ = channel.close(200, ShortString::from("checked")).await;
        exists
    }

    /// Publishes and waits for the broker's confirm; returns how long the confirm took.
    pub async fn publish(&self, event: Outgoing<'_>) -> Result<Duration, PublishError> {
        let link = self
            .link
            .read()
            .await
            .clone()
            .filter(|l| l.connection.status().connected())
            .ok_or_else(|| PublishError::Unavailable("not connected to the broker".to_string()))?;
        let mut properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type(ShortString::from("application/json"))
            .with_content_encoding(ShortString::from("utf-8"))
            .with_message_id(ShortString::from(event.message_id));
        if let Some(id) = event.correlation_id {
            properties = properties.with_correlation_id(ShortString::from(id));
        }
        let mut headers = FieldTable::default();
        headers.insert(
            ShortString::from("event_type"),
            AMQPValue::LongString(LongString::from(event.routing_key)),
        );
        properties = properties.with_headers(headers);
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let started = Instant::now();
        let confirm = link
            .channel
            .basic_publish(
                self.exchange.as_str().into(),
                event.routing_key.into(),
                options,
                &event.body,
                properties,
            )
            .await
            .map_err(|e| PublishError::Unavailable(e.to_string()))?;
        match tokio::time::timeout(CONFIRM_TIMEOUT, confirm).await {
            Err(_) => Err(PublishError::Timeout),
            Ok(Err(e)) => Err(PublishError::Unavailable(e.to_string())),
            Ok(Ok(Confirmation::Ack(None))) => Ok(started.elapsed()),
            Ok(Ok(Confirmation::Ack(Some(_)))) => Err(PublishError::Unroutable),
            Ok(Ok(Confirmation::Nack(_) | Confirmation::NotRequested)) => Err(PublishError::Nacked),
        }
    }
}
