//! The doctor report as a table grouped by area (coloured on a terminal), or as JSON.

use super::check::{Check, Report, Verdict};

/// ANSI colours, or none (piped output, `NO_COLOR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    /// Escape sequences.
    On,
    /// Plain text.
    Off,
}

impl Colour {
    fn paint(self, code: &str, text: &str) -> String {
        match self {
            Colour::On => format!("\x1b[{code}m{text}\x1b[0m"),
            Colour::Off => text.to_string(),
        }
    }
}

fn label(status: Verdict, colour: Colour) -> String {
    let (code, word) = match status {
        Verdict::Ok => ("32", "ok  "),
        Verdict::Skip => ("2", "skip"),
        Verdict::Warn => ("33", "warn"),
        Verdict::Fail => ("1;31", "FAIL"),
    };
    colour.paint(code, word)
}

/// The report as a table: a heading per area, a line per check, its details and fix below.
pub fn table(report: &Report, heading: &str, colour: Colour) -> String {
    let width = report.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
    let mut out = format!("{heading}\n");
    let mut area = None;
    for check in &report.checks {
        if area != Some(check.area) {
            area = Some(check.area);
            out.push_str(&format!("\n{}\n", colour.paint("1", check.area.title())));
        }
        out.push_str(&check_lines(check, width, colour));
    }
    out.push_str(&format!("\n{}\n", summary_line(report, colour)));
    out
}

/// The report in a few lines (`god doctor --summary`): the checks that warn or fail, one line
/// each, then the verdict.
pub fn summary(report: &Report, heading: &str, colour: Colour) -> String {
    let width = report.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
    let mut out = format!("{heading}\n");
    for check in report
        .checks
        .iter()
        .filter(|c| matches!(c.status, Verdict::Warn | Verdict::Fail))
    {
        out.push_str(&format!(
            "  {}  {:<width$}  {}\n",
            label(check.status, colour),
            check.id,
            check.summary
        ));
    }
    out.push_str(&format!("{}\n", summary_line(report, colour)));
    out
}

fn check_lines(check: &Check, width: usize, colour: Colour) -> String {
    let indent = " ".repeat(width + 10);
    let mut out = format!(
        "  {}  {:<width$}  {}\n",
        label(check.status, colour),
        check.id,
        check.summary
    );
    for detail in &check.details {
        out.push_str(&format!("{indent}- {detail}\n"));
    }
    if let Some(fix) = &check.fix {
        out.push_str(&format!("{indent}{} {fix}\n", colour.paint("36", "fix:")));
    }
    out
}

fn summary_line(report: &Report, colour: Colour) -> String {
    let c = report.counts;
    let text = format!(
        "{} ok, {} warning(s), {} failed, {} skipped in {:.2}s",
        c.ok,
        c.warn,
        c.fail,
        c.skip,
        report.elapsed_ms as f64 / 1000.0
    );
    let verdict = if report.failed {
        colour.paint("1;31", "unhealthy")
    } else if c.warn > 0 {
        colour.paint("33", "healthy, with warnings")
    } else {
        colour.paint("32", "healthy")
    };
    format!("{verdict}: {text}")
}

/// The report as pretty JSON (`schemas/doctor.schema.json`).
pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("reports serialise")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::{Area, Check};

    #[test]
    fn the_summary_lists_only_what_warns_or_fails() {
        let text = summary(&report(), "god doctor", Colour::Off);
        assert!(text.contains("FAIL  flow.relay"), "{text}");
        assert!(!text.contains("broker.amqp"), "{text}");
        assert!(!text.contains("restart the relay"), "no fixes: {text}");
        assert!(text.trim_end().ends_with("skipped in 0.12s"), "{text}");
    }

    fn report() -> Report {
        let checks = vec![
            Check::ok("broker.amqp", Area::Broker, "AMQP login accepted"),
            Check::new(
                "flow.relay",
                Area::Flow,
                Verdict::Fail,
                "relay bound with agent.#",
            )
            .with_details(vec!["queue amq.gen-1".into()])
            .with_fix("restart the relay"),
        ];
        Report::new(checks, false, 120)
    }

    #[test]
    fn plain_tables_have_headings_details_fixes_and_no_escapes() {
        let text = table(&report(), "god doctor", Colour::Off);
        assert!(!text.contains('\x1b'));
        for expected in [
            "\nBroker\n",
            "\nFlow\n",
            "FAIL  flow.relay   relay bound with agent.#",
            "- queue amq.gen-1",
            "fix: restart the relay",
            "unhealthy: 1 ok, 0 warning(s), 1 failed, 0 skipped in 0.12s",
        ] {
            assert!(text.contains(expected), "{expected:?} not in\n{text}");
        }
    }

    #[test]
    fn terminals_get_colours() {
        assert!(table(&report(), "god doctor", Colour::On).contains("\x1b[1;31mFAIL"));
    }
}
