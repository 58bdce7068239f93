//! AMQP connections (lapin): the apply lock and binding removal, which the definitions import
//! cannot express.

use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::{Connection, ConnectionProperties};
use serde_json::Value;

use crate::error::{GodError, Result};
use crate::model::{Arguments, BindingSpec, DestinationType};
use crate::rabbit::endpoints::{AmqpEndpoint, BrokerEndpoints, NodeList};
use crate::rabbit::management::ExportedBinding;

/// How long closing a connection may wait for the broker's close-ok.
pub const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// An open AMQP connection to the vhost of the endpoints, on the first node that answers.
pub struct AmqpSession {
    connection: Connection,
    /// The URL connected to, as it may be shown.
    endpoint: String,
}

impl AmqpSession {
    /// Connects to the first AMQP URL that answers (saying so when it is not the first),
    /// naming the connection so that operators see who holds it. A refusal of the
    /// credentials or the vhost stops at once: the other nodes would refuse them too.
    pub async fn connect(endpoints: &BrokerEndpoints, purpose: &str) -> Result<Self> {
        let candidates: Vec<AmqpEndpoint<'_>> = endpoints.amqp_endpoints().collect();
        let shown: Vec<String> = candidates.iter().map(AmqpEndpoint::display).collect();
        let nodes = NodeList {
            shown: &shown,
            service: "RabbitMQ",
            variable: "RABBITMQ_URL",
        };
        let (node, connection) = nodes
            .first_answering(0, async |node| {
                connect_to(candidates[node], &endpoints.vhost, purpose).await
            })
            .await;
        Ok(Self {
            connection: connection?,
            endpoint: shown[node].clone(),
        })
    }

    /// The URL connected to, as it may be shown.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Opens a channel.
    pub async fn channel(&self) -> Result<lapin::Channel> {
        self.connection
            .create_channel()
            .await
            .map_err(|e| self.error(e, "opening a channel"))
    }

    /// Turns a lapin error into a god error naming the operation.
    pub fn error(&self, error: lapin::Error, operation: &str) -> GodError {
        if error.is_io_error() {
            return GodError::Unreachable {
                endpoint: self.endpoint.clone(),
                reason: format!("the connection broke while {operation}"),
                variable: "RABBITMQ_URL",
            };
        }
        GodError::Broker {
            endpoint: self.endpoint.clone(),
            operation: operation.to_string(),
            detail: error.to_string(),
        }
    }

    /// Binds `queue` with each of `bindings` (`bound`), or unbinds it from them, on `channel`;
    /// a failure is reported as `operation`.
    pub async fn set_bindings(
        &self,
        channel: &lapin::Channel,
        queue: &str,
        bindings: &[ExportedBinding],
        bound: bool,
        operation: &str,
    ) -> Result<()> {
        for b in bindings {
            let (source, key) = (b.source.as_str().into(), b.routing_key.as_str().into());
            let arguments = field_table(&b.arguments);
            let done = if bound {
                channel
                    .queue_bind(queue.into(), source, key, Default::default(), arguments)
                    .await
            } else {
                channel
                    .queue_unbind(queue.into(), source, key, arguments)
                    .await
            };
            done.map_err(|e| self.error(e, operation))?;
        }
        Ok(())
    }

    /// Closes the connection politely, waiting at most [`CLOSE_TIMEOUT`] for the broker's
    /// answer: a connection whose socket is already gone must not keep god from exiting.
    pub async fn close(self) {
        let closing = self.connection.close(200, ShortString::from("bye"));
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, closing).await;
    }
}

/// Adds one binding, exactly (arguments included), to a queue or an exchange.
pub async fn bind(channel: &lapin::Channel, b: &BindingSpec) -> lapin::Result<()> {
    let (destination, source, key) = (
        b.destination.as_str().into(),
        b.source.as_str().into(),
        b.routing_key.as_str().into(),
    );
    let arguments = field_table(&b.arguments);
    match b.destination_type {
        DestinationType::Queue => {
            channel
                .queue_bind(
                    destination,
                    source,
                    key,
                    lapin::options::QueueBindOptions::default(),
                    arguments,
                )
                .await
        }
        DestinationType::Exchange => {
            channel
                .exchange_bind(
                    destination,
                    source,
                    key,
                    lapin::options::ExchangeBindOptions::default(),
                    arguments,
                )
                .await
        }
    }
}

/// Removes one binding, exactly (arguments included), to a queue or an exchange.
pub async fn unbind(channel: &lapin::Channel, b: &BindingSpec) -> lapin::Result<()> {
    let (destination, source, key) = (
        b.destination.as_str().into(),
        b.source.as_str().into(),
        b.routing_key.as_str().into(),
    );
    let arguments = field_table(&b.arguments);
    match b.destination_type {
        DestinationType::Queue => {
            channel
                .queue_unbind(destination, source, key, arguments)
                .await
        }
        DestinationType::Exchange => {
            channel
                .exchange_unbind(destination, source, key, Default::default(), arguments)
                .await
        }
    }
}

/// How god names itself to others (connection names, lock holders): `god PURPOSE (pid N on HOST)`.
pub fn process_label(purpose: &str) -> String {
    format!(
        "god {purpose} (pid {} on {})",
        std::process::id(),
        crate::host_name().unwrap_or("unknown host")
    )
}

/// The AMQP reply code inside a lapin error, if the broker sent one.
pub fn reply_code(error: &lapin::Error) -> Option<u16> {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(e) => Some(e.get_id()),
        _ => None,
    }
}

/// One connection attempt, within 15 s.
async fn connect_to(endpoint: AmqpEndpoint<'_>, vhost: &str, purpose: &str) -> Result<Connection> {
    let properties = ConnectionProperties::default()
        .with_connection_name(LongString::from(process_label(purpose)));
    let connect = Connection::connect(endpoint.secret(), properties);
    tokio::time::timeout(std::time::Duration::from_secs(15), connect)
        .await
        .map_err(|_| GodError::Unreachable {
            endpoint: endpoint.display(),
            reason: "no answer within 15s".to_string(),
            variable: "RABBITMQ_URL",
        })?
        .map_err(|e| connect_error(e, endpoint, vhost))
}

fn connect_error(error: lapin::Error, endpoint: AmqpEndpoint<'_>, vhost: &str) -> GodError {
    match reply_code(&error) {
        Some(403) => GodError::BadCredentials {
            endpoint: endpoint.display(),
            user: endpoint.user(),
            detail: "AMQP ACCESS_REFUSED".to_string(),
        },
        Some(530) => GodError::VhostMissing {
            vhost: vhost.to_string(),
            endpoint: endpoint.display(),
            user: endpoint.user(),
        },
        _ if error.is_io_error() => GodError::Unreachable {
            endpoint: endpoint.display(),
            reason: "connection refused or closed".to_string(),
            variable: "RABBITMQ_URL",
        },
        _ => GodError::Broker {
            endpoint: endpoint.display(),
            operation: "connecting".to_string(),
            detail: error.to_string(),
        },
    }
}

/// Converts JSON arguments into an AMQP field table.
pub fn field_table(arguments: &Arguments) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in arguments {
        table.insert(ShortString::from(k.as_str()), amqp_value(v));
    }
    table
}

fn amqp_value(value: &Value) -> AMQPValue {
    match value {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_str())),
        Value::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().map(amqp_value).collect::<Vec<_>>(),
        )),
        Value::Object(map) => {
            let args: Arguments = map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            AMQPValue::FieldTable(field_table(&args))
        }
    }
}
