//! `god gateway`: run the HTTP event gateway in the foreground.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Exit, Sources, runtime};
use crate::error::{GodError, Result};
use crate::rabbit::endpoints::BrokerEndpoints;
use crate::services::gateway::envelope::Schemas;
use crate::services::gateway::metrics::Metrics;
use crate::services::gateway::publisher::Publisher;
use crate::services::gateway::{Gateway, serve};

/// The exchange used when neither `--exchange` nor a registry names one.
pub const DEFAULT_EXCHANGE: &str = "bloodbank.events.v1";

/// Options of `god gateway`.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8682")]
    pub listen: SocketAddr,
    /// Exchange to publish to. Default: $EXCHANGE_NAME or $BLOODBANK_EXCHANGE (the upstream's
    /// names), else the registry's exchange, else bloodbank.events.v1.
    #[arg(long, env = "GOD_EXCHANGE", hide_env_values = true)]
    pub exchange: Option<String>,
    /// Largest accepted request body, in bytes (larger: 413).
    #[arg(long, default_value_t = crate::services::gateway::DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,
    /// A Holyfields schema tree (`<domain>/<entity>.<action>.v<N>.schema.json`, or flat
    /// `<event_type>.json`): each event is checked against the schema of its type and version;
    /// `$ref`s resolve offline. A tree with errors stops the gateway at start.
    #[arg(long, value_name = "DIR", env = "HOLYFIELDS_SCHEMA_DIR")]
    pub schemas: Option<PathBuf>,
    /// Refuse (422) events of a type without a schema (by default they pass, as upstream).
    #[arg(long)]
    pub require_schema: bool,
}

/// The upstream's names of the exchange variable (Bloodbank's services), read in this order
/// when `GOD_EXCHANGE` is not set.
pub const UPSTREAM_EXCHANGE_VARIABLES: [&str; 2] = ["EXCHANGE_NAME", "BLOODBANK_EXCHANGE"];

/// The exchange of the bundled services: `--exchange` (or `GOD_EXCHANGE`), else the upstream's
/// `EXCHANGE_NAME` or `BLOODBANK_EXCHANGE`, else the registry's, else the default.
pub fn exchange(sources: &Sources, explicit: Option<&str>) -> Result<String> {
    let upstream = UPSTREAM_EXCHANGE_VARIABLES
        .iter()
        .find_map(|v| crate::reconcile::sources::environment(v).filter(|e| !e.is_empty()));
    match explicit.map(str::to_string).or(upstream) {
        Some(e) => Ok(e),
        None => match sources.load_registry() {
            Ok(loaded) => Ok(loaded.registry.exchange.name.clone()),
            Err(GodError::Usage(_)) if sources.registry.is_none() => {
                Ok(DEFAULT_EXCHANGE.to_string())
            }
            Err(e) => Err(e),
        },
    }
}

/// A variable of god's environment, when set and not empty.
fn set(variable: &str) -> Option<String> {
    std::env::var(variable)
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// Resolves the exchange, connects, and serves until killed.
pub fn run(sources: &Sources, args: &GatewayArgs) -> Result<Exit> {
    let exchange = exchange(sources, args.exchange.as_deref())?;
    let endpoints = BrokerEndpoints::resolve(
        sources.amqp_url.as_deref(),
        sources.management_url.as_deref(),
    )?;
    let schemas = Schemas::load(args.schemas.as_deref(), args.require_schema)
        .map_err(|e| GodError::Usage(format!("cannot load the schema tree: {e}")))?;
    if let Some(tree) = schemas.tree() {
        if tree.has_errors() {
            return Err(GodError::Invalid(tree.problems.clone()));
        }
        for warning in &tree.problems {
            eprintln!("{}", warning.render());
        }
        tracing::info!(
            "schema tree {}: {} event type(s) from {} file(s)",
            tree.root.display(),
            tree.event_types().count(),
            tree.files.len()
        );
    }
    let gateway = Arc::new(Gateway {
        publisher: Publisher::new(
            endpoints.amqp_endpoints().map(|e| e.address()).collect(),
            &exchange,
        ),
        schemas,
        metrics: Metrics::default(),
        token: set("GOD_GATEWAY_TOKEN"),
        plane_secret: set("PLANE_WEBHOOK_SECRET"),
        plane_intake_project: set("PLANE_INTAKE_PROJECT_ID"),
    });
    runtime()?
        .block_on(serve(gateway, args.listen, args.body_limit))
        .map_err(|e| {
            GodError::Other(format!("the gateway cannot listen on {}: {e}", args.listen))
        })?;
    Ok(Exit::Success)
}
