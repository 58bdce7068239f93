//! god's bundled services run as containers (`builtin = "gateway"`, `"relay"` or `"retry"` in
//! components.toml): their image (god's own binary), how they run, where their health is, and
//! what god gives them (the broker URL it resolved, the registry's exchange and retry routes,
//! JSON logs).

use std::path::Path;

use crate::model::containers::{
    ContainerSpec, DesiredContainers, EnvSource, HealthProbe, SecretValues, masked_url,
};

/// The variable god's services read the broker URL from (clap's `env` of `--amqp-url`).
pub const BROKER_URL_VARIABLE: &str = "RABBITMQ_URL";
/// The variable naming the exchange they publish to and read from.
pub const EXCHANGE_VARIABLE: &str = "GOD_EXCHANGE";
/// The variables god sets in its bundled services' containers unless their component does.
pub const GIVEN_VARIABLES: [&str; 4] = [
    BROKER_URL_VARIABLE,
    EXCHANGE_VARIABLE,
    crate::logging::FORMAT_VARIABLE,
    crate::services::retry::mover::ROUTES_VARIABLE,
];

/// Where a gateway component's `schemas` tree is mounted in its container.
pub const SCHEMA_MOUNT: &str = "/schemas";
/// The variable the gateway reads its schema tree from (clap's `env` of `--schemas`).
pub const SCHEMA_DIR_VARIABLE: &str = "HOLYFIELDS_SCHEMA_DIR";

/// One of god's bundled services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// `god gateway`: HTTP in, confirmed publishes out.
    Gateway,
    /// `god relay`: every event to WebSocket clients.
    Relay,
    /// `god retry`: rejected messages to their next retry stage.
    Retry,
}

impl Builtin {
    /// The service a component's `builtin` names (the schema allows only these two).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "gateway" => Some(Builtin::Gateway),
            "relay" => Some(Builtin::Relay),
            "retry" => Some(Builtin::Retry),
            _ => None,
        }
    }

    /// The built-in service a container runs, if any.
    pub fn of(spec: &ContainerSpec) -> Option<Self> {
        spec.builtin.as_deref().and_then(Self::parse)
    }

    /// Its subcommand of god.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Gateway => "gateway",
            Builtin::Relay => "relay",
            Builtin::Retry => "retry",
        }
    }

    /// The upstream's port: Bloodbank's gateway 8682, its WebSocket relay 8683; the retry
    /// mover's health on the next one.
    pub fn port(self) -> u16 {
        match self {
            Builtin::Gateway => 8682,
            Builtin::Relay => 8683,
            Builtin::Retry => 8684,
        }
    }

    /// The path that answers 2xx when the service is ready.
    pub fn health_path(self) -> &'static str {
        match self {
            Builtin::Gateway => "/health/ready",
            Builtin::Relay | Builtin::Retry => "/health",
        }
    }

    /// How it runs in its image when the component gives no command: on the host's network
    /// it listens on loopback only; on a network of its own, on every interface of the
    /// container (where the other containers and the published port reach it).
    pub fn command(self, host_network: bool) -> Vec<String> {
        let address = if host_network { "127.0.0.1" } else { "0.0.0.0" };
        let listen = format!("{address}:{}", self.port());
        ["/god", self.name(), "--listen", &listen]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// Its health URL: the host and port of the component's HTTP health check, with
    /// [`Self::health_path`]; None when the component has no HTTP check.
    pub fn health_url(self, spec: &ContainerSpec) -> Option<String> {
        match spec.healthcheck.as_ref().map(|h| &h.probe) {
            Some(HealthProbe::Http(url)) => self.health_url_at(url),
            _ => None,
        }
    }

    /// Its health URL on the host and port of `base` (None when `base` is no URL).
    pub fn health_url_at(self, base: &str) -> Option<String> {
        url::Url::parse(base)
            .ok()?
            .join(self.health_path())
            .ok()
            .map(String::from)
    }
}

/// The image of god's own services: this binary, tagged with a digest of its content, so a new
/// god recreates them. The binary is read and hashed once per run, however many services use it.
pub fn image() -> String {
    use sha2::{Digest, Sha256};
    static IMAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let digest = std::env::current_exe()
                .and_then(std::fs::read)
                .map(|bytes| hex::encode(&Sha256::digest(&bytes)[..8]))
                .unwrap_or_else(|_| "unknown".to_string());
            format!("god-builtin:{digest}")
        })
        .clone()
}

/// Fills `dir` with the build context of god's image: a root filesystem holding only this
/// binary and the shared libraries it links (as `ldd` lists them), `FROM scratch`.
pub fn image_context(dir: &Path) -> std::io::Result<()> {
    let exe = std::env::current_exe()?;
    std::fs::copy(&exe, dir.join("god"))?;
    // Debug symbols are most of a development build; the image does not need them. Without
    // `strip` (binutils) the binary goes in as it is.
    let _ = std::process::Command::new("strip")
        .arg(dir.join("god"))
        .status();
    let ldd = std::process::Command::new("ldd").arg(&exe).output()?;
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = line
            .split("=>")
            .last()
            .unwrap_or(line)
            .trim()
            .split(' ')
            .next()
            .unwrap_or_default();
        if path.starts_with('/') {
            let target = dir.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(target.parent().unwrap_or(dir))?;
            std::fs::copy(path, &target)?;
        }
    }
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY . /\nENTRYPOINT []\n",
    )
}

/// Whether two containers are on a common project network (where one reaches the other by
/// its component name).
fn shares_a_network(a: &ContainerSpec, b: &ContainerSpec) -> bool {
    a.networks.keys().any(|n| b.networks.contains_key(n))
}

/// The broker URL as a container beside the broker's reaches it: god's first URL with the
/// broker's component name as host, and the container port its published port leads to
/// (5672 when the URL's port is not one it publishes). Credentials and vhost are kept.
pub fn url_inside(broker_url: &str, broker: &ContainerSpec) -> String {
    let first = broker_url.split(',').next().unwrap_or_default().trim();
    let Ok(mut url) = url::Url::parse(first) else {
        return broker_url.to_string();
    };
    let port = url
        .port_or_known_default()
        .and_then(|published| {
            broker
                .ports
                .iter()
                .find(|p| p.host_port == Some(published))
                .map(|p| p.container_port)
        })
        .unwrap_or(5672);
    if url.set_host(Some(&broker.component)).is_err() || url.set_port(Some(port)).is_err() {
        return broker_url.to_string();
    }
    url.to_string()
}

/// What the registry tells god's bundled services: its exchange, and the routes of its
/// services with `retry` (JSON), when there is a registry.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegistryFacts<'a> {
    /// The bus exchange.
    pub exchange: Option<&'a str>,
    /// The retry routes, as `god retry` reads them from `GOD_RETRY_ROUTES`.
    pub retry_routes: Option<&'a str>,
}

/// What god gives its bundled services unless their component sets it: the broker URL god
/// resolved (as a secret: the container gets it, plans and labels only its masked form), the
/// registry's exchange when known, the retry routes to the retry mover, and JSON logs. Their
/// configuration hash is computed again (a changed route recreates the mover).
pub fn give_defaults(
    desired: &mut DesiredContainers,
    registry: RegistryFacts<'_>,
    broker_url: &str,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) {
    let broker = desired.broker().cloned();
    for spec in desired
        .containers
        .iter_mut()
        .filter(|c| c.builtin.is_some())
    {
        let url = match &broker {
            Some(broker) if shares_a_network(spec, broker) => url_inside(broker_url, broker),
            _ => broker_url.to_string(),
        };
        let secrets = SecretValues {
            env,
            broker_url: Some(&url),
        };
        let mut defaults = vec![
            (
                BROKER_URL_VARIABLE,
                EnvSource::BrokerUrl {
                    broker_url: masked_url(&url).unwrap_or_default(),
                },
            ),
            (
                crate::logging::FORMAT_VARIABLE,
                EnvSource::Value("json".to_string()),
            ),
        ];
        if let Some(exchange) = registry.exchange {
            defaults.push((EXCHANGE_VARIABLE, EnvSource::Value(exchange.to_string())));
        }
        if let (Some(Builtin::Retry), Some(routes)) = (Builtin::of(spec), registry.retry_routes) {
            defaults.push((
                crate::services::retry::mover::ROUTES_VARIABLE,
                EnvSource::Value(routes.to_string()),
            ));
        }
        for (key, source) in defaults {
            spec.env.entry(key.to_string()).or_insert(source);
        }
        spec.config_hash = spec.compute_hash(&secrets);
    }
}
