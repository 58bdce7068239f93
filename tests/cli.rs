//! The offline commands (validate, render) and the CLI contract, without any server.

mod support;

use support::*;

#[test]
fn every_upstream_registry_validates_and_renders() {
    let dir = upstream("");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !(name.starts_with("registry-") && name.ends_with(".yaml")) {
            continue;
        }
        seen += 1;
        let out = validate(&path);
        assert_exit(&out, 0);
        for format in ["yaml", "json"] {
            let out = god()
                .args(["render", "--format", format, "--registry"])
                .arg(&path)
                .output()
                .unwrap();
            assert_exit(&out, 0);
            let again = god()
                .args(["render", "--format", format, "--registry"])
                .arg(&path)
                .output()
                .unwrap();
            assert_eq!(out.stdout, again.stdout, "render must be stable");
        }
    }
    assert_eq!(seen, 3, "the three upstream registries");
}

#[test]
fn rendered_json_pairs_queue_names_by_position() {
    let out = god()
        .args(["render", "--format", "json", "--registry"])
        .arg(upstream("registry-2026-05-main.yaml"))
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pairs: Vec<(String, String)> = doc["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| {
            b["destination"]
                .as_str()
                .unwrap()
                .starts_with("services.theboard.")
        })
        .map(|b| {
            (
                b["destination"].as_str().unwrap().to_string(),
                b["routing_key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        pairs.len(),
        5,
        "one binding per paired queue, not a cross product: {pairs:?}"
    );
    assert!(pairs.contains(&(
        "services.theboard.decision_analysis".into(),
        "decision.analysis.required".into()
    )));
    let planned: Vec<&str> = doc["inactive_services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    assert!(planned.contains(&"event-store-manager"));
}

#[test]
fn global_options_are_accepted_before_and_after_the_subcommand() {
    let path = upstream("registry-2026-01-initial.yaml");
    let before = god()
        .arg("--registry")
        .arg(&path)
        .arg("validate")
        .output()
        .unwrap();
    let after = god()
        .arg("validate")
        .arg("--registry")
        .arg(&path)
        .output()
        .unwrap();
    assert_exit(&before, 0);
    assert_eq!(before.stdout, after.stdout);
}

#[test]
fn the_repository_inputs_validate_and_agree() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = validate_in(root);
    assert_exit(&out, 0);
    let shown = text(&out);
    assert!(shown.contains("registry.yaml is valid"), "{shown}");
    assert!(shown.contains("components.toml is valid"), "{shown}");
    assert!(
        shown.contains("docker-compose.yml agrees with components.toml"),
        "{shown}"
    );
}

/// Runs `god validate` in a directory, finding its inputs there.
fn validate_in(dir: &std::path::Path) -> std::process::Output {
    god().current_dir(dir).arg("validate").output().unwrap()
}

#[test]
fn completions_and_the_man_page_cover_every_command() {
    for (shell, marker) in [
        ("bash", "_god()"),
        ("zsh", "#compdef god"),
        ("fish", "complete -c god"),
    ] {
        let out = god().args(["completions", shell]).output().unwrap();
        assert_exit(&out, 0);
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: no {marker}");
        for command in ["plan", "apply", "doctor", "graph"] {
            assert!(
                script.contains(command),
                "{shell} completion lacks {command}"
            );
        }
    }
    let out = god().args(["completions", "tcsh"]).output().unwrap();
    assert_exit(&out, 1);
    let out = god().arg("man").output().unwrap();
    assert_exit(&out, 0);
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH god 1"),
        "{page}"
    );
    assert!(
        page.contains("doctor") && page.contains("Exit codes"),
        "{page}"
    );
}

#[test]
fn graph_draws_the_upstream_registry_offline_in_both_formats() {
    let registry = upstream("registry-2026-05-main.yaml");
    let mermaid = god()
        .arg("--registry")
        .arg(&registry)
        .arg("graph")
        .output()
        .unwrap();
    assert_exit(&mermaid, 0);
    let mermaid = String::from_utf8_lossy(&mermaid.stdout);
    assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
    assert!(
        mermaid.contains("x_bloodbank_events_v1 -->|\"theboard.meeting.trigger\"| q_services_theboard_meeting_trigger"),
        "{mermaid}"
    );
    assert!(mermaid.contains("-.->|\"dead letters\"| dlq_services_tonny_agent_dlq"));
    let dot = god()
        .arg("--registry")
        .arg(&registry)
        .args(["graph", "--format", "dot"])
        .output()
        .unwrap();
    assert_exit(&dot, 0);
    let dot = String::from_utf8_lossy(&dot.stdout);
    assert!(
        dot.starts_with("digraph god {") && dot.trim_end().ends_with('}'),
        "{dot}"
    );
}

#[test]
fn mise_tasks_are_plain_shell_lines_that_work_without_mise() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("mise.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    let tasks = manifest["tasks"].as_table().unwrap();
    for task in ["build", "plan", "deploy", "health", "graph", "test"] {
        let run = tasks[task]["run"].as_str().unwrap();
        let program = run.split_whitespace().next().unwrap();
        let program = program.trim_start_matches("${GOD:-").trim_end_matches('}');
        assert!(
            program == "cargo" || root.join(program).is_file(),
            "task {task} runs {program}, which is not in the repository"
        );
    }
    // The graph task, as a person without mise would run it (GOD points at the tested binary).
    let graph = tasks["graph"]["run"].as_str().unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{graph} --format dot"))
        .current_dir(root)
        .env("GOD", env!("CARGO_BIN_EXE_god"))
        .env_remove("GOD_REGISTRY")
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("digraph god {"));
}
