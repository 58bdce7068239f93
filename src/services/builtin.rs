//! god's bundled services run as containers (`builtin = "gateway"`, `"relay"` or `"retry"` in
//! components.toml): their image (god's own binary), how they run, where their health is, and
//! what god gives them (the broker URL it resolved, the registry's exchange and retry routes,
//! JSON logs).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::model::containers::{
    ContainerSpec, DesiredContainers, EnvSource, HealthProbe, SecretValues, masked_url,
};

/// The variable god's services read the broker URL from (clap's `env` of `--amqp-url`).
pub const BROKER_URL_VARIABLE: &str = "RABBITMQ_URL";
/// The variable the relay (its history's epoch) and the watch read the management API from.
pub const MANAGEMENT_URL_VARIABLE: &str = "RABBITMQ_MANAGEMENT_URL";
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
    /// `god watch`: drift reported (and healed, in heal mode) continuously.
    Watch,
}

impl Builtin {
    /// The service a component's `builtin` names (the schema allows only these).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "gateway" => Some(Builtin::Gateway),
            "relay" => Some(Builtin::Relay),
            "retry" => Some(Builtin::Retry),
            "watch" => Some(Builtin::Watch),
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
            Builtin::Watch => "watch",
        }
    }

    /// The upstream's port: Bloodbank's gateway 8682, its WebSocket relay 8683; the watch's
    /// health on 8685 and the retry mover's on 8686 (8684 is the platform's candystore).
    pub fn port(self) -> u16 {
        match self {
            Builtin::Gateway => 8682,
            Builtin::Relay => 8683,
            Builtin::Retry => 8686,
            Builtin::Watch => 8685,
        }
    }

    /// The path that answers 2xx when the service is ready.
    pub fn health_path(self) -> &'static str {
        match self {
            Builtin::Gateway => "/health/ready",
            Builtin::Relay | Builtin::Retry | Builtin::Watch => "/health",
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

/// The variable naming the image of god's services to a god that runs in one (the watch
/// container: the binary inside is stripped, so its own digest is not the image's tag).
pub const IMAGE_VARIABLE: &str = "GOD_BUILTIN_IMAGE";

/// The image of god's own services: this binary, tagged with a digest of its content, so a new
/// god recreates them. The binary is read and hashed once per run, however many services use it.
pub fn image() -> String {
    use sha2::{Digest, Sha256};
    static IMAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    IMAGE
        .get_or_init(|| {
            if let Ok(image) = std::env::var(IMAGE_VARIABLE) {
                return image;
            }
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
    address_inside(broker_url, broker, 5672)
}

/// `url` (the first of a list) as a container beside the broker's reaches it: the broker's
/// component name as host, the container port its published port leads to, else
/// `default_port`.
fn address_inside(url: &str, broker: &ContainerSpec, default_port: u16) -> String {
    let first = url.split(',').next().unwrap_or_default().trim();
    let Ok(mut parsed) = url::Url::parse(first) else {
        return url.to_string();
    };
    let port = parsed
        .port_or_known_default()
        .and_then(|published| {
            broker
                .ports
                .iter()
                .find(|p| p.host_port == Some(published))
                .map(|p| p.container_port)
        })
        .unwrap_or(default_port);
    if parsed.set_host(Some(&broker.component)).is_err() || parsed.set_port(Some(port)).is_err() {
        return url.to_string();
    }
    parsed.to_string()
}

/// What god gives a watch container (`builtin = "watch"`): where its inputs are (absolute
/// paths, mounted read-only at the same paths, so relative paths in components.toml mean the
/// same inside), what it covers, and the variables components.toml reads from god's
/// environment (passed on as secrets, so the watch computes the same configuration as god).
#[derive(Debug, Clone, Default)]
pub struct WatchFacts {
    /// registry.yaml, when there is one.
    pub registry: Option<PathBuf>,
    /// components.toml.
    pub components: PathBuf,
    /// The topology folder, when one was named.
    pub topology: Option<PathBuf>,
    /// The container project.
    pub project: String,
    /// The profiles named.
    pub profiles: Vec<String>,
    /// The variables components.toml reads from god's environment.
    pub variables: BTreeSet<String>,
}

impl WatchFacts {
    /// The folders the watch container mounts read-only: those of its inputs.
    fn input_folders(&self) -> BTreeSet<PathBuf> {
        [Some(&self.components), self.registry.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .chain(self.topology.clone())
            .collect()
    }
}

/// Where the engine's socket is: DOCKER_HOST's path when it names a unix socket, else the
/// default.
fn engine_socket() -> String {
    let address = crate::observe::engine::engine_address();
    address
        .strip_prefix("unix://")
        .unwrap_or("/var/run/docker.sock")
        .to_string()
}

/// What a watch container is given: its inputs' paths, what it covers, the image of god's
/// services, and the
/// variables components.toml reads; mounts of the input folders (read-only), the engine's
/// socket and the temporary folder (where the project's apply lock is), at the paths they
/// have here, so that the watch inside computes the very configuration god computes here.
fn watch_defaults(
    spec: &mut ContainerSpec,
    facts: &WatchFacts,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Vec<(String, EnvSource)> {
    let path = |p: &Path| EnvSource::Value(p.display().to_string());
    let mut given: Vec<(String, EnvSource)> = vec![
        ("GOD_COMPONENTS".into(), path(&facts.components)),
        (
            "GOD_PROJECT".into(),
            EnvSource::Value(facts.project.clone()),
        ),
        (IMAGE_VARIABLE.into(), EnvSource::Value(spec.image.clone())),
    ];
    given.extend(
        facts
            .registry
            .as_deref()
            .map(|r| ("GOD_REGISTRY".into(), path(r))),
    );
    given.extend(
        facts
            .topology
            .as_deref()
            .map(|t| ("GOD_TOPOLOGY".into(), path(t))),
    );
    if !facts.profiles.is_empty() {
        given.push((
            "GOD_PROFILES".into(),
            EnvSource::Value(facts.profiles.join(",")),
        ));
    }
    given.extend(
        facts
            .variables
            .iter()
            .filter(|v| env(v).is_some())
            .map(|v| {
                let secret = EnvSource::Secret {
                    from_env: v.clone(),
                    shown: None,
                };
                (v.clone(), secret)
            }),
    );
    let socket = engine_socket();
    let temp = std::env::temp_dir().display().to_string();
    given.push((
        "DOCKER_HOST".into(),
        EnvSource::Value(format!("unix://{socket}")),
    ));
    given.push(("TMPDIR".into(), EnvSource::Value(temp.clone())));
    let mounts = facts
        .input_folders()
        .into_iter()
        .map(|f| format!("{0}:{0}:ro", f.display()))
        .chain([format!("{socket}:{socket}"), format!("{temp}:{temp}")]);
    for mount in mounts {
        if !spec.volumes.contains(&mount) {
            spec.volumes.push(mount);
        }
    }
    given
}

/// What the registry tells god's bundled services: its exchange, and the routes of its
/// services with `retry` (JSON), when there is a registry.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegistryFacts<'a> {
    /// The bus exchange.
    pub exchange: Option<&'a str>,
    /// The retry routes, as `god retry` reads them from `GOD_RETRY_ROUTES`.
    pub retry_routes: Option<&'a str>,
    /// What a watch container is given.
    pub watch: Option<&'a WatchFacts>,
    /// The management API god talks to (comma-separated nodes).
    pub management_url: &'a str,
}

/// Moves a watch container that nothing depends on to the end of the start order: it starts
/// once the rest of the project is up, so its first plan sees the project converged rather
/// than half-way through the apply that starts it.
fn start_watch_last(desired: &mut DesiredContainers) {
    let depended_on: BTreeSet<String> = desired
        .containers
        .iter()
        .flat_map(|c| c.depends_on.iter().cloned())
        .collect();
    let last = |c: &ContainerSpec| {
        Builtin::of(c) == Some(Builtin::Watch) && !depended_on.contains(&c.component)
    };
    let (watches, others): (Vec<_>, Vec<_>) = std::mem::take(&mut desired.containers)
        .into_iter()
        .partition(last);
    desired.containers = others;
    desired.containers.extend(watches);
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
    start_watch_last(desired);
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
        let mut defaults: Vec<(String, EnvSource)> = vec![
            (
                BROKER_URL_VARIABLE.into(),
                EnvSource::BrokerUrl {
                    broker_url: masked_url(&url).unwrap_or_default(),
                },
            ),
            (
                crate::logging::FORMAT_VARIABLE.into(),
                EnvSource::Value("json".to_string()),
            ),
        ];
        if let Some(exchange) = registry.exchange {
            defaults.push((
                EXCHANGE_VARIABLE.into(),
                EnvSource::Value(exchange.to_string()),
            ));
        }
        if matches!(Builtin::of(spec), Some(Builtin::Relay | Builtin::Watch)) {
            let management = match &broker {
                Some(broker) if shares_a_network(spec, broker) => {
                    address_inside(registry.management_url, broker, 15672)
                }
                _ => registry.management_url.to_string(),
            };
            defaults.push((MANAGEMENT_URL_VARIABLE.into(), EnvSource::Value(management)));
        }
        match (Builtin::of(spec), registry.retry_routes, registry.watch) {
            (Some(Builtin::Retry), Some(routes), _) => defaults.push((
                crate::services::retry::mover::ROUTES_VARIABLE.into(),
                EnvSource::Value(routes.to_string()),
            )),
            (Some(Builtin::Watch), _, Some(facts)) => {
                defaults.extend(watch_defaults(spec, facts, env));
            }
            _ => {}
        }
        for (key, source) in defaults {
            spec.env.entry(key).or_insert(source);
        }
        spec.config_hash = spec.compute_hash(&secrets);
    }
}
