//! `god watch`: plan continuously, report drift, heal what is safe (see
//! [`crate::services::watch`]).

use std::net::SocketAddr;
use std::time::Duration;

use super::{Exit, Sources, runtime, seconds};
use crate::error::Result;
use crate::model::duration::parse_millis;
use crate::plan::diff::PlanOptions;
use crate::services::watch::{Mode, WatchConfig, run as run_watch};

/// Options of `god watch`.
#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    /// Time between plans (`30s`, `2m`); an edit of registry.yaml, topology/ or
    /// components.toml plans at once.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = interval, env = "GOD_WATCH_INTERVAL")]
    pub interval: Duration,
    /// warn: report drift, change nothing. heal: also create what is missing, restore
    /// bindings and policies, start or restart containers that are stopped or unhealthy;
    /// never delete, replace or migrate unless the matching flag is given.
    #[arg(long, value_enum, default_value = "warn", env = "GOD_WATCH_MODE")]
    pub mode: Mode,
    /// Serve /health and /metrics (Prometheus) on this address, e.g. 127.0.0.1:8685.
    #[arg(long, value_name = "ADDR", env = "GOD_WATCH_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Heal may delete objects god created that the registry no longer wants (as apply --prune).
    #[arg(long)]
    pub prune: bool,
    /// Heal may replace or delete queues that hold messages (as apply --allow-data-loss).
    #[arg(long)]
    pub allow_data_loss: bool,
    /// Heal may replace queues that hold messages by moving them (as apply --migrate).
    #[arg(long)]
    pub migrate: bool,
    /// Seconds a heal waits for another apply (or watch) on the same vhost or project.
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = seconds)]
    pub lock_timeout: Duration,
}

/// `30s`, `2m`, `1h`: at least one second.
fn interval(text: &str) -> std::result::Result<Duration, String> {
    let millis = parse_millis(text)?;
    if millis < 1000 {
        return Err(format!("{text:?} is shorter than a second"));
    }
    Ok(Duration::from_millis(millis))
}

/// Watches until SIGTERM or Ctrl-C.
pub fn run(sources: &Sources, args: &WatchArgs) -> Result<Exit> {
    let config = WatchConfig {
        sources: sources.clone(),
        interval: args.interval,
        mode: args.mode,
        options: PlanOptions {
            prune: args.prune,
            allow_data_loss: args.allow_data_loss,
            migrate: args.migrate,
        },
        lock_timeout: args.lock_timeout,
        listen: args.listen,
    };
    runtime()?.block_on(run_watch(config))?;
    Ok(Exit::Success)
}
