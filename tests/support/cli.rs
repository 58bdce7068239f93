//! Running god as a user does: the binary with a clean environment, input files in temporary
//! directories, and assertions on what it printed and how it exited.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The god binary with a clean environment.
pub fn god() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_god"));
    for var in [
        "RABBITMQ_URL",
        "RABBITMQ_MANAGEMENT_URL",
        "GOD_REGISTRY",
        "GOD_COMPONENTS",
        "GOD_PROJECT",
        "GOD_PROFILES",
        "GOD_TOPOLOGY",
        "DOCKER_HOST",
        "RABBIT_URL",
        "EXCHANGE_NAME",
        "BLOODBANK_EXCHANGE",
    ] {
        cmd.env_remove(var);
    }
    // Away from the repository, whose components.toml would add its containers to every run.
    cmd.current_dir(std::env::temp_dir());
    cmd.stdin(std::process::Stdio::null());
    cmd
}

/// Runs `god validate` on a registry file.
pub fn validate(registry: &Path) -> Output {
    god()
        .arg("--registry")
        .arg(registry)
        .arg("validate")
        .output()
        .unwrap()
}

/// Percent-encodes a path segment.
pub fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A registry file in a temporary directory.
pub fn registry(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.yaml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// A registry with the usual header (exchange `bus`) and the given services, written
/// unindented (`svc:\n  queue_name: q`): they are indented under `services:` here.
pub fn registry_with(services: &str) -> (tempfile::TempDir, PathBuf) {
    let indented: String = services.lines().map(|l| format!("  {l}\n")).collect();
    registry(&format!(
        "version: \"1.0\"\nexchange:\n  name: bus\n  type: topic\n  durable: true\nservices:\n{indented}"
    ))
}

/// One of the upstream registries in ../shared/upstream.
pub fn upstream(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/upstream")
        .join(name)
}

/// Asserts that a `plan --json` document follows schemas/plan.schema.json.
#[track_caller]
pub fn assert_plan_schema(plan: &Value) {
    assert_matches_schema(
        plan,
        include_str!("../../schemas/plan.schema.json"),
        "plan --json",
    );
}

/// Asserts that a document follows a JSON schema (given as text); `what` names the document.
#[track_caller]
pub fn assert_matches_schema(document: &Value, schema: &str, what: &str) {
    let schema: Value = serde_json::from_str(schema).expect("the schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(document)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match its schema: {errors:?}"
    );
}

/// stdout and stderr together, for assertions.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts an exit code, printing the output when it differs.
#[track_caller]
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "unexpected exit; output:\n{}",
        text(out)
    );
}

/// The check `id` of a `god doctor --json` report.
#[track_caller]
pub fn doctor_check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {report:#}"))
}

/// The ids of a `--json` plan's changes, in order.
pub fn change_ids(plan: &Value) -> Vec<&str> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect()
}
