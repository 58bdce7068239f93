//! The command line: clap definitions and dispatch to [`crate::commands`], nothing else.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};

use crate::commands::apply::ApplyArgs;
use crate::commands::doctor::DoctorArgs;
use crate::commands::gateway::GatewayArgs;
use crate::commands::plan::PlanArgs;
use crate::commands::relay::RelayArgs;
use crate::commands::retry::RetryArgs;
use crate::commands::{self, Exit};
use crate::reconcile::sources::Sources;

/// god: declarative reconciler for the 33GOD event bus.
///
/// registry.yaml says which services exist, which queues they read and which routing keys
/// they bind; components.toml says which containers run. god reads the live RabbitMQ broker
/// and Docker engine, shows the difference (`god plan`) and converges them (`god apply`).
/// `god doctor` audits the whole bus and says what to fix.
///
/// Exit codes: 0 success; 1 error (nothing applied, or a doctor check failed); 2 `plan
/// --detailed-exitcode` found changes; 3 `apply` stopped part-way.
#[derive(Debug, Parser)]
#[command(name = "god", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check registry.yaml offline; print every problem as file:line:col.
    Validate(commands::validate::ValidateArgs),
    /// Print the desired topology (offline), sorted and stable.
    Render {
        /// Output format.
        #[arg(long, value_enum, default_value = "yaml")]
        format: commands::render::Format,
    },
    /// Show what apply would change on the live broker.
    Plan(PlanArgs),
    /// Converge the broker to the registry (or apply a saved plan exactly).
    Apply(ApplyArgs),
    /// Run the HTTP event gateway: POST events, 202 once the broker confirmed them.
    Gateway(GatewayArgs),
    /// Run the WebSocket relay: every event on the exchange to every matching client.
    Relay(RelayArgs),
    /// Run the retry mover: rejected messages of services with `retry` to their next delay
    /// stage, then to their dead-letter queue.
    Retry(RetryArgs),
    /// Plan continuously and report drift; --mode heal also fixes what is safe.
    ///
    /// Plans every --interval and at every edit of registry.yaml, topology/ or components.toml.
    /// Each drift, heal or error is one JSON line on stdout and an event on the bus
    /// (god.drift.detected, god.drift.healed, god.drift.failed); --listen serves /health and
    /// /metrics. Stops on SIGTERM or Ctrl-C, between steps.
    Watch(commands::watch::WatchArgs),
    /// List the project's containers: state, health, ports, restarts, uptime (like
    /// `docker compose ps`); god's bundled services say whether they answer ready.
    Ps {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the logs of the project's containers, each line after its component's name.
    Logs(commands::logs::LogsArgs),
    /// Restart components' containers, in dependency order, waiting until each is healthy.
    Restart(commands::restart::RestartArgs),
    /// Stop and remove the project's containers and networks (volumes with --volumes).
    ///
    /// Containers go dependents first; named volumes are kept unless --volumes is given (then
    /// god asks first, as apply does). Only the project's own containers are touched, never a
    /// foreign one, and the broker's topology is left alone. With --profile, the components of
    /// that profile go too; without, they are left as they are.
    Down(commands::down::DownArgs),
    /// Audit the event bus: broker, topology, flow, services and configuration, with fixes.
    ///
    /// Exit codes: 0 when no check fails (warnings alone pass), 1 when one fails (or warns,
    /// with --strict).
    Doctor(DoctorArgs),
    /// Draw the topology: producers → exchange → queues → consumers, dead-letter queues attached.
    Graph {
        /// Output format.
        #[arg(long, value_enum, default_value = "mermaid")]
        format: commands::graph::Format,
        /// Add each queue's depth and consumer count from the broker.
        #[arg(long)]
        live: bool,
    },
    /// Dead letters: list the dead-letter queues, show their messages without consuming them,
    /// replay them where they came from, or purge them.
    Dlq {
        #[command(subcommand)]
        what: commands::dlq::DlqCommand,
    },
    /// Event contracts: `god schema check` compares a Holyfields schema tree with an earlier
    /// revision and fails on a breaking change.
    Schema {
        #[command(subcommand)]
        what: commands::schema::SchemaCommand,
    },
    /// Add to god's inputs: `god new service` adds a service to registry.yaml (and writes its
    /// consumer).
    New {
        #[command(subcommand)]
        what: commands::new::NewCommand,
    },
    /// Write god's inputs from what exists: `god import compose` turns a docker-compose.yml
    /// into components.toml, `god import registry` writes a registry from a live vhost.
    Import {
        #[command(subcommand)]
        what: commands::import::ImportCommand,
    },
    /// Print a shell completion script, e.g. `god completions bash > ~/.local/share/bash-completion/completions/god`.
    Completions {
        /// The shell to write the script for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print god's man page (roff), e.g. `god man > ~/.local/share/man/man1/god.1`.
    Man,
    /// Print the events a relay sends (for a quick look, or a check in scripts).
    Tail {
        /// The relay's WebSocket URL.
        #[arg(long, default_value = "ws://127.0.0.1:8683/")]
        relay: String,
        /// Topic patterns, comma-separated (agent.#,task.*).
        #[arg(long)]
        filter: Option<String>,
        /// Stop after this many events.
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
}

/// Options every command accepts: where the inputs are and where the broker is.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct Globals {
    /// The service registry. Default: ./registry.yaml, else ./services/registry.yaml.
    #[arg(
        long,
        global = true,
        env = "GOD_REGISTRY",
        value_name = "PATH",
        hide_env_values = true
    )]
    pub registry: Option<PathBuf>,
    /// AMQP URL; its path is the vhost. Nodes of a cluster: comma-separated, the first that
    /// answers is used. The upstream's RABBIT_URL is read when RABBITMQ_URL is not set.
    /// Default: the broker components.toml runs (`broker = true`), by its published ports, else
    /// amqp://guest:guest@127.0.0.1:5672/%2f
    #[arg(
        long,
        global = true,
        env = "RABBITMQ_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub amqp_url: Option<String>,
    /// Management API URL; credentials come from the AMQP URL unless given here. Nodes of a
    /// cluster: comma-separated, the first that answers is used. Default: the broker
    /// components.toml runs, else http://127.0.0.1:15672
    #[arg(
        long,
        global = true,
        env = "RABBITMQ_MANAGEMENT_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub management_url: Option<String>,
    /// The folder of topology files (every *.yaml in it). Default: topology/ beside the
    /// registry, when present.
    #[arg(
        long,
        global = true,
        env = "GOD_TOPOLOGY",
        value_name = "DIR",
        hide_env_values = true
    )]
    pub topology: Option<PathBuf>,
    /// The containers manifest. Default: ./components.toml when present.
    #[arg(
        long,
        global = true,
        env = "GOD_COMPONENTS",
        value_name = "PATH",
        hide_env_values = true
    )]
    pub components: Option<PathBuf>,
    /// Run the components of this profile too (repeatable); a component with `profiles` runs
    /// only when one of them is named, as with `docker compose --profile`.
    #[arg(
        long = "profile",
        global = true,
        env = "GOD_PROFILES",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub profiles: Vec<String>,
    /// Container project: names are <project>-<component>. Default: the directory of components.toml.
    #[arg(
        long,
        global = true,
        env = "GOD_PROJECT",
        value_name = "NAME",
        hide_env_values = true
    )]
    pub project: Option<String>,
    /// The variables components.toml interpolates (`${VAR}`, `from_env`), as KEY=VALUE lines;
    /// god's environment wins over them. Default: .env beside components.toml, when present.
    #[arg(
        long,
        global = true,
        env = "GOD_ENV_FILE",
        value_name = "FILE",
        hide_env_values = true
    )]
    pub env_file: Option<PathBuf>,
}

impl Globals {
    /// Where the inputs and the broker are, as the library reads them: the options, with the
    /// upstream's `RABBIT_URL` when neither `--amqp-url` nor `RABBITMQ_URL` gives a broker.
    fn sources(self) -> Sources {
        Sources {
            registry: self.registry,
            amqp_url: self.amqp_url,
            management_url: self.management_url,
            topology: self.topology,
            components: self.components,
            profiles: self.profiles,
            project: self.project,
            env_file: self.env_file,
        }
        .with_upstream_variables()
    }
}

/// Parses the command line, runs the command, and returns its exit code. Usage errors exit 1
/// (not clap's 2, which `plan --detailed-exitcode` uses for "changes").
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    crate::logging::init(match cli.command {
        Command::Gateway(_) | Command::Relay(_) | Command::Retry(_) => crate::logging::SERVICE,
        _ => crate::logging::QUIET,
    });
    match run(cli) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(Exit::Failure.code())
        }
    }
}

fn run(cli: Cli) -> crate::error::Result<Exit> {
    let sources = &cli.globals.sources();
    sources.load_env_file()?;
    match cli.command {
        Command::Validate(args) => commands::validate::run(sources, &args),
        Command::Schema { what } => commands::schema::run(&what),
        Command::Import { what } => commands::import::run(sources, &what),
        Command::New { what } => commands::new::run(sources, &what),
        Command::Dlq { what } => commands::dlq::run(sources, &what),
        Command::Render { format } => commands::render::run(sources, format),
        Command::Plan(args) => commands::plan::run(sources, &args),
        Command::Apply(args) => commands::apply::run(sources, &args),
        Command::Gateway(args) => commands::gateway::run(sources, &args),
        Command::Relay(args) => commands::relay::run(sources, &args),
        Command::Retry(args) => commands::retry::run(sources, &args),
        Command::Doctor(args) => commands::doctor::run(sources, &args),
        Command::Watch(args) => commands::watch::run(sources, &args),
        Command::Graph { format, live } => commands::graph::run(sources, format, live),
        Command::Ps { json } => commands::ps::run(sources, json),
        Command::Logs(args) => commands::logs::run(sources, &args),
        Command::Restart(args) => commands::restart::run(sources, &args),
        Command::Down(args) => commands::down::run(sources, &args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "god", &mut std::io::stdout());
            Ok(Exit::Success)
        }
        Command::Man => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .map(|()| Exit::Success)
            .map_err(|e| crate::error::GodError::Other(format!("cannot write the man page: {e}"))),
        Command::Tail {
            relay,
            filter,
            count,
            timeout,
        } => commands::tail::run(
            &relay,
            filter.as_deref(),
            count,
            Duration::from_secs(timeout),
        ),
    }
}
