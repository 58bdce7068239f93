//! The upstream gateway's other routes, with god's guarantees (2xx only once the broker
//! confirmed, 422 for an invalid event, 503 while the broker is away) and the bodies the
//! upstream's clients read:
//! - `POST /events/agent/{agent}/{action}` (hookd): routing key `agent.{agent}.{action}`, the
//!   payload checked against the schema of `agent.{action}` when the tree has one;
//! - `POST /publish` (the Postgres notify bridge): `{event_type, payload}` wrapped into an envelope;
//! - `POST /event` (Plane webhooks): `webhook.plane.<event>`, and for a new intake issue the
//!   derived `task.inbox.issue.created`; `PLANE_WEBHOOK_SECRET` is required when set (401
//!   missing, 403 wrong).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::envelope::{self, Violation};
use super::publish::{
    Check, EventHeaders, Gateway, Published, Refusal, authorize, invalid_json, publish,
};

/// The actions of the upstream's agent route (Holyfields' generated models): others are
/// accepted only when the schema tree has an `agent.<action>` schema.
pub const AGENT_ACTIONS: [&str; 12] = [
    "message.received",
    "message.sent",
    "tool.invoked",
    "tool.completed",
    "subagent.spawned",
    "subagent.completed",
    "session.started",
    "session.ended",
    "task.assigned",
    "task.completed",
    "heartbeat",
    "error",
];

/// The upstream's error body (FastAPI's `{"detail": ...}`), counted under `reason`.
fn detail(status: StatusCode, reason: &'static str, text: String) -> Refusal {
    Refusal::new(status, reason, json!({"detail": text}))
}

/// `POST /events/agent/{agent}/{action}`.
pub(crate) async fn agent_event(
    State(g): State<Arc<Gateway>>,
    Path((agent, action)): Path<(String, String)>,
    headers: EventHeaders,
    body: Bytes,
) -> Response {
    match agent_envelope(&g, &headers, &agent, &action, &body) {
        Ok(envelope) => match publish(&g, &headers, envelope, Check::Done).await {
            Ok(p) => Json(json!({"ok": true, "routing_key": p.event_type, "event_id": p.event_id}))
                .into_response(),
            Err(refusal) => refusal.respond(&g),
        },
        Err(refusal) => refusal.respond(&g),
    }
}

fn agent_envelope(
    g: &Gateway,
    headers: &EventHeaders,
    agent: &str,
    action: &str,
    body: &[u8],
) -> Result<Map<String, Value>, Refusal> {
    authorize(g, headers)?;
    let schema_type = format!("agent.{action}");
    if !AGENT_ACTIONS.contains(&action) && !g.schemas.has_schema(&schema_type) {
        let mut valid: Vec<&str> = AGENT_ACTIONS.to_vec();
        valid.sort_unstable();
        return Err(detail(
            StatusCode::BAD_REQUEST,
            "unknown_action",
            format!("Unknown agent action: {action}. Valid actions: {valid:?}"),
        ));
    }
    let payload: Value = serde_json::from_slice(body).map_err(|_| {
        detail(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "Invalid JSON body".into(),
        )
    })?;
    let routing_key = format!("agent.{agent}.{action}");
    let envelope = envelope::wrap(&routing_key, payload, envelope::source("agent", "openclaw"));
    let mut violations: Vec<Violation> = g
        .schemas
        .envelope_violations(&Value::Object(envelope.clone()));
    if let Some(more) = g
        .schemas
        .payload_against(&schema_type, &envelope["payload"])
    {
        violations.extend(more);
    }
    if violations.is_empty() {
        return Ok(envelope);
    }
    Err(Refusal::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "schema",
        json!({"detail": format!("Payload validation failed: {} problem(s)", violations.len()), "errors": violations}),
    ))
}

/// `POST /publish`: `{"event_type": "...", "payload": {...}}`.
pub(crate) async fn publish_event(
    State(g): State<Arc<Gateway>>,
    headers: EventHeaders,
    body: Bytes,
) -> Response {
    let envelope = match bridge_envelope(&body) {
        Ok(envelope) => envelope,
        Err(refusal) => return refusal.respond(&g),
    };
    match publish(&g, &headers, envelope, Check::Wrapped).await {
        Ok(p) => {
            Json(json!({"status": "published", "event_id": p.event_id, "event_type": p.event_type}))
                .into_response()
        }
        Err(refusal) => refusal.respond(&g),
    }
}

fn bridge_envelope(body: &[u8]) -> Result<Map<String, Value>, Refusal> {
    let data: Value = serde_json::from_slice(body).map_err(invalid_json)?;
    let Some(data) = data.as_object() else {
        return Err(detail(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "The body must be a JSON object".into(),
        ));
    };
    let event_type = data
        .get("event_type")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            detail(
                StatusCode::BAD_REQUEST,
                "missing_event_type",
                "Missing event_type".into(),
            )
        })?;
    let payload = data.get("payload").cloned().unwrap_or_else(|| json!({}));
    let source = envelope::source("hook", "postgres-notify-bridge");
    Ok(envelope::wrap(event_type, payload, source))
}

/// `POST /event`: a Plane webhook.
pub(crate) async fn plane_webhook(
    State(g): State<Arc<Gateway>>,
    Query(query): Query<HashMap<String, String>>,
    raw_headers: HeaderMap,
    headers: EventHeaders,
    body: Bytes,
) -> Response {
    if let Err(refusal) = check_secret(&g, &query, &raw_headers) {
        return refusal.respond(&g);
    }
    let body: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&body)}));
    let header = |name: &str| raw_headers.get(name).and_then(|v| v.to_str().ok());
    let header_event = header("x-plane-event")
        .or_else(|| header("x-event-type"))
        .or_else(|| header("x-webhook-event"));
    let body_event = ["event", "type", "action"]
        .iter()
        .find_map(|k| body.get(*k).filter(|v| !v.is_null()))
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string));
    let event = header_event.map(str::to_string).or(body_event);
    let suffix = normalize_event_key(event.as_deref().unwrap_or("unknown"));
    let routing_key = match suffix.is_empty() {
        true => "webhook.plane".to_string(),
        false => format!("webhook.plane.{suffix}"),
    };
    let source = envelope::source("hook", "plane-webhook");
    let payload = json!({"provider": "plane", "event": event, "path": "/event", "body": body});
    let published = match publish(
        &g,
        &headers,
        envelope::wrap(&routing_key, payload, source.clone()),
        Check::Wrapped,
    )
    .await
    {
        Ok(p) => p,
        Err(refusal) => return refusal.respond(&g),
    };
    let intake = intake_issue(&body, g.plane_intake_project.as_deref());
    let derived = match intake {
        Some(issue) => {
            let payload = json!({"provider": "plane", "source_event": routing_key, "issue": issue});
            let envelope = envelope::wrap("task.inbox.issue.created", payload, source);
            match publish(&g, &headers, envelope, Check::Wrapped).await {
                Ok(p) => Some(p),
                Err(refusal) => return refusal.respond(&g),
            }
        }
        None => None,
    };
    plane_answer(&published, derived.as_ref())
}

fn plane_answer(published: &Published, derived: Option<&Published>) -> Response {
    Json(json!({
        "ok": true,
        "event_type": published.event_type,
        "event_id": published.event_id,
        "derived_event_type": derived.map(|d| d.event_type.as_str()),
        "derived_event_id": derived.map(|d| d.event_id.as_str()),
    }))
    .into_response()
}

/// The webhook secret, from `?secret=`, `?key=`, `x-webhook-secret`,
/// `x-plane-webhook-secret` or `Authorization: Bearer`, as upstream reads it.
fn check_secret(
    g: &Gateway,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<(), Refusal> {
    let Some(expected) = &g.plane_secret else {
        return Ok(());
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let provided = query
        .get("secret")
        .or_else(|| query.get("key"))
        .map(String::as_str)
        .or_else(|| header("x-webhook-secret"))
        .or_else(|| header("x-plane-webhook-secret"))
        .or_else(|| {
            let auth = header("authorization")?;
            auth.get(..7)
                .filter(|p| p.eq_ignore_ascii_case("bearer "))
                .map(|_| auth[7..].trim())
        });
    match provided {
        None => Err(detail(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Missing webhook secret".into(),
        )),
        Some(given) if given != expected => Err(detail(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Invalid webhook secret".into(),
        )),
        Some(_) => Ok(()),
    }
}

/// A provider's event name as a routing-key word, as upstream makes it.
pub fn normalize_event_key(value: &str) -> String {
    let mut key = String::new();
    for c in value.trim().to_lowercase().chars() {
        let keep = c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        match keep {
            true => key.push(c),
            false if !key.ends_with('.') => key.push('.'),
            false => {}
        }
    }
    let mut collapsed = String::new();
    for c in key.chars() {
        if !(c == '.' && collapsed.ends_with('.')) {
            collapsed.push(c);
        }
    }
    collapsed.trim_matches('.').to_string()
}

/// The intake issue of a Plane `issue`/`create` webhook (of the intake project, when one is
/// set), shaped as upstream derives it.
pub fn intake_issue(body: &Value, intake_project: Option<&str>) -> Option<Value> {
    let text = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_lowercase()
    };
    let action = body.get("action").or_else(|| body.get("type"));
    if text(body.get("event")) != "issue" || text(action) != "create" {
        return None;
    }
    let issue = body.get("data")?.as_object()?;
    let project = match issue.get("project") {
        Some(Value::Object(p)) => p.get("id"),
        other => other,
    };
    let plain = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let project_id = plain(project);
    if intake_project.is_some_and(|p| p != project_id) {
        return None;
    }
    let issue_id = plain(issue.get("id"));
    if issue_id.is_empty() {
        return None;
    }
    let issue_ref = match (
        issue.get("identifier").filter(|v| !v.is_null()),
        issue.get("sequence_id").filter(|v| !v.is_null()),
    ) {
        (Some(identifier), _) => plain(Some(identifier)),
        (None, Some(sequence)) => format!("INTAKE-{}", plain(Some(sequence))),
        (None, None) => issue_id.clone(),
    };
    let state = issue
        .get("state_detail")
        .and_then(|s| s.get("name").or_else(|| s.get("slug")))
        .map(|v| plain(Some(v)))
        .unwrap_or_default();
    let title = plain(issue.get("name"));
    Some(json!({
        "issue_id": issue_id,
        "issue_ref": issue_ref,
        "title": if title.is_empty() { "(untitled)".to_string() } else { title },
        "url": plain(issue.get("url").or_else(|| issue.get("issue_url"))),
        "created_at": plain(issue.get("created_at")),
        "state": state,
        "project_id": project_id,
        "workspace_id": plain(body.get("workspace_id")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_event_names_become_routing_key_words_as_upstream_makes_them() {
        for (name, key) in [
            ("issue", "issue"),
            ("Issue Comment", "issue.comment"),
            ("  cycle/updated!! ", "cycle.updated"),
            ("a..b", "a.b"),
            ("..", ""),
            ("work_item-created", "work_item-created"),
        ] {
            assert_eq!(normalize_event_key(name), key, "{name:?}");
        }
    }

    #[test]
    fn only_a_new_issue_of_the_intake_project_is_derived() {
        let body = json!({"event": "issue", "action": "create", "workspace_id": "w",
            "data": {"id": "i1", "project": {"id": "p1"}, "sequence_id": 7, "name": "Fix it",
                     "state_detail": {"name": "Triage"}}});
        let issue = intake_issue(&body, None).unwrap();
        assert_eq!(issue["issue_ref"], "INTAKE-7");
        assert_eq!(issue["state"], "Triage");
        assert_eq!(issue["project_id"], "p1");
        assert!(intake_issue(&body, Some("p2")).is_none());
        let update = json!({"event": "issue", "action": "update", "data": {"id": "i1"}});
        assert!(intake_issue(&update, None).is_none());
    }
}
