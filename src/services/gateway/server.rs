//! The gateway's HTTP server: its routes (god's own, the upstream's in [`super::upstream`], health
//! and metrics) and serving them.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::envelope;
use super::publish::{
    Check, EventHeaders, Gateway, Published, Refusal, authorize, invalid_json, parse_object,
    publish,
};
use super::upstream;

/// Requests larger than this are refused with 413 unless configured otherwise.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

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
