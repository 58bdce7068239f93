//! What `god watch` shows on `--listen`: `/metrics` (OpenMetrics: changes pending, changes
//! healed, errors, ticks, the time of the last good reconcile) and `/health` (200 while the
//! last tick could plan, 503 with the reason when it could not).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::json;

/// The watch's counters and its last tick, shared with the HTTP server.
pub struct Status {
    registry: Registry,
    pending: Gauge,
    healed: Counter,
    errors: Counter,
    ticks: Counter,
    last_good: Gauge<i64, AtomicI64>,
    plan_seconds: Gauge<f64, AtomicU64>,
    mode: &'static str,
    health: Mutex<Health>,
}

/// What `/health` says.
enum Health {
    /// No tick has ended yet.
    Starting,
    /// The last tick planned from inputs that load.
    Ok,
    /// Something needs attention: the inputs do not load, or the last tick could not plan.
    Degraded(String),
}

impl Status {
    /// Empty counters for a watch in `mode`.
    pub fn new(mode: &'static str) -> Arc<Self> {
        let pending = Gauge::default();
        let healed = Counter::default();
        let errors = Counter::default();
        let ticks = Counter::default();
        let last_good = Gauge::<i64, AtomicI64>::default();
        let plan_seconds = Gauge::<f64, AtomicU64>::default();
        let mut registry = Registry::with_prefix("god_watch");
        registry.register(
            "changes_pending",
            "Changes the last plan found and heal did not carry out",
            pending.clone(),
        );
        registry.register(
            "healed_changes",
            "Changes carried out by heal",
            healed.clone(),
        );
        registry.register(
            "errors",
            "Ticks that failed: inputs that do not load, a broker or engine away, a heal that failed",
            errors.clone(),
        );
        registry.register("ticks", "Plans made", ticks.clone());
        registry.register(
            "last_good_reconcile_timestamp_seconds",
            "When a tick last ended with nothing left to do (Unix time; 0: never)",
            last_good.clone(),
        );
        registry.register(
            "last_plan_seconds",
            "How long the last plan took: reading the inputs when they changed, observing, diffing",
            plan_seconds.clone(),
        );
        Arc::new(Self {
            registry,
            pending,
            healed,
            errors,
            ticks,
            last_good,
            plan_seconds,
            mode,
            health: Mutex::new(Health::Starting),
        })
    }

    /// The last plan took `seconds`.
    pub fn plan_took(&self, seconds: f64) {
        self.plan_seconds.set(seconds);
    }

    /// A tick planned: `pending` changes are left (after heal).
    pub fn planned(&self, pending: usize) {
        self.ticks.inc();
        self.pending.set(i64::try_from(pending).unwrap_or(i64::MAX));
        if pending == 0 {
            self.last_good.set(unix_now());
        }
    }

    /// Heal carried out `n` changes.
    pub fn healed(&self, n: usize) {
        self.healed.inc_by(n as u64);
    }

    /// An error was reported.
    pub fn error(&self) {
        self.errors.inc();
    }

    /// How the tick ended: None when all is well, else what needs attention.
    pub fn ended(&self, problem: Option<String>) {
        *self.health.lock().expect("status lock") = match problem {
            None => Health::Ok,
            Some(reason) => Health::Degraded(reason),
        };
    }

    fn health(&self) -> Response {
        let body = json!({
            "mode": self.mode,
            "changes_pending": self.pending.get(),
            "last_good_reconcile": self.last_good.get(),
        });
        let (code, status, reason) = match &*self.health.lock().expect("status lock") {
            Health::Starting => (
                StatusCode::SERVICE_UNAVAILABLE,
                "starting",
                Some("the first plan is being made".to_string()),
            ),
            Health::Ok => (StatusCode::OK, "ok", None),
            Health::Degraded(reason) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "degraded",
                Some(reason.clone()),
            ),
        };
        let mut body = body;
        body["status"] = json!(status);
        if let Some(reason) = reason {
            body["reason"] = json!(reason);
        }
        (code, axum::Json(body)).into_response()
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// The routes: `/health` and `/metrics`.
pub fn router(status: Arc<Status>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(status)
}

async fn health(State(status): State<Arc<Status>>) -> Response {
    status.health()
}

async fn metrics(State(status): State<Arc<Status>>) -> Response {
    crate::services::metrics::response(crate::services::metrics::render(&status.registry))
}

/// Binds `listen` (an error names the address) and serves the status until the process ends.
pub async fn serve(status: Arc<Status>, listen: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router(status)).await;
    });
    Ok(())
}
