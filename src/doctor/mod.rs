//! `god doctor`: the health audit, one module per area: [`broker`], [`topology`], [`flow`],
//! [`services`], [`config`]. Each gathers its facts (every network operation with a time
//! limit) and turns them into checks with pure functions; [`audit`] runs the areas
//! concurrently; [`render`] prints the report as a table or JSON.

pub mod broker;
pub mod check;
pub mod cluster;
pub mod config;
pub mod flow;
pub mod rabbitmq4;
pub mod render;
pub mod services;
pub mod stack;
pub mod topology;

use std::time::Duration;

use crate::services::builtin::Builtin;

pub use check::{Area, Check, Report, Verdict};
pub use flow::Thresholds;

/// What the live checks are given besides the inputs (`god doctor`'s options).
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Seconds each network operation may take before its check fails.
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = check_timeout)]
    pub timeout: Duration,
    /// Flow limits.
    #[command(flatten)]
    pub thresholds: Thresholds,
    /// The gateway's base URL. Default: from its component in components.toml.
    #[arg(long, value_name = "URL")]
    pub gateway_url: Option<String>,
    /// The relay's base URL. Default: from its component in components.toml.
    #[arg(long, value_name = "URL")]
    pub relay_url: Option<String>,
}

/// A check timeout: a number of seconds, at least 0.1.
fn check_timeout(text: &str) -> Result<Duration, String> {
    crate::commands::seconds(text).map(|d| d.max(Duration::from_millis(100)))
}

/// Runs the live checks of every area concurrently: the broker (with topology and flow), the
/// bundled services, the containers and the registry's health endpoints.
pub async fn audit(inputs: &config::Inputs, options: &Options) -> Vec<Check> {
    let limit = options.timeout;
    let desired = inputs.desired.as_ref();
    let builtin = |kind: Builtin| {
        inputs
            .containers
            .iter()
            .flat_map(|d| &d.containers)
            .find(|c| Builtin::of(c) == Some(kind))
    };
    let gateway_url = services::bundled_url(
        options.gateway_url.as_deref(),
        builtin(Builtin::Gateway),
        Builtin::Gateway,
    );
    let relay_url = services::bundled_url(
        options.relay_url.as_deref(),
        builtin(Builtin::Relay),
        Builtin::Relay,
    );
    let broker = async {
        match &inputs.endpoints {
            Ok(endpoints) => {
                let target = broker::Target {
                    endpoints,
                    desired,
                    thresholds: options.thresholds,
                    relay_expected: builtin(Builtin::Relay).is_some()
                        || options.relay_url.is_some(),
                    timeout: limit,
                };
                broker::checks(&target).await
            }
            Err(e) => vec![Check::new(
                "broker.management",
                Area::Broker,
                Verdict::Fail,
                e.to_string(),
            )],
        }
    };
    let retry_url = services::bundled_url(None, builtin(Builtin::Retry), Builtin::Retry);
    let watch_url = services::bundled_url(None, builtin(Builtin::Watch), Builtin::Watch);
    let watch = async {
        match watch_url {
            Some(url) => Some(services::bundled(Builtin::Watch, Some(url), limit).await),
            None => None,
        }
    };
    let retry_expected = desired.is_some_and(|d| !d.retry.is_empty());
    let (mut checks, gateway, relay, retry, watch, containers, endpoint_check, shared) = tokio::join!(
        broker,
        services::bundled(Builtin::Gateway, gateway_url, limit),
        services::bundled(Builtin::Relay, relay_url, limit),
        services::retry_mover(retry_expected, retry_url, limit),
        watch,
        services::containers(inputs.containers.as_ref(), limit),
        services::endpoints(desired, limit),
        stack::checks(inputs.containers.as_ref(), limit),
    );
    checks.extend([gateway, relay]);
    checks.extend(retry);
    checks.extend(watch);
    checks.extend([containers, endpoint_check]);
    checks.extend(shared);
    checks
}
