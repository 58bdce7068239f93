//! `god relay`: run the WebSocket relay in the foreground.

use std::net::SocketAddr;

use super::gateway::exchange;
use super::{Exit, Sources, runtime};
use crate::error::{GodError, Result};
use crate::rabbit::endpoints::BrokerEndpoints;
use crate::services::relay::history::{self, HistoryConfig};
use crate::services::relay::{Relay, RelayConfig, serve};

/// Options of `god relay`.
#[derive(Debug, Clone, clap::Args)]
pub struct RelayArgs {
    /// Address to listen on. Default: $WS_HOST:$WS_PORT (the upstream relay's names), else
    /// 127.0.0.1:8683.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Exchange to read from. Default: $EXCHANGE_NAME or $BLOODBANK_EXCHANGE (the upstream's
    /// names), else the registry's exchange, else bloodbank.events.v1.
    #[arg(long, env = "GOD_EXCHANGE", hide_env_values = true)]
    pub exchange: Option<String>,
    /// Binding key of the relay's history (or queue). Default: $ROUTING_KEY, else
    /// $RELAY_ROUTING_KEY (the upstream's names), else #.
    #[arg(long)]
    pub binding_key: Option<String>,
    /// Unacknowledged deliveries at most.
    #[arg(long, default_value_t = 200)]
    pub prefetch: u16,
    /// Frames a client may have waiting before it is dropped as too slow.
    #[arg(long, default_value_t = 1024)]
    pub client_buffer: usize,
    /// The stream that keeps the relay's history: every event with its offset, so a client
    /// that reconnects with ?since=OFFSET&epoch=EPOCH gets what it missed. Declared at start
    /// when missing.
    #[arg(long, value_name = "NAME", default_value = history::DEFAULT_STREAM, env = "GOD_RELAY_HISTORY")]
    pub history_stream: String,
    /// How long the history keeps events (RabbitMQ's x-max-age: 30m, 1h, 7D), when the relay
    /// creates the stream.
    #[arg(
        long,
        value_name = "AGE",
        default_value = history::DEFAULT_MAX_AGE,
        env = "GOD_RELAY_HISTORY_MAX_AGE"
    )]
    pub history_max_age: String,
    /// How many bytes the history keeps at most, when the relay creates the stream.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = history::DEFAULT_MAX_BYTES,
        env = "GOD_RELAY_HISTORY_MAX_BYTES"
    )]
    pub history_max_bytes: u64,
    /// No history: an exclusive queue of the relay's own, frames without positions, no resume.
    #[arg(long, env = "GOD_RELAY_NO_HISTORY")]
    pub no_history: bool,
}

impl RelayArgs {
    /// The address to listen on: --listen, else the upstream's WS_HOST and WS_PORT.
    fn listen_address(&self) -> Result<SocketAddr> {
        if let Some(listen) = self.listen {
            return Ok(listen);
        }
        let host = std::env::var("WS_HOST").unwrap_or_else(|_| "127.0.0.1".to_string());
        let port = std::env::var("WS_PORT").unwrap_or_else(|_| "8683".to_string());
        let text = match host.contains(':') {
            true => format!("[{host}]:{port}"),
            false => format!("{host}:{port}"),
        };
        text.parse().map_err(|_| {
            GodError::Usage(format!(
                "WS_HOST={host} and WS_PORT={port} do not make an address to listen on\nhint: WS_HOST is an IP address (0.0.0.0, 127.0.0.1), WS_PORT a port number"
            ))
        })
    }

    /// The binding key: --binding-key, else the upstream's ROUTING_KEY or RELAY_ROUTING_KEY.
    fn binding_key(&self) -> String {
        self.binding_key
            .clone()
            .or_else(|| std::env::var("ROUTING_KEY").ok())
            .or_else(|| std::env::var("RELAY_ROUTING_KEY").ok())
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| "#".to_string())
    }
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
        binding_key: args.binding_key(),
        prefetch: args.prefetch,
        client_buffer: args.client_buffer,
        history: (!args.no_history).then(|| HistoryConfig {
            stream: args.history_stream.clone(),
            max_age: args.history_max_age.clone(),
            max_bytes: args.history_max_bytes,
            endpoints: endpoints.clone(),
        }),
    });
    let listen = args.listen_address()?;
    runtime()?
        .block_on(serve(relay, listen))
        .map_err(|e| GodError::Other(format!("the relay cannot listen on {listen}: {e}")))?;
    Ok(Exit::Success)
}
