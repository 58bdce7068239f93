//! What the gateway's event routes share: its state ([`Gateway`]), the headers they read, and
//! checking an event against its schemas and publishing it with the broker's confirm before
//! anything is answered ([`publish`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::{StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::envelope::{self, Schemas};
use super::metrics::Metrics;
use super::publisher::{Outgoing, PublishError, Publisher};

/// Room reserved for an envelope's JSON, enough for a typical event without regrowing.
const SERIALISED_ENVELOPE_GUESS: usize = 1024;

/// What the handlers share.
pub struct Gateway {
    /// The confirming publisher.
    pub publisher: Arc<Publisher>,
    /// Envelope and payload schemas.
    pub schemas: Schemas,
    /// Counters.
    pub metrics: Metrics,
    /// Bearer token required on /events/* when set.
    pub token: Option<String>,
    /// The Plane webhooks' secret (`PLANE_WEBHOOK_SECRET`), required on `POST /event` when set.
    pub plane_secret: Option<String>,
    /// The Plane project whose new issues become `task.inbox.issue.created`
    /// (`PLANE_INTAKE_PROJECT_ID`; every project's when unset).
    pub plane_intake_project: Option<String>,
}

/// The request headers the event routes read, taken without copying the whole header map.
pub(crate) struct EventHeaders {
    bearer: Option<String>,
    correlation_id: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for EventHeaders {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let text = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
        Ok(Self {
            bearer: text(header::AUTHORIZATION.as_str())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_string),
            correlation_id: text("x-correlation-id").map(str::to_string),
        })
    }
}

pub(crate) fn authorize(g: &Gateway, headers: &EventHeaders) -> Result<(), Refusal> {
    let Some(token) = &g.token else { return Ok(()) };
    if headers.bearer.as_deref() == Some(token.as_str()) {
        Ok(())
    } else {
        Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            json!({"error": "a bearer token is required (Authorization: Bearer TOKEN)"}),
        ))
    }
}

pub(crate) fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Refusal> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "schema",
            json!({"error": "the envelope must be a JSON object", "errors": [{"pointer": "", "message": "not an object"}]}),
        )),
        Err(e) => Err(invalid_json(e)),
    }
}

pub(crate) fn invalid_json(e: serde_json::Error) -> Refusal {
    Refusal::new(
        StatusCode::BAD_REQUEST,
        "invalid_json",
        json!({"error": "invalid JSON", "detail": e.to_string()}),
    )
}

/// How an event is checked before it is published (see [`envelope::Posted`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Check {
    /// The client posted the whole envelope.
    Envelope,
    /// The gateway wrapped the client's payload.
    Wrapped,
    /// Checked already by the route (the upstream's agent route, against its action's schema).
    Done,
}

/// An event the broker confirmed.
pub(crate) struct Published {
    pub(crate) event_id: String,
    pub(crate) event_type: String,
}

/// Checks an event and publishes it, waiting for the broker's confirm: 422 for an event that
/// violates its schemas or that no queue takes, 503 (with Retry-After) while the broker does
/// not confirm.
pub(crate) async fn publish(
    g: &Gateway,
    headers: &EventHeaders,
    mut envelope: Map<String, Value>,
    check: Check,
) -> Result<Published, Refusal> {
    if let (Some(id), Some(Value::Array(ids))) = (
        headers.correlation_id.as_deref(),
        envelope.get_mut("correlation_ids"),
    ) && !ids.iter().any(|v| v == id)
    {
        ids.push(json!(id));
    }
    let envelope = Value::Object(envelope);
    let violations = match check {
        Check::Envelope => g.schemas.violations(envelope::Posted::Envelope(&envelope)),
        Check::Wrapped => g.schemas.violations(envelope::Posted::Wrapped(&envelope)),
        Check::Done => Vec::new(),
    };
    if !violations.is_empty() {
        return Err(Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "schema",
            json!({"error": "the event does not match its schema", "errors": violations}),
        ));
    }
    let event_id = envelope["event_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let event_type = envelope["event_type"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let correlation = envelope["correlation_ids"]
        .get(0)
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut body = Vec::with_capacity(SERIALISED_ENVELOPE_GUESS);
    serde_json::to_writer(&mut body, &envelope).expect("envelopes serialise");
    g.metrics.in_flight(1);
    let result = g
        .publisher
        .publish(Outgoing {
            routing_key: &event_type,
            body,
            message_id: &event_id,
            correlation_id: correlation.as_deref(),
        })
        .await;
    g.metrics.in_flight(-1);
    match result {
        Ok(latency) => {
            g.metrics.published(latency);
            Ok(Published {
                event_id,
                event_type,
            })
        }
        Err(PublishError::Unroutable) => Err(Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unroutable",
            json!({"error": "unroutable: no queue is bound for this event type", "event_type": event_type, "event_id": event_id}),
        )),
        Err(e) => {
            let reason = match e {
                PublishError::Timeout => "confirm_timeout",
                PublishError::Nacked => "nacked",
                _ => "unavailable",
            };
            let mut refusal = Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                reason,
                json!({"error": "the broker did not confirm the event; it was not published", "detail": format!("{e:?}")}),
            );
            refusal.retry_after = true;
            Err(refusal)
        }
    }
}

/// A request refused: its status, the reason counted in the metrics, and the body.
pub(crate) struct Refusal {
    status: StatusCode,
    reason: &'static str,
    body: Value,
    /// The broker is away: the client may try again in a second.
    retry_after: bool,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, reason: &'static str, body: Value) -> Self {
        Self {
            status,
            reason,
            body,
            retry_after: false,
        }
    }

    pub(crate) fn respond(self, g: &Gateway) -> Response {
        g.metrics.rejected(self.reason);
        let mut response = (self.status, Json(self.body)).into_response();
        if self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}
