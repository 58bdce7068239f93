//! `god relay`: run the WebSocket relay in the foreground.

use std::net::SocketAddr;

use super::gateway::exchange;
use super::{Exit, Globals, runtime};
use crate::endpoints::BrokerEndpoints;
use crate::error::{GodError, Result};
use crate::relay::{Relay, RelayConfig, serve};

/// Options of `god relay`.
#[derive(Debug, Clone)]
pub struct RelayArgs {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Exchange to read from (default: the registry's).
    pub exchange: Option<String>,
    /// Binding key of the relay's queue.
    pub binding_key: String,
    /// Prefetch of the relay's consumer.
    pub prefetch: u16,
    /// Frames a client may have waiting before it is dropped.
    pub client_buffer: usize,
}

/// Resolves the exchange, consumes, and serves until killed.
pub fn run(globals: &Globals, args: &RelayArgs) -> Result<Exit> {
    let endpoints = BrokerEndpoints::resolve(
        globals.amqp_url.as_deref(),
        globals.management_url.as_deref(),
    )?;
    let relay = Relay::new(RelayConfig {
        amqp_url: endpoints.amqp_url_secret().to_string(),
        exchange: exchange(globals, args.exchange.as_deref())?,
        binding_key: args.binding_key.clone(),
        prefetch: args.prefetch,
        client_buffer: args.client_buffer,
    });
    runtime()?
        .block_on(serve(relay, args.listen))
        .map_err(|e| GodError::Other(format!("the relay cannot listen on {}: {e}", args.listen)))?;
    Ok(Exit::Success)
}
