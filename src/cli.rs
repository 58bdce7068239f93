//! The command line: clap definitions and dispatch to [`crate::commands`], nothing else.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::commands::{self, Exit, Globals, Only};
use crate::doctor::Thresholds;

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
    globals: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
struct GlobalArgs {
    /// The service registry. Default: ./registry.yaml, else ./services/registry.yaml.
    #[arg(long, global = true, env = "GOD_REGISTRY", value_name = "PATH")]
    registry: Option<PathBuf>,
    /// AMQP URL; its path is the vhost. Default: amqp://guest:guest@127.0.0.1:5672/%2f
    #[arg(
        long,
        global = true,
        env = "RABBITMQ_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    amqp_url: Option<String>,
    /// Management API URL; credentials come from the AMQP URL unless given here.
    /// Default: http://127.0.0.1:15672
    #[arg(
        long,
        global = true,
        env = "RABBITMQ_MANAGEMENT_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    management_url: Option<String>,
    /// The containers manifest. Default: ./components.toml when present.
    #[arg(long, global = true, env = "GOD_COMPONENTS", value_name = "PATH")]
    components: Option<PathBuf>,
    /// Container project: names are <project>-<component>. Default: the directory of components.toml.
    #[arg(long, global = true, env = "GOD_PROJECT", value_name = "NAME")]
    project: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check registry.yaml offline; print every problem as file:line:col.
    Validate,
    /// Print the desired topology (offline), sorted and stable.
    Render {
        /// Output format.
        #[arg(long, value_enum, default_value = "yaml")]
        format: commands::render::Format,
    },
    /// Show what apply would change on the live broker.
    Plan(PlanCli),
    /// Converge the broker to the registry (or apply a saved plan exactly).
    Apply(ApplyCli),
    /// Run the HTTP event gateway: POST events, 202 once the broker confirmed them.
    Gateway(GatewayCli),
    /// Run the WebSocket relay: every event on the exchange to every matching client.
    Relay(RelayCli),
    /// Audit the event bus: broker, topology, flow, services and configuration, with fixes.
    ///
    /// Exit codes: 0 when no check fails (warnings alone pass), 1 when one fails (or warns,
    /// with --strict).
    Doctor(DoctorCli),
    /// Draw the topology: producers → exchange → queues → consumers, dead-letter queues attached.
    Graph {
        /// Output format.
        #[arg(long, value_enum, default_value = "mermaid")]
        format: commands::graph::Format,
        /// Add each queue's depth and consumer count from the broker.
        #[arg(long)]
        live: bool,
    },
    /// Print a shell completion script, e.g. `god completions bash > ~/.local/share/bash-completion/completions/god`.
    Completions {
        /// The shell.
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

#[derive(Debug, Args)]
struct DoctorCli {
    /// Print the report as JSON (schemas/doctor.schema.json).
    #[arg(long)]
    json: bool,
    /// Warnings fail the run too (exit 1).
    #[arg(long)]
    strict: bool,
    /// Seconds each network operation may take before its check fails.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    timeout: f64,
    /// Messages a service queue may hold before it is reported.
    #[arg(long, value_name = "N", default_value_t = Thresholds::default().max_depth)]
    max_depth: u64,
    /// Messages a dead-letter queue may hold before it is reported.
    #[arg(long, value_name = "N", default_value_t = Thresholds::default().max_dlq_depth)]
    max_dlq_depth: u64,
    /// Growth of a queue, in messages per second, before it is reported.
    #[arg(long, value_name = "RATE", default_value_t = Thresholds::default().max_growth)]
    max_growth: f64,
    /// The gateway's base URL. Default: from its component in components.toml.
    #[arg(long, value_name = "URL")]
    gateway_url: Option<String>,
    /// The relay's base URL. Default: from its component in components.toml.
    #[arg(long, value_name = "URL")]
    relay_url: Option<String>,
}

#[derive(Debug, Args)]
struct RelayCli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8683")]
    listen: std::net::SocketAddr,
    /// Exchange to read from. Default: the registry's exchange, else bloodbank.events.v1.
    #[arg(long, env = "GOD_EXCHANGE")]
    exchange: Option<String>,
    /// Binding key of the relay's own queue.
    #[arg(long, default_value = "#")]
    binding_key: String,
    /// Unacknowledged deliveries at most.
    #[arg(long, default_value_t = 200)]
    prefetch: u16,
    /// Frames a client may have waiting before it is dropped as too slow.
    #[arg(long, default_value_t = 1024)]
    client_buffer: usize,
}

#[derive(Debug, Args)]
struct GatewayCli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8682")]
    listen: std::net::SocketAddr,
    /// Exchange to publish to. Default: the registry's exchange, else bloodbank.events.v1.
    #[arg(long, env = "GOD_EXCHANGE")]
    exchange: Option<String>,
    /// Largest accepted request body, in bytes (larger: 413).
    #[arg(long, default_value_t = crate::gateway::DEFAULT_BODY_LIMIT)]
    body_limit: usize,
    /// Directory of payload schemas named <event_type>.json.
    #[arg(long, default_value = "schemas/events")]
    schemas: PathBuf,
}

#[derive(Debug, Args)]
struct PlanCli {
    /// Print the plan as JSON (schemas/plan.schema.json).
    #[arg(long)]
    json: bool,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error (for CI).
    #[arg(long)]
    detailed_exitcode: bool,
    /// Also plan the deletion of objects god created that the registry no longer wants.
    #[arg(long)]
    prune: bool,
    /// Save the plan, with a fingerprint of the live state, for `god apply FILE`.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Plan only the broker (rabbitmq) or only the containers (docker).
    #[arg(long, value_enum, value_name = "SYSTEM")]
    only: Option<Only>,
}

#[derive(Debug, Args)]
struct ApplyCli {
    /// A plan saved by `god plan --out FILE`: applied exactly, refused if the broker moved.
    #[arg(value_name = "FILE")]
    plan_file: Option<PathBuf>,
    /// Apply without asking (required when stdin is not a terminal).
    #[arg(long)]
    auto_approve: bool,
    /// Delete objects god created that the registry no longer wants.
    #[arg(long)]
    prune: bool,
    /// Replace or delete queues even when they hold messages (the messages are lost).
    #[arg(long)]
    allow_data_loss: bool,
    /// Print the plan and the result of each change as JSON.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for another apply on the same vhost to finish.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    lock_timeout: u64,
    /// Apply only the broker (rabbitmq) or only the containers (docker).
    #[arg(long, value_enum, value_name = "SYSTEM")]
    only: Option<Only>,
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
        Command::Gateway(_) | Command::Relay(_) => crate::logging::SERVICE,
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
    let globals = Globals {
        registry: cli.globals.registry,
        amqp_url: cli.globals.amqp_url,
        management_url: cli.globals.management_url,
        components: cli.globals.components,
        project: cli.globals.project,
    };
    match cli.command {
        Command::Validate => commands::validate::run(&globals),
        Command::Render { format } => commands::render::run(&globals, format),
        Command::Plan(p) => commands::plan::run(
            &globals,
            &commands::plan::PlanArgs {
                json: p.json,
                detailed_exitcode: p.detailed_exitcode,
                prune: p.prune,
                out: p.out,
                only: p.only,
            },
        ),
        Command::Gateway(g) => commands::gateway::run(
            &globals,
            &commands::gateway::GatewayArgs {
                listen: g.listen,
                exchange: g.exchange,
                body_limit: g.body_limit,
                schemas: g.schemas,
            },
        ),
        Command::Relay(r) => commands::relay::run(
            &globals,
            &commands::relay::RelayArgs {
                listen: r.listen,
                exchange: r.exchange,
                binding_key: r.binding_key,
                prefetch: r.prefetch,
                client_buffer: r.client_buffer,
            },
        ),
        Command::Doctor(d) => commands::doctor::run(
            &globals,
            &commands::doctor::DoctorArgs {
                json: d.json,
                strict: d.strict,
                timeout: Duration::from_secs_f64(d.timeout.max(0.1)),
                thresholds: Thresholds {
                    max_depth: d.max_depth,
                    max_dlq_depth: d.max_dlq_depth,
                    max_growth: d.max_growth,
                },
                gateway_url: d.gateway_url,
                relay_url: d.relay_url,
            },
        ),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "god", &mut std::io::stdout());
            Ok(Exit::Success)
        }
        Command::Man => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .map(|()| Exit::Success)
            .map_err(|e| crate::error::GodError::Other(format!("cannot write the man page: {e}"))),
        Command::Graph { format, live } => commands::graph::run(&globals, format, live),
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
        Command::Apply(a) => commands::apply::run(
            &globals,
            &commands::apply::ApplyArgs {
                plan_file: a.plan_file,
                auto_approve: a.auto_approve,
                prune: a.prune,
                allow_data_loss: a.allow_data_loss,
                json: a.json,
                lock_timeout: Duration::from_secs(a.lock_timeout),
                only: a.only,
            },
        ),
    }
}
