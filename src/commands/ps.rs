//! `god ps`: the project's containers, like `docker compose ps`: component, container, image,
//! state, health, ports, restarts, uptime; for god's bundled services, whether they answer
//! ready. Components that have no container yet are listed as `absent`.

use std::time::Duration;

use serde_json::json;

use super::{Exit, Sources, runtime};
use crate::error::Result;
use crate::model::containers::DesiredContainers;
use crate::model::duration::format_millis;
use crate::observe::docker::{ContainerStatus, project_statuses};
use crate::reconcile::project::Project;
use crate::services::builtin::Builtin;

/// One row: a container (or a component without one) and, for a bundled service, its readiness.
struct Row {
    status: ContainerStatus,
    ready: Option<bool>,
}

/// Lists the project's containers as a table, or as JSON with `json`.
pub fn run(sources: &Sources, json: bool) -> Result<Exit> {
    let rows = runtime()?.block_on(async {
        let project = Project::open(sources, None).await?;
        let statuses = project_statuses(&project.docker, &project.desired.project).await?;
        let mut rows = Vec::new();
        for status in in_order(&project.desired, statuses) {
            let ready = readiness(&project.desired, &status).await;
            rows.push(Row { status, ready });
        }
        Ok::<_, crate::error::GodError>((project.desired.project.clone(), rows))
    })?;
    let (project, rows) = rows;
    if json {
        let containers: Vec<_> = rows
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(&r.status).expect("statuses serialise");
                v["ready"] = json!(r.ready);
                v
            })
            .collect();
        let doc = json!({"project": project, "containers": containers});
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("serialises")
        );
    } else {
        print!("{}", table(&rows));
    }
    Ok(Exit::Success)
}

/// The containers in components.toml's dependency order, then those of no component any more;
/// a component without a container as `absent`.
fn in_order(desired: &DesiredContainers, mut found: Vec<ContainerStatus>) -> Vec<ContainerStatus> {
    let mut ordered = Vec::new();
    for spec in &desired.containers {
        match found.iter().position(|s| s.component == spec.component) {
            Some(i) => ordered.push(found.remove(i)),
            None => ordered.push(ContainerStatus {
                component: spec.component.clone(),
                container: spec.name.clone(),
                image: spec.image.clone(),
                state: "absent".to_string(),
                health: None,
                ports: Vec::new(),
                restarts: 0,
                uptime_seconds: None,
                exit_code: None,
            }),
        }
    }
    found.sort_by(|a, b| a.component.cmp(&b.component));
    ordered.extend(found);
    ordered
}

/// Whether a running bundled service answers its health URL with 2xx (None for the others).
async fn readiness(desired: &DesiredContainers, status: &ContainerStatus) -> Option<bool> {
    let spec = desired
        .containers
        .iter()
        .find(|c| c.component == status.component)?;
    let url = Builtin::of(spec)?.health_url(spec)?;
    if status.state != "running" {
        return Some(false);
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    Some(
        client
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success()),
    )
}

fn table(rows: &[Row]) -> String {
    let header = [
        "COMPONENT",
        "CONTAINER",
        "IMAGE",
        "STATE",
        "HEALTH",
        "READY",
        "RESTARTS",
        "UPTIME",
        "PORTS",
    ];
    let cells: Vec<[String; 9]> = rows.iter().map(cells).collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<&str>| {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(header.to_vec());
    for row in &cells {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn cells(row: &Row) -> [String; 9] {
    let s = &row.status;
    let state = match s.exit_code {
        Some(code) if s.state != "absent" => format!("{} ({code})", s.state),
        _ => s.state.clone(),
    };
    [
        s.component.clone(),
        s.container.clone(),
        s.image.clone(),
        state,
        s.health.clone().unwrap_or_else(|| "-".to_string()),
        match row.ready {
            Some(true) => "ready".to_string(),
            Some(false) => "not ready".to_string(),
            None => "-".to_string(),
        },
        s.restarts.to_string(),
        s.uptime_seconds
            .map_or("-".to_string(), |secs| format_millis(secs * 1000)),
        s.ports.join(", "),
    ]
}
