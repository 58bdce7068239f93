//! `god retry`: run the mover of retry with backoff in the foreground.

use std::net::SocketAddr;

use super::{Exit, Sources, runtime};
use crate::error::{GodError, Result};
use crate::model::desired::RetryRoute;
use crate::rabbit::endpoints::BrokerEndpoints;
use crate::services::retry::mover::{Mover, ROUTES_VARIABLE, RetryConfig, serve};

/// Options of `god retry`.
#[derive(Debug, Clone, clap::Args)]
pub struct RetryArgs {
    /// Address of its health endpoint (/health).
    #[arg(long, default_value = "127.0.0.1:8686")]
    pub listen: SocketAddr,
    /// Deliveries the broker sends ahead of the one being moved (moved one at a time, each
    /// acknowledged once its copy is confirmed).
    #[arg(long, default_value_t = 50)]
    pub prefetch: u16,
}

/// Reads the routes (GOD_RETRY_ROUTES, else the registry's services with `retry`), consumes,
/// and serves until killed.
pub fn run(sources: &Sources, args: &RetryArgs) -> Result<Exit> {
    let endpoints = BrokerEndpoints::resolve(
        sources.amqp_url.as_deref(),
        sources.management_url.as_deref(),
    )?;
    let routes = routes(sources)?;
    if routes.is_empty() {
        return Err(GodError::Usage(
            "no service of the registry has `retry`: nothing to move\nhint: add e.g. `retry: [5s, 30s, 2m]` to a service, then god apply".to_string(),
        ));
    }
    let mover = Mover::new(RetryConfig {
        amqp_urls: endpoints
            .amqp_endpoints()
            .map(|e| e.secret().to_string())
            .collect(),
        routes,
        prefetch: args.prefetch,
    });
    runtime()?
        .block_on(serve(mover, args.listen))
        .map_err(|e| GodError::Other(format!("god retry cannot listen on {}: {e}", args.listen)))?;
    Ok(Exit::Success)
}

/// The routes to serve: what god gave its container, else what the registry says.
fn routes(sources: &Sources) -> Result<Vec<RetryRoute>> {
    if let Ok(text) = std::env::var(ROUTES_VARIABLE) {
        return serde_json::from_str(&text).map_err(|e| {
            GodError::Usage(format!("{ROUTES_VARIABLE} is not a list of routes: {e}"))
        });
    }
    let loaded = sources.load_registry()?;
    Ok(loaded.desired_state().retry.into_values().collect())
}
