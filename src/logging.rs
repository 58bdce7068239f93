//! god's logs, on stderr: coloured only on a terminal (never with `NO_COLOR`), plain text in
//! files and `docker logs`, or one JSON object per line with `GOD_LOG_FORMAT=json` (what log
//! shippers read). `GOD_LOG` filters them (`GOD_LOG=debug`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The environment variable choosing the format: `text` (the default) or `json`.
pub const FORMAT_VARIABLE: &str = "GOD_LOG_FORMAT";
/// The environment variable holding the filter.
pub const FILTER_VARIABLE: &str = "GOD_LOG";

/// What the commands log unless `GOD_LOG` says otherwise: warnings and errors.
pub const QUIET: &str = "warn,lapin=off";
/// What the long-running services (`god gateway`, `god relay`) log: god's own information
/// (where they listen) besides warnings.
pub const SERVICE: &str = "warn,god=info,lapin=off";

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human text, coloured on a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

impl Format {
    /// The format `GOD_LOG_FORMAT` asks for (text when unset or unknown).
    pub fn from_env() -> Self {
        match std::env::var(FORMAT_VARIABLE).as_deref() {
            Ok("json") => Format::Json,
            _ => Format::Text,
        }
    }
}

/// Whether text logs are coloured: only on a terminal, and never with `NO_COLOR` set.
pub fn colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Installs the logger; `default_filter` applies when `GOD_LOG` is unset or invalid.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_env(FILTER_VARIABLE).unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match Format::from_env() {
        Format::Json => builder.json().try_init(),
        Format::Text => builder
            .with_ansi(colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            ))
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_needs_a_terminal_and_no_no_color() {
        assert!(colour(true, None));
        assert!(!colour(false, None));
        assert!(!colour(true, Some("1".as_ref())));
        assert!(
            colour(true, Some("".as_ref())),
            "an empty NO_COLOR is unset"
        );
    }
}
