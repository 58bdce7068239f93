//! `god relay`: run the WebSocket relay in the foreground.

use std::net::SocketAddr;

use super::gateway::exchange;
use super::{Exit, Sources, runtime};
use crate::error::{GodError, Result};
use crate::rabbit::endpoints::BrokerEndpoints;
use crate::services::relay::{Relay, RelayConfig, serve};

/// Options of `god relay`.
#[derive(Debug, Clone, clap::Args)]
pub struct RelayArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8683")]
    pub listen: SocketAddr,
    /// Exchange to read from. Default: $EXCHANGE_NAME or $BLOODBANK_EXCHANGE (the upstream's
    /// names), else the registry's exchange, else bloodbank.events.v1.
    #[arg(long, env = "GOD_EXCHANGE", hide_env_values = true)]
    pub exchange: Option<String>,
    /// Binding key of the relay's own queue.
    #[arg(long, default_value = "#")]
    pub binding_key: String,
    /// Unacknowledged deliveries at most.
    #[arg(long, default_value_t = 200)]
    pub prefetch: u16,
    /// Frames a client may have waiting before it is dropped as too slow.
    #[arg(long, default_value_t = 1024)]
    pub client_buffer: usize,
}

/// Resolves the exchange, consumes, and serves until killed.
pub fn run(sources: &Sources, args: &RelayArgs) -> Result<Exit> {
    let endpoints = BrokerEndpoints::resolve(
        sources.amqp_url.as_deref(),
        sources.management_url.as_deref(),
    )?;
    let relay = Relay::new(RelayConfig {
        amqp_urls: endpoints
            .amqp_endpoints()
            .map(|e| e.secret().to_string())
            .collect(),
        exchange: exchange(sources, args.exchange.as_deref())?,
        binding_key: args.binding_key.clone(),
        prefetch: args.prefetch,
        client_buffer: args.client_buffer,
    });
    runtime()?
        .block_on(serve(relay, args.listen))
        .map_err(|e| GodError::Other(format!("the relay cannot listen on {}: {e}", args.listen)))?;
    Ok(Exit::Success)
}
