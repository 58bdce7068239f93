//! Drift events ([`DriftEvent`]): what `god watch` found, healed or failed at, written as one
//! JSON line on stdout and published to the registry's exchange as a Bloodbank envelope
//! (`god.drift.detected`, `god.drift.healed`, `god.drift.failed`), with confirms.

use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use serde::Serialize;
use serde_json::Value;

use crate::apply::Outcome;
use crate::error::{GodError, Result};
use crate::plan::{Action, Change, ResourceKind};
use crate::rabbit::amqp::AmqpSession;
use crate::rabbit::endpoints::BrokerEndpoints;
use crate::services::gateway::envelope;

/// The routing key (and envelope `event_type`) of a drift found.
pub const DETECTED: &str = "god.drift.detected";
/// … of changes healed.
pub const HEALED: &str = "god.drift.healed";
/// … of a failure: a heal that failed, inputs that do not load, a broker or engine away.
pub const FAILED: &str = "god.drift.failed";

/// One drift event.
#[derive(Debug, Clone, Serialize)]
pub struct DriftEvent {
    /// `god.drift.detected`, `god.drift.healed` or `god.drift.failed`.
    pub event: &'static str,
    /// When, RFC 3339 UTC.
    pub time: String,
    /// `warn` or `heal`.
    pub mode: &'static str,
    /// The vhost watched (None: containers only).
    pub vhost: Option<String>,
    /// The container project watched (None: the broker only).
    pub project: Option<String>,
    /// The changes it is about, with their ids and causes.
    pub changes: Vec<ChangeReport>,
    /// What went wrong (failed events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One change of a drift event.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeReport {
    /// The plan's change id (`queue/orders.q`, `container/main-relay`).
    pub id: String,
    /// What apply would do (or heal did).
    pub action: Action,
    /// The kind of object.
    pub kind: ResourceKind,
    /// Why, as the plan says it.
    pub cause: String,
    /// Why heal leaves it alone (heal mode), and the flag that would allow it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withheld: Option<&'static str>,
    /// Why carrying it out failed (failed events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ChangeReport {
    /// A change as reported.
    pub fn of(change: &Change) -> Self {
        Self {
            id: change.id.clone(),
            action: change.action,
            kind: change.kind,
            cause: change.cause.clone(),
            withheld: None,
            error: None,
        }
    }

    /// A change heal tried, with its failure.
    pub fn failed(change: &Change, outcome: &Outcome) -> Self {
        let error = match outcome {
            Outcome::Refused(d) | Outcome::Failed(d) | Outcome::Unknown(d) => d.clone(),
            Outcome::NotAttempted => "not attempted: an earlier change failed".to_string(),
            Outcome::Done => String::new(),
        };
        Self {
            error: Some(error),
            ..Self::of(change)
        }
    }
}

/// Where the events are about: the mode, vhost and project of the watch.
#[derive(Debug, Clone)]
pub struct Scope {
    /// `warn` or `heal`.
    pub mode: &'static str,
    /// The vhost watched.
    pub vhost: Option<String>,
    /// The container project watched.
    pub project: Option<String>,
}

impl Scope {
    /// An event of this scope.
    pub fn event(
        &self,
        event: &'static str,
        changes: Vec<ChangeReport>,
        error: Option<String>,
    ) -> DriftEvent {
        DriftEvent {
            event,
            time: now(),
            mode: self.mode,
            vhost: self.vhost.clone(),
            project: self.project.clone(),
            changes,
            error,
        }
    }
}

impl DriftEvent {
    /// The JSON line written on stdout.
    pub fn line(&self) -> String {
        serde_json::to_string(self).expect("drift events serialise")
    }

    /// The Bloodbank envelope published on the bus: the event is its payload.
    pub fn envelope(&self) -> Value {
        let payload = serde_json::to_value(self).expect("drift events serialise");
        Value::Object(envelope::wrap(
            self.event,
            payload,
            envelope::source("god-watch", "god watch"),
        ))
    }
}

/// Publishes `events` to `exchange` with confirms, on a connection of their own (watch holds
/// no connection between ticks).
pub async fn publish(
    endpoints: &BrokerEndpoints,
    exchange: &str,
    events: &[DriftEvent],
) -> Result<()> {
    let session = AmqpSession::connect(endpoints, "watch").await?;
    let published = publish_on(&session, exchange, events).await;
    session.close().await;
    published
}

async fn publish_on(session: &AmqpSession, exchange: &str, events: &[DriftEvent]) -> Result<()> {
    let channel = session.channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| session.error(e, "turning on publisher confirms"))?;
    let operation = format!("publishing drift events to exchange {exchange}");
    for event in events {
        let envelope = event.envelope();
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(envelope["event_id"].as_str().unwrap_or_default().into())
            .with_type(event.event.into());
        let body = serde_json::to_vec(&envelope).expect("envelopes serialise");
        let confirm = channel
            .basic_publish(
                exchange.into(),
                event.event.into(),
                BasicPublishOptions::default(),
                &body,
                properties,
            )
            .await
            .map_err(|e| session.error(e, &operation))?
            .await
            .map_err(|e| session.error(e, &operation))?;
        if !confirm.is_ack() {
            return Err(GodError::Other(format!(
                "the broker refused a drift event ({}) on exchange {exchange}",
                event.event
            )));
        }
    }
    Ok(())
}

/// Now, RFC 3339 UTC.
fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
