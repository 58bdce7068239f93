//! The platform's contracts on the real broker: the gateway checks events against a Holyfields
//! tree (nested folders, `$ref`s across files by path and by `$id`, two versions of one type,
//! formats asserted), `god schema check` tells breaking from compatible changes (between two
//! folders, and against a git revision), and the upstream gateway's other routes publish what
//! upstream published.

mod support;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use support::*;

/// The schema tree of these tests (tests/schemas/tree).
fn tree() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemas/tree")
}

/// A vhost whose queue `all` takes every event, and a gateway checking them against the tree,
/// with extra environment.
fn gateway_on(v: &TestVhost, extra: &[(&str, &str)]) -> GatewayProcess {
    let (_d, registry) =
        registry_with("all:\n  queue_name: all\n  routing_keys: [\"#\"]\n  dead_letter: false\n");
    assert_exit(&v.run(&registry, &["apply", "--auto-approve"]), 0);
    let tree = tree();
    let mut env = vec![("HOLYFIELDS_SCHEMA_DIR", tree.to_str().unwrap())];
    env.extend_from_slice(extra);
    let gateway = GatewayProcess::start(&v.amqp_url(), "bus", &env);
    gateway.await_status("/health/ready", 200);
    gateway
}

fn post(g: &GatewayProcess, path: &str, body: &Value, headers: &[&str]) -> (u16, Value) {
    let (status, _, text) = g.request("POST", path, Some(body.to_string().as_bytes()), headers);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A whole theboard.meeting.created event of `version` with `payload`.
fn meeting(version: &str, payload: Value) -> Value {
    json!({
        "event_id": "0b6f6a9e-9a57-4e5c-8d2b-1d6f7b0d3c11",
        "event_type": "theboard.meeting.created",
        "timestamp": "2026-12-02T08:00:00Z",
        "version": version,
        "source": {"host": "laptop", "app": "theboard", "trigger_type": "api"},
        "correlation_ids": [],
        "payload": payload,
    })
}

fn pointers(answer: &Value) -> Vec<(String, String)> {
    answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["pointer"].as_str().unwrap().to_string(),
                e["schema"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn events_are_checked_against_the_schema_of_their_type_and_version() {
    let v = TestVhost::new("contracts");
    let g = gateway_on(&v, &[]);
    let id = "5f1d2a9c-1c2b-4e8a-9f3e-2a7d6c5b4e3f";
    let (status, answer) = post(
        &g,
        "/events/custom",
        &meeting("1.0.0", json!({"meeting_id": id, "topic": "roadmap"})),
        &[],
    );
    assert_eq!(status, 202, "{answer}");

    let (status, answer) = post(
        &g,
        "/events/custom",
        &meeting("v1", json!({"meeting_id": "not-a-uuid", "topic": ""})),
        &[],
    );
    assert_eq!(status, 422, "{answer}");
    let found = pointers(&answer);
    for pointer in ["/payload/meeting_id", "/payload/topic"] {
        assert!(
            found.contains(&(
                pointer.to_string(),
                "theboard/meeting.created.v1.schema.json".to_string()
            )),
            "{pointer} in {answer}"
        );
    }

    // The whole event is checked against v1: the base event it extends by a relative $ref.
    let mut no_timestamp = meeting("1", json!({"meeting_id": id, "topic": "t"}));
    no_timestamp["timestamp"] = json!("yesterday");
    let (status, answer) = post(&g, "/events/custom", &no_timestamp, &[]);
    assert_eq!(status, 422, "{answer}");
    assert!(
        pointers(&answer).iter().any(|(p, _)| p == "/timestamp"),
        "{answer}"
    );

    // v2, by any of the platform's spellings: its payload schema, with an email format by $id.
    for version in ["v2", "2", "2.1.0"] {
        let bad = meeting(
            version,
            json!({"meeting_id": id, "topic": "t", "organizer": "nobody"}),
        );
        let (status, answer) = post(&g, "/events/custom", &bad, &[]);
        assert_eq!(status, 422, "{version}: {answer}");
        assert_eq!(
            pointers(&answer),
            vec![(
                "/payload/organizer".to_string(),
                "theboard/meeting.created.v2.schema.json".to_string()
            )],
            "{version}"
        );
    }
    let good = meeting(
        "v2",
        json!({"meeting_id": id, "topic": "t", "organizer": "ada@example.org"}),
    );
    assert_eq!(post(&g, "/events/custom", &good, &[]).0, 202);
    let (status, answer) = post(&g, "/events/custom", &meeting("v3", json!({})), &[]);
    assert_eq!(status, 422, "no v3: {answer}");

    // A payload posted alone is checked against the payload part of a whole-event schema.
    let (status, answer) = post(
        &g,
        "/events/theboard.meeting.created",
        &json!({"topic": "t"}),
        &[],
    );
    assert_eq!(status, 422, "{answer}");
    assert!(
        pointers(&answer).iter().any(|(p, _)| p == "/payload"),
        "{answer}"
    );

    // A type without a schema passes, as upstream.
    assert_eq!(
        post(&g, "/events/shop.order.created", &json!({"any": 1}), &[]).0,
        202
    );
    assert_eq!(
        v.drain("all").len(),
        3,
        "the three accepted events were published"
    );
}

#[test]
fn with_require_schema_a_type_without_one_is_refused() {
    let v = TestVhost::new("contracts-req");
    drop(gateway_on(&v, &[]));
    let tree = tree();
    let strict = god()
        .args([
            "gateway",
            "--require-schema",
            "--listen",
            "127.0.0.1:1",
            "--schemas",
        ])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cmd/validate-schemas.in/schemas"))
        .env("RABBITMQ_URL", v.amqp_url())
        .output()
        .unwrap();
    assert_exit(&strict, 1);
    assert!(
        text(&strict).contains("duplicate $id"),
        "a tree with errors stops the gateway at start: {}",
        text(&strict)
    );
    let port = free_port();
    let mut child = god()
        .args([
            "gateway",
            "--require-schema",
            "--exchange",
            "bus",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--schemas",
        ])
        .arg(&tree)
        .env("RABBITMQ_URL", v.amqp_url())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while http_request("GET", &format!("{url}/health/ready"), None, &[]).0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway never got ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (status, _, body) = http_request(
        "POST",
        &format!("{url}/events/shop.order.created"),
        Some(b"{}"),
        &[],
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("--require-schema"), "{body}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_upstream_routes_publish_what_upstream_published() {
    let v = TestVhost::new("contracts-routes");
    let g = gateway_on(
        &v,
        &[
            ("PLANE_WEBHOOK_SECRET", "s3cret"),
            ("PLANE_INTAKE_PROJECT_ID", "p1"),
        ],
    );

    // hookd: POST /events/agent/{agent}/{action}.
    let (status, answer) = post(
        &g,
        "/events/agent/cack/message.received",
        &json!({"text": "hi"}),
        &[],
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["ok"], true);
    assert_eq!(answer["routing_key"], "agent.cack.message.received");
    let (published, properties) = v.get_with_properties("all").expect("published");
    let envelope: Value = serde_json::from_str(&published).unwrap();
    assert_eq!(envelope["event_type"], "agent.cack.message.received");
    assert_eq!(envelope["payload"], json!({"text": "hi"}));
    assert_eq!(envelope["source"]["type"], "agent");
    assert_eq!(
        properties.message_id().as_ref().map(|m| m.to_string()),
        answer["event_id"].as_str().map(str::to_string)
    );
    let (status, answer) = post(
        &g,
        "/events/agent/cack/message.received",
        &json!({"channel": "fax"}),
        &[],
    );
    assert_eq!(
        status, 422,
        "checked against agent/message.received.v1.json: {answer}"
    );
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .starts_with("Payload validation failed")
    );
    let (status, answer) = post(&g, "/events/agent/cack/dance", &json!({}), &[]);
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("Valid actions"),
        "{answer}"
    );
    let (status, _, body) = g.request("POST", "/events/agent/cack/heartbeat", Some(b"{nope"), &[]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Invalid JSON body"), "{body}");

    // The Postgres notify bridge: POST /publish.
    let (status, answer) = post(
        &g,
        "/publish",
        &json!({"event_type": "asset.created", "payload": {"id": 7}}),
        &[],
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["status"].as_str(), answer["event_type"].as_str()),
        (Some("published"), Some("asset.created"))
    );
    let envelope: Value = serde_json::from_str(&v.get("all").unwrap()).unwrap();
    assert_eq!(envelope["source"]["app"], "postgres-notify-bridge");
    assert_eq!(envelope["payload"], json!({"id": 7}));
    let (status, answer) = post(&g, "/publish", &json!({"payload": {}}), &[]);
    assert_eq!(
        (status, answer["detail"].as_str()),
        (400, Some("Missing event_type"))
    );

    // Plane webhooks: POST /event, the secret required.
    let issue = json!({"event": "issue", "action": "create", "workspace_id": "w",
        "data": {"id": "i1", "project": "p1", "sequence_id": 12, "name": "Broken build"}});
    assert_eq!(post(&g, "/event", &issue, &[]).0, 401);
    assert_eq!(post(&g, "/event?secret=wrong", &issue, &[]).0, 403);
    let (status, answer) = post(&g, "/event", &issue, &["X-Plane-Webhook-Secret: s3cret"]);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["event_type"], "webhook.plane.issue");
    assert_eq!(answer["derived_event_type"], "task.inbox.issue.created");
    let webhook: Value = serde_json::from_str(&v.get("all").unwrap()).unwrap();
    assert_eq!(webhook["payload"]["body"], issue);
    let derived: Value = serde_json::from_str(&v.get("all").unwrap()).unwrap();
    assert_eq!(derived["event_id"], answer["derived_event_id"]);
    assert_eq!(derived["payload"]["issue"]["issue_ref"], "INTAKE-12");
    let other_project =
        json!({"event": "issue", "action": "create", "data": {"id": "i2", "project": "p9"}});
    let (status, answer) = post(&g, "/event?secret=s3cret", &other_project, &[]);
    assert_eq!(
        (status, answer["derived_event_type"].clone()),
        (200, Value::Null)
    );
}

/// `god schema check --base OLD --schemas NEW`.
fn schema_check(old: &str, new: &Path) -> std::process::Output {
    god()
        .args(["schema", "check", "--base", old, "--schemas"])
        .arg(new)
        .output()
        .unwrap()
}

/// A copy of the test tree, with `edit` applied to one of its files.
fn edited_copy(file: &str, edit: impl FnOnce(&mut Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&tree(), dir.path());
    let path = dir.path().join(file);
    let mut schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut schema);
    std::fs::write(&path, serde_json::to_string_pretty(&schema).unwrap()).unwrap();
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let target = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn schema_check_fails_on_breaking_changes_and_passes_compatible_ones() {
    let old = tree();
    let old = old.to_str().unwrap();
    let breaking = edited_copy("theboard/meeting.created.v1.schema.json", |s| {
        let payload = &mut s["properties"]["payload"];
        payload["required"]
            .as_array_mut()
            .unwrap()
            .push(json!("room"));
        payload["properties"]
            .as_object_mut()
            .unwrap()
            .remove("rounds");
        payload["properties"]["topic"]["minLength"] = json!(5);
        payload["additionalProperties"] = json!(false);
    });
    let out = schema_check(old, breaking.path());
    assert_exit(&out, 1);
    let shown = text(&out);
    for expected in [
        "theboard/meeting.created.v1.schema.json#/properties/payload/required: new required property \"room\"",
        "theboard/meeting.created.v1.schema.json#/properties/payload/properties/rounds: property \"rounds\" removed",
        "theboard/meeting.created.v1.schema.json#/properties/payload/properties/topic/minLength: bound tightened: minLength 1 -> 5",
        "theboard/meeting.created.v1.schema.json#/properties/payload/additionalProperties: additionalProperties closed",
    ] {
        assert!(
            shown.contains(expected),
            "missing {expected:?} in:\n{shown}"
        );
    }

    let enum_narrowed = edited_copy("agent/message.received.v1.json", |s| {
        s["properties"]["channel"]["enum"] = json!(["slack", "cli"]);
        s["properties"]["text"]["type"] = json!("integer");
    });
    let shown = text(&schema_check(old, enum_narrowed.path()));
    assert!(
        shown.contains("#/properties/channel/enum: enum value \"voice\" removed"),
        "{shown}"
    );
    assert!(
        shown.contains("#/properties/text/type: type narrowed"),
        "{shown}"
    );

    // A change in a shared file breaks every event that includes it.
    let shared = edited_copy("_common/base_event.v1.json", |s| {
        s["required"]
            .as_array_mut()
            .unwrap()
            .push(json!("correlation_id"));
    });
    let shown = text(&schema_check(old, shared.path()));
    assert!(
        shown.contains("agent/feedback/requested.v1.json#/required: new required property \"correlation_id\"")
            && shown.contains("theboard/meeting.created.v1.schema.json#/required: new required property \"correlation_id\""),
        "{shown}"
    );

    let compatible = edited_copy("theboard/meeting.created.v2.schema.json", |s| {
        s["properties"]["notes"] = json!({"type": "string"});
        s["required"] = json!(["meeting_id", "topic"]);
        s["properties"]["topic"]["type"] = json!(["string", "null"]);
    });
    let v3 = compatible
        .path()
        .join("theboard/meeting.created.v3.schema.json");
    std::fs::write(
        &v3,
        r#"{"type": "object", "required": ["meeting_id", "title", "room"]}"#,
    )
    .unwrap();
    let out = schema_check(old, compatible.path());
    assert_exit(&out, 0);
    assert!(
        text(&out).contains("0 breaking change(s)"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("new: theboard.meeting.created v3"),
        "a new version is free: {}",
        text(&out)
    );
}

#[test]
fn schema_check_compares_with_a_git_revision_of_the_same_tree() {
    let repo = tempfile::tempdir().unwrap();
    let schemas = repo.path().join("schemas");
    copy_tree(&tree(), &schemas);
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .current_dir(repo.path())
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "contracts"]);
    assert_exit(&schema_check("git:HEAD", &schemas), 0);
    let path = schemas.join("agent/message.received.v1.json");
    let edited = std::fs::read_to_string(&path).unwrap().replace(
        r#""required": ["text"]"#,
        r#""required": ["text", "channel"]"#,
    );
    std::fs::write(&path, edited).unwrap();
    let out = schema_check("git:HEAD", &schemas);
    assert_exit(&out, 1);
    assert!(
        text(&out).contains(
            "agent/message.received.v1.json#/required: new required property \"channel\""
        ),
        "{}",
        text(&out)
    );
    let out = schema_check("git:no-such-revision", &schemas);
    assert_exit(&out, 1);
    assert!(text(&out).contains("no-such-revision"), "{}", text(&out));
}

#[test]
fn the_builtin_gateway_container_checks_events_against_the_tree_components_toml_mounts() {
    let v = TestVhost::new("contracts-builtin");
    let p = TestProject::new("contracts-builtin");
    copy_tree(&tree(), &p.dir.path().join("holyfields/schemas"));
    let (_d, registry) =
        registry_with("all:\n  queue_name: all\n  routing_keys: [\"#\"]\n  dead_letter: false\n");
    let port = free_port();
    p.write(&builtin_component(
        "gateway",
        port,
        "/health/ready",
        "schemas = \"holyfields/schemas\"",
    ));
    assert_exit(
        &p.run_with_broker(&registry, &v.amqp_url(), &["apply", "--auto-approve"]),
        0,
    );
    let env = p.inspect("gateway").unwrap()["Config"]["Env"].to_string();
    assert!(env.contains("HOLYFIELDS_SCHEMA_DIR=/schemas"), "{env}");

    let url = format!("http://127.0.0.1:{port}/events/agent.message.received");
    let send = |body: &str| http_request("POST", &url, Some(body.as_bytes()), &[]);
    let (status, _, answer) = send(r#"{"channel": "fax"}"#);
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer.contains("agent/message.received.v1.json"),
        "the answer names the schema file: {answer}"
    );
    assert_eq!(send(r#"{"text": "hello", "channel": "cli"}"#).0, 202);
    assert!(v.await_message("all").is_some());

    p.write(&builtin_component(
        "relay",
        port,
        "/health",
        "schemas = \"holyfields/schemas\"",
    ));
    let refused = p.run(&["plan"]);
    assert_exit(&refused, 1);
    assert!(
        text(&refused).contains("components.toml:5:11: component \"relay\" is not god's gateway"),
        "a tree on another service is refused at its line: {}",
        text(&refused)
    );
    p.write(&builtin_component(
        "gateway",
        port,
        "/health/ready",
        "schemas = \"holyfields/schema\"",
    ));
    let missing = p.run(&["plan"]);
    assert_exit(&missing, 1);
    assert!(
        text(&missing).contains("holyfields/schema is not a directory"),
        "{}",
        text(&missing)
    );
}
