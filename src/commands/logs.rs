//! `god logs [COMPONENT…]`: the output of the project's containers, each line prefixed with its
//! component (coloured on a terminal only), like `docker compose logs`.

use std::io::{IsTerminal, Write};

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures::stream::{self, BoxStream, StreamExt};

use super::{Exit, Sources, runtime};
use crate::error::{GodError, Result};
use crate::model::duration::parse_millis;
use crate::observe::docker::project_statuses;
use crate::observe::engine;
use crate::reconcile::project::Project;

/// Options of `god logs`.
#[derive(Debug, Clone, clap::Args)]
pub struct LogsArgs {
    /// The components whose containers to show (default: every one of the project).
    #[arg(value_name = "COMPONENT")]
    pub names: Vec<String>,
    /// Only the last N lines of each container ("all": every line).
    #[arg(long, value_name = "N", default_value = "all")]
    pub tail: String,
    /// Keep printing new lines until interrupted.
    #[arg(long, short)]
    pub follow: bool,
    /// Only lines newer than this (30s, 10m, 2h).
    #[arg(long, value_name = "DURATION", value_parser = parse_millis)]
    pub since: Option<u64>,
    /// Prefix each line with the engine's timestamp.
    #[arg(long, short)]
    pub timestamps: bool,
}

/// ANSI colours the prefixes cycle through on a terminal.
const COLOURS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];

/// Prints the logs of the chosen containers, each line after its component's name.
pub fn run(sources: &Sources, args: &LogsArgs) -> Result<Exit> {
    runtime()?.block_on(async {
        let project = Project::open(sources, None).await?;
        let containers = chosen(&project, &args.names).await?;
        let width = containers.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
        let colour = std::io::stdout().is_terminal();
        let streams: Vec<BoxStream<'_, (String, LogOutput)>> = containers
            .iter()
            .enumerate()
            .map(|(i, (component, name))| {
                let prefix = prefix(component, width, colour.then(|| COLOURS[i % COLOURS.len()]));
                lines_of(&project.docker, name, args)
                    .map(move |out| (prefix.clone(), out))
                    .boxed()
            })
            .collect();
        let mut all = match args.follow {
            true => stream::select_all(streams).boxed(),
            false => stream::iter(streams).flatten().boxed(),
        };
        let mut stdout = std::io::stdout().lock();
        while let Some((prefix, output)) = all.next().await {
            for line in output.to_string().lines() {
                if writeln!(stdout, "{prefix}{line}").is_err() {
                    return Ok(Exit::Success); // the reader went away (`| head`)
                }
            }
        }
        Ok(Exit::Success)
    })
}

/// The containers of the named components (every container of the project when none is
/// named), as (component, container name); an unknown name is an error listing the others.
async fn chosen(project: &Project, components: &[String]) -> Result<Vec<(String, String)>> {
    let statuses = project_statuses(&project.docker, &project.desired.project).await?;
    for name in components {
        if !statuses.iter().any(|s| &s.component == name) {
            let mut known: Vec<&str> = statuses.iter().map(|s| s.component.as_str()).collect();
            known.sort();
            return Err(GodError::Usage(format!(
                "no container of component {name} in project {}\nhint: the project's containers are of: {}",
                project.desired.project,
                if known.is_empty() {
                    "none (god apply creates them)".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
    }
    let mut picked: Vec<(String, String)> = statuses
        .into_iter()
        .filter(|s| components.is_empty() || components.contains(&s.component))
        .map(|s| (s.component, s.container))
        .collect();
    picked.sort();
    Ok(picked)
}

/// The log of one container; an engine error ends it with a line saying so.
fn lines_of<'a>(
    docker: &'a bollard::Docker,
    name: &str,
    args: &LogsArgs,
) -> BoxStream<'a, LogOutput> {
    let mut options = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .follow(args.follow)
        .timestamps(args.timestamps)
        .tail(&args.tail);
    if let Some(millis) = args.since {
        let since = time::OffsetDateTime::now_utc().unix_timestamp() - (millis / 1000) as i64;
        options = options.since(i32::try_from(since).unwrap_or(0));
    }
    let name = name.to_string();
    docker
        .logs(&name, Some(options.build()))
        .map(move |item| match item {
            Ok(output) => output,
            Err(e) => LogOutput::StdErr {
                message: format!(
                    "god: {}\n",
                    engine::failed(&format!("reading the log of {name}"), e)
                )
                .into(),
            },
        })
        .boxed()
}

fn prefix(component: &str, width: usize, colour: Option<&str>) -> String {
    let padded = format!("{component:<width$} | ");
    match colour {
        Some(code) => format!("\x1b[{code}m{padded}\x1b[0m"),
        None => padded,
    }
}
