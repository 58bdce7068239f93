//! What every doctor check is made of: its verdict, area and fix ([`Check`]), the report that
//! sums them up ([`Report`]), and the helpers the areas share (time limits, short lists).

use std::future::Future;
use std::time::Duration;

use serde::Serialize;

use crate::error::GodError;
use crate::model::desired::QueueRole;

/// Version of the report's JSON format (`schemas/doctor.schema.json`).
pub const DOCTOR_FORMAT_VERSION: u32 = 1;

/// The outcome of one check, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Healthy.
    Ok,
    /// Not checked: it does not apply, or what it needs is unavailable (said in the summary).
    Skip,
    /// Worth a look; fails the run only with `--strict`.
    Warn,
    /// Broken; fails the run.
    Fail,
}

/// What part of the platform a check looks at; the table is grouped by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    /// RabbitMQ itself: reachable, credentials, alarms, vhost.
    Broker,
    /// The registry's exchange, queues, bindings and dead-lettering on the broker.
    Topology,
    /// Messages: consumers, depths, growth, unroutable event types, the relay's binding.
    Flow,
    /// The gateway, the relay, the managed containers and the registry's health endpoints.
    Services,
    /// The input files.
    Config,
}

impl Area {
    /// The heading of the area in the table.
    pub fn title(self) -> &'static str {
        match self {
            Area::Broker => "Broker",
            Area::Topology => "Topology",
            Area::Flow => "Flow",
            Area::Services => "Services",
            Area::Config => "Config",
        }
    }
}

/// Whether a desired queue is a service's own or a dead-letter queue: the distinction the
/// topology and flow checks report by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// A service's own queue.
    Main,
    /// A dead-letter queue.
    DeadLetter,
    /// A queue of a retry: the mover's inbox or a delay stage.
    Retry,
}

impl QueueKind {
    /// The kind of a queue with this role.
    pub fn of(role: &QueueRole) -> Self {
        match role {
            QueueRole::Main { .. } => QueueKind::Main,
            QueueRole::DeadLetter { .. } => QueueKind::DeadLetter,
            QueueRole::Retry { .. } => QueueKind::Retry,
        }
    }
}

/// One check: its id, what was found, and what fixes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// Stable identifier, `<area>.<name>`.
    pub id: String,
    /// The area it belongs to.
    pub area: Area,
    /// The outcome.
    pub status: Verdict,
    /// What was found, in one line.
    pub summary: String,
    /// The objects behind the summary, one per line (queues, containers, URLs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// The command or change that fixes it (warn and fail).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// A passed check.
    pub fn ok(id: &str, area: Area, summary: impl Into<String>) -> Self {
        Self::new(id, area, Verdict::Ok, summary)
    }

    /// A check with an outcome and no details or fix yet.
    pub fn new(id: &str, area: Area, status: Verdict, summary: impl Into<String>) -> Self {
        Self {
            id: id.to_string(),
            area,
            status,
            summary: summary.into(),
            details: Vec::new(),
            fix: None,
        }
    }

    /// A check that was not made, and why.
    pub fn skip(id: &str, area: Area, why: impl Into<String>) -> Self {
        Self::new(id, area, Verdict::Skip, why)
    }

    /// Adds the lines behind the summary.
    pub fn with_details(mut self, details: Vec<String>) -> Self {
        self.details = details;
        self
    }

    /// Adds what fixes it.
    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// How many checks ended each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Passed.
    pub ok: usize,
    /// Warnings.
    pub warn: usize,
    /// Failures.
    pub fail: usize,
    /// Not made.
    pub skip: usize,
}

/// The whole audit.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `DOCTOR_FORMAT_VERSION`.
    pub format_version: u32,
    /// The worst status of any check (`ok` when all passed or were skipped).
    pub status: Verdict,
    /// Whether the run fails: a failure, or a warning under `--strict`.
    pub failed: bool,
    /// Counts per status.
    pub counts: Counts,
    /// Wall time of the run, in milliseconds.
    pub elapsed_ms: u64,
    /// Every check, grouped by area in a stable order.
    pub checks: Vec<Check>,
}

impl Report {
    /// Sorts the checks by area (keeping their order within it) and sums them up.
    pub fn new(mut checks: Vec<Check>, strict: bool, elapsed_ms: u64) -> Self {
        checks.sort_by_key(|c| c.area);
        let mut counts = Counts::default();
        for c in &checks {
            match c.status {
                Verdict::Ok => counts.ok += 1,
                Verdict::Warn => counts.warn += 1,
                Verdict::Fail => counts.fail += 1,
                Verdict::Skip => counts.skip += 1,
            }
        }
        let status = checks
            .iter()
            .map(|c| c.status)
            .filter(|s| *s != Verdict::Skip)
            .max()
            .unwrap_or(Verdict::Ok);
        let failed = counts.fail > 0 || (strict && counts.warn > 0);
        Self {
            format_version: DOCTOR_FORMAT_VERSION,
            status,
            failed,
            counts,
            elapsed_ms,
            checks,
        }
    }
}

/// Why an operation gave no answer.
#[derive(Debug)]
pub enum Problem {
    /// No answer within the check timeout.
    Timeout(Duration),
    /// The operation failed.
    Failed(GodError),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Timeout(t) => write!(f, "no answer within {}s", t.as_secs_f64()),
            Problem::Failed(e) => write!(f, "{}", first_line(&e.to_string())),
        }
    }
}

/// The first line of a message (god's errors put their hint on the next lines).
pub fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// Runs `operation` with a time limit.
pub async fn within<T>(
    limit: Duration,
    operation: impl Future<Output = crate::error::Result<T>>,
) -> Result<T, Problem> {
    match tokio::time::timeout(limit, operation).await {
        Err(_) => Err(Problem::Timeout(limit)),
        Ok(result) => result.map_err(Problem::Failed),
    }
}

/// How many objects a check lists before it only counts the rest.
pub const DETAIL_LINES: usize = 10;

/// Lists at most [`DETAIL_LINES`] items, then says how many more there are.
pub fn first_few(items: &[String]) -> Vec<String> {
    let mut out: Vec<String> = items.iter().take(DETAIL_LINES).cloned().collect();
    if items.len() > DETAIL_LINES {
        out.push(format!("... and {} more", items.len() - DETAIL_LINES));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_fail_the_run_only_when_strict() {
        let checks = vec![
            Check::ok("broker.amqp", Area::Broker, "fine"),
            Check::new("flow.consumers", Area::Flow, Verdict::Warn, "no consumer"),
            Check::skip("services.gateway", Area::Services, "not configured"),
        ];
        let relaxed = Report::new(checks.clone(), false, 0);
        assert!(!relaxed.failed);
        assert_eq!(relaxed.status, Verdict::Warn);
        assert!(Report::new(checks, true, 0).failed);
    }

    #[test]
    fn a_failure_fails_and_checks_are_grouped_by_area() {
        let checks = vec![
            Check::new("config.registry", Area::Config, Verdict::Fail, "invalid"),
            Check::ok("broker.amqp", Area::Broker, "fine"),
        ];
        let report = Report::new(checks, false, 0);
        assert!(report.failed);
        assert_eq!(report.checks[0].id, "broker.amqp");
        assert_eq!(
            report.counts,
            Counts {
                ok: 1,
                warn: 0,
                fail: 1,
                skip: 0
            }
        );
    }

    #[test]
    fn skipped_checks_alone_are_not_a_problem() {
        let report = Report::new(vec![Check::skip("x.y", Area::Flow, "n/a")], true, 0);
        assert_eq!(report.status, Verdict::Ok);
        assert!(!report.failed);
    }
}
