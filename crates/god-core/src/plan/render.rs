//! Printing plans: the human form (terraform-like) and the JSON form (`schemas/plan.schema.json`).

use std::fmt::Write;

use super::{Action, Change, NoteKind, Plan, Resource, ResourceKind};
use crate::model::format_arguments;

/// The plan for a person: one line per change with its cause, details under destructive
/// changes, the notes, and the closing `Plan: [N to adopt, ]N to add, N to change, N to
/// destroy.` line.
pub fn human(plan: &Plan, target: &str) -> String {
    let mut out = String::new();
    match (&plan.vhost, &plan.project) {
        (None, Some(project)) => {
            let _ = writeln!(out, "god plan for container project \"{project}\"");
        }
        (Some(vhost), Some(project)) => {
            let _ = writeln!(
                out,
                "god plan for vhost \"{vhost}\" on {target} and container project \"{project}\""
            );
        }
        (vhost, None) => {
            let vhost = vhost.as_deref().unwrap_or_default();
            let _ = writeln!(out, "god plan for vhost \"{vhost}\" on {target}");
        }
    }
    if plan.changes.is_empty() {
        let _ = writeln!(out, "\nNo changes. Everything matches the inputs.");
    } else {
        let _ = writeln!(out);
        for change in &plan.changes {
            out.push_str(&change_lines(change));
        }
    }
    out.push_str(&notes(plan));
    let _ = writeln!(
        out,
        "\nPlan: {}{} to add, {} to change, {} to destroy.",
        plan.summary.adopted_prefix("to adopt"),
        plan.summary.add,
        plan.summary.change,
        plan.summary.destroy
    );
    let blocked = plan.changes.iter().filter(|c| c.blocked.is_some()).count();
    if blocked > 0 {
        let _ = writeln!(
            out,
            "{blocked} change{} will be refused by apply (marked REFUSED above).",
            if blocked == 1 { "" } else { "s" }
        );
    }
    out
}

fn change_lines(change: &Change) -> String {
    let mut out = String::new();
    let verb = match (change.action, change.kind) {
        (Action::Adopt, _) => "adopt ",
        (Action::Replace, ResourceKind::Container) => "recreate ",
        (Action::Replace, _) => "replace ",
        (Action::Update, ResourceKind::Container) => "restart ",
        _ => "",
    };
    let resource = change.resource();
    let description = resource.map(describe).unwrap_or_else(|| change.id.clone());
    let _ = writeln!(
        out,
        "{:>4} {verb}{description}\n       # {}",
        change.action.symbol(),
        change.cause
    );
    if let Some(messages) = change
        .messages
        .filter(|m| *m > 0 || change.action == Action::Replace)
    {
        let _ = writeln!(
            out,
            "       # holds {messages} message{}",
            if messages == 1 { "" } else { "s" }
        );
    }
    for line in &change.diff {
        let _ = writeln!(out, "         {line}");
    }
    if let Some(why) = &change.blocked {
        let _ = writeln!(out, "       REFUSED: {why}");
    }
    out
}

/// A one-line description of an object: `queue NAME (durable, args)`.
pub fn describe(resource: &Resource) -> String {
    match resource {
        Resource::Exchange(e) => {
            let mut flags = vec![e.kind.to_string()];
            if e.durable {
                flags.push("durable".into());
            }
            if e.auto_delete {
                flags.push("auto-delete".into());
            }
            if e.internal {
                flags.push("internal".into());
            }
            if !e.arguments.is_empty() {
                flags.push(format_arguments(&e.arguments));
            }
            format!("exchange {} ({})", e.name, flags.join(", "))
        }
        Resource::Queue(q) => {
            let mut flags = vec![if q.durable { "durable" } else { "transient" }.to_string()];
            if q.auto_delete {
                flags.push("auto-delete".into());
            }
            if !q.arguments.is_empty() {
                flags.push(format_arguments(&q.arguments));
            }
            format!("queue {} ({})", q.name, flags.join(", "))
        }
        Resource::Binding(b) => {
            let dest = b.destination_type.as_str();
            let args = if b.arguments.is_empty() {
                String::new()
            } else {
                format!(" {}", format_arguments(&b.arguments))
            };
            format!(
                "binding {} -> {dest} {} [{}]{args}",
                b.source, b.destination, b.routing_key
            )
        }
        Resource::Container(c) if c.image.is_empty() => format!("container {}", c.name),
        Resource::Container(c) => {
            let mut flags = vec![c.image.clone()];
            if let Some(mode) = &c.network_mode {
                flags.push(format!("network {mode}"));
            }
            for (network, aliases) in &c.networks {
                match aliases.is_empty() {
                    true => flags.push(format!("network {network}")),
                    false => flags.push(format!("network {network} as {}", aliases.join(", "))),
                }
            }
            flags.extend(c.ports.iter().map(|p| format!("port {p}")));
            format!("container {} ({})", c.name, flags.join(", "))
        }
        Resource::Network(n) if n.driver.is_empty() => format!("network {}", n.name),
        Resource::Network(n) => format!("network {} ({})", n.name, n.driver),
        Resource::Volume(v) if v.driver.is_empty() => format!("volume {}", v.name),
        Resource::Volume(v) => format!("volume {} ({})", v.name, v.driver),
        Resource::Policy(p) => format!("policy {}", policy_description(p)),
        Resource::OperatorPolicy(p) => format!("operator policy {}", policy_description(p)),
        Resource::Limit(l) => format!("vhost limit {} = {}", l.name, l.value),
    }
}

fn policy_description(p: &crate::model::PolicySpec) -> String {
    format!(
        "{} (pattern {}, apply-to {}, priority {}, {})",
        p.name,
        p.pattern,
        p.apply_to,
        p.priority,
        format_arguments(&p.definition)
    )
}

fn notes(plan: &Plan) -> String {
    let mut out = String::new();
    let sections = [
        (
            NoteKind::Orphan,
            "Orphaned (no longer in registry.yaml or topology/; not counted as changes):",
        ),
        (NoteKind::Deprecated, "Deprecated services:"),
        (NoteKind::Skipped, "Skipped services:"),
        (NoteKind::Info, "Notes:"),
        (
            NoteKind::Unavailable,
            "Unavailable (on a node that is down; left alone, with their bindings, until it is back):",
        ),
    ];
    for (kind, title) in sections {
        let lines: Vec<String> = plan
            .notes
            .iter()
            .filter(|n| n.kind == kind)
            .map(|n| format!("  {}: {}", n.id, n.message))
            .collect();
        if !lines.is_empty() {
            let _ = writeln!(out, "\n{title}\n{}", lines.join("\n"));
        }
    }
    out
}

/// The plan as JSON, pretty-printed and stable.
pub fn json(plan: &Plan) -> String {
    serde_json::to_string_pretty(plan).expect("a plan serialises") + "\n"
}
