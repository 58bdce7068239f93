//! `god doctor`: loads the inputs (the config checks), runs the live checks of every area
//! concurrently, prints a table or JSON, and exits 1 when a check fails (or warns, with
//! --strict).

use std::io::IsTerminal;
use std::time::Instant;

use super::{Exit, Sources, runtime};
use crate::doctor::render::{self, Colour};
use crate::doctor::{Options, Report, audit, config};
use crate::error::Result;

/// Options of `god doctor`.
#[derive(Debug, Clone, clap::Args)]
pub struct DoctorArgs {
    /// Print the report as JSON (schemas/doctor.schema.json).
    #[arg(long)]
    pub json: bool,
    /// Warnings fail the run too (exit 1).
    #[arg(long)]
    pub strict: bool,
    /// Only the checks that warn or fail, one line each, and the verdict.
    #[arg(long, conflicts_with = "json")]
    pub summary: bool,
    /// What the live checks are given.
    #[command(flatten)]
    pub options: Options,
}

/// Runs every check and prints the report.
pub fn run(sources: &Sources, args: &DoctorArgs) -> Result<Exit> {
    let started = Instant::now();
    let mut inputs = config::load(sources);
    let mut checks = std::mem::take(&mut inputs.checks);
    checks.extend(runtime()?.block_on(audit(&inputs, &args.options)));
    let elapsed = started.elapsed().as_millis() as u64;
    let report = Report::new(checks, args.strict, elapsed);
    if args.json {
        println!("{}", render::json(&report));
    } else {
        let colour = if std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
            Colour::On
        } else {
            Colour::Off
        };
        let text = match args.summary {
            true => render::summary(&report, &heading(&inputs), colour),
            false => render::table(&report, &heading(&inputs), colour),
        };
        print!("{text}");
    }
    Ok(if report.failed {
        Exit::Failure
    } else {
        Exit::Success
    })
}

fn heading(inputs: &config::Inputs) -> String {
    let mut text = "god doctor".to_string();
    if let Ok(e) = &inputs.endpoints {
        text.push_str(&format!(
            ": vhost \"{}\" at {}",
            e.vhost,
            e.management_display()
        ));
    }
    if let Some(c) = &inputs.containers {
        text.push_str(&format!(", project {}", c.project));
    }
    text
}
