//! The errors god reports to its user. Each one says what happened, where, and what to do.

use std::path::PathBuf;

use crate::inputs::diagnostic::Diagnostic;

/// Everything that can stop a god command. `Display` is the one-paragraph message the user sees.
#[derive(Debug, thiserror::Error)]
pub enum GodError {
    /// An input file could not be found or read.
    #[error("cannot read {path}: {source}\nhint: {hint}")]
    InputUnreadable {
        path: PathBuf,
        source: std::io::Error,
        hint: String,
    },
    /// Input files are invalid; each problem carries its file:line:col.
    #[error("{}", render_diagnostics(.0))]
    Invalid(Vec<Diagnostic>),
    /// A command-line value is wrong.
    #[error("{0}")]
    Usage(String),
    /// The management API or the AMQP port could not be reached.
    #[error(
        "cannot reach RabbitMQ at {endpoint}: {reason}\nhint: is the broker running with the management plugin enabled? \
         `scripts/bootstrap` starts one on this machine; otherwise set {variable} to the right address."
    )]
    Unreachable {
        endpoint: String,
        reason: String,
        variable: &'static str,
    },
    /// The Docker engine could not be reached.
    #[error(
        "cannot reach the Docker engine at {endpoint}: {reason}\nhint: start it (`scripts/bootstrap` starts \
         dockerd on this machine), or set DOCKER_HOST to the engine's address. `--only rabbitmq` plans \
         the broker alone."
    )]
    EngineUnreachable { endpoint: String, reason: String },
    /// The broker refused the credentials.
    #[error(
        "RabbitMQ at {endpoint} refused the credentials of user \"{user}\" ({detail}).\n\
         hint: if the password was rotated, update RABBITMQ_URL (or --amqp-url) and, when it carries its own \
         credentials, RABBITMQ_MANAGEMENT_URL (or --management-url)."
    )]
    BadCredentials {
        endpoint: String,
        user: String,
        detail: String,
    },
    /// The user lacks a permission or tag needed for the operation.
    #[error(
        "RabbitMQ at {endpoint} refused {operation} for user \"{user}\" (HTTP 403).\n\
         hint: god needs a user with the `policymaker` (or `administrator`) tag and configure/write/read \
         permissions on the vhost, e.g. `rabbitmqctl set_user_tags {user} policymaker` and \
         `rabbitmqctl set_permissions -p <vhost> {user} '.*' '.*' '.*'`."
    )]
    Forbidden {
        endpoint: String,
        user: String,
        operation: String,
    },
    /// The vhost named by the AMQP URL (or the registry) does not exist.
    #[error(
        "vhost \"{vhost}\" does not exist on {endpoint}; god never creates vhosts.\n\
         hint: create it with `rabbitmqctl add_vhost '{vhost}'` and grant access with \
         `rabbitmqctl set_permissions -p '{vhost}' {user} '.*' '.*' '.*'`, or point --amqp-url \
         (RABBITMQ_URL) at an existing vhost."
    )]
    VhostMissing {
        vhost: String,
        endpoint: String,
        user: String,
    },
    /// The broker answered something god did not expect.
    #[error("RabbitMQ at {endpoint} answered {operation} with: {detail}")]
    Broker {
        endpoint: String,
        operation: String,
        detail: String,
    },
    /// Another `god apply` holds the lock of the vhost or of the container project.
    #[error(
        "another god apply is running on {scope} ({holder}); waited {waited_secs}s for it to finish.\n\
         hint: wait for it and run again, or raise --lock-timeout."
    )]
    Locked {
        /// `vhost "x"` or `container project "p"`.
        scope: String,
        holder: String,
        waited_secs: u64,
    },
    /// A saved plan no longer matches the live broker.
    #[error(
        "the saved plan {path} was made against a broker state that has changed since:\n{moved}\n\
         hint: run `god plan --out {path}` again and review the new plan."
    )]
    StalePlan { path: PathBuf, moved: String },
    /// A change needs confirmation that cannot be asked for.
    #[error(
        "refusing to go on without confirmation: standard input is not a terminal.\n\
         hint: review what is printed above and pass --auto-approve (as CI does); for god apply, \
         a saved, reviewed plan applies with `god apply FILE`."
    )]
    NeedsApproval,
    /// Anything else, with its context.
    #[error("{0}")]
    Other(String),
}

fn render_diagnostics(diagnostics: &[Diagnostic]) -> String {
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let mut text: String = diagnostics.iter().map(|d| d.render() + "\n").collect();
    text.push_str(&format!(
        "{errors} error{} found",
        if errors == 1 { "" } else { "s" }
    ));
    text
}

/// The result type of god's library functions.
pub type Result<T, E = GodError> = std::result::Result<T, E>;
