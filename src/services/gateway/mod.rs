//! `god gateway`: HTTP → RabbitMQ. Clients POST events; the gateway validates them, publishes
//! them persistent and mandatory with publisher confirms, and answers 202 only once the broker
//! confirmed. Upstream-compatible routes and wire format (see the README).

pub mod confirms;
pub mod envelope;
pub mod metrics;
pub mod publisher;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::{StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use self::envelope::Schemas;
use self::metrics::Metrics;
use self::publisher::{Outgoing, PublishError, Publisher};

/// Requests larger than this are refused with 413 unless configured otherwise.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

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

/// The HTTP routes.
pub fn router(gateway: Arc<Gateway>, body_limit: usize) -> Router {
    Router::new()
        .route("/events/custom", post(post_envelope))
        .route("/events/{event_type}", post(post_payload))
        .route(
            "/events/agent/{agent}/{*action}",
            post(upstream::agent_event),
        )
        .route("/publish", post(upstream::publish_event))
        .route("/event", post(upstream::plane_webhook))
        .route(
            "/healthz",
            get(|| async { Json(json!({"ok": true, "service": "bloodbank"})) }),
        )
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(gateway)
}

/// Serves until the process ends.
pub async fn serve(
    gateway: Arc<Gateway>,
    listen: SocketAddr,
    body_limit: usize,
) -> std::io::Result<()> {
    gateway.publisher.keep_connected();
    let listener = tokio::net::TcpListener::bind(listen).await?.tap_io(|tcp| {
        // Small responses go out at once instead of waiting for the client's ACK.
        let _ = tcp.set_nodelay(true);
    });
    tracing::info!(
        "god gateway listening on http://{listen} (exchange {})",
        gateway.publisher.exchange()
    );
    axum::serve(listener, router(gateway, body_limit)).await
}

async fn ready(State(g): State<Arc<Gateway>>) -> Response {
    if g.publisher.ready().await {
        (
            StatusCode::OK,
            Json(json!({"status": "ready", "exchange": g.publisher.exchange()})),
        )
            .into_response()
    } else {
        let reason = if g.publisher.connected().await {
            "the exchange does not exist"
        } else {
            "not connected to the broker"
        };
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "reason": reason})),
        )
            .into_response()
    }
}

async fn metrics(State(g): State<Arc<Gateway>>) -> Response {
    crate::services::metrics::response(g.metrics.render())
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

/// The 202 answer: the event was confirmed by the broker.
#[derive(serde::Serialize)]
struct Accepted<'a> {
    event_id: &'a str,
    event_type: &'a str,
}

async fn post_envelope(
    State(g): State<Arc<Gateway>>,
    headers: EventHeaders,
    body: Bytes,
) -> Response {
    let envelope = match authorize(&g, &headers).and_then(|()| parse_object(&body)) {
        Ok(mut envelope) => {
            envelope::complete(&mut envelope);
            envelope
        }
        Err(refusal) => return refusal.respond(&g),
    };
    accepted(&g, publish(&g, &headers, envelope, Check::Envelope).await)
}

async fn post_payload(
    State(g): State<Arc<Gateway>>,
    Path(event_type): Path<String>,
    headers: EventHeaders,
    body: Bytes,
) -> Response {
    if let Err(refusal) = authorize(&g, &headers) {
        return refusal.respond(&g);
    }
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return invalid_json(e).respond(&g),
    };
    let source = envelope::source("webhook", "god-gateway");
    let envelope = envelope::wrap(&event_type, payload, source);
    accepted(&g, publish(&g, &headers, envelope, Check::Wrapped).await)
}

/// The 202 of god's own routes, once the broker confirmed the event.
fn accepted(g: &Gateway, published: Result<Published, Refusal>) -> Response {
    match published {
        Ok(p) => {
            let accepted = Accepted {
                event_id: &p.event_id,
                event_type: &p.event_type,
            };
            (StatusCode::ACCEPTED, Json(accepted)).into_response()
        }
        Err(refusal) => refusal.respond(g),
    }
}

fn authorize(g: &Gateway, headers: &EventHeaders) -> Result<(), Refusal> {
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

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Refusal> {
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
