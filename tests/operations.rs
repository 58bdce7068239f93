//! The operator's day on the real engine: `god ps`, `logs`, `restart` and `down`, `.env`
//! beside components.toml, and a renamed component replacing its old container.

mod support;

use serde_json::Value;
use support::*;

/// db: a shell that prints two lines and sleeps, mounting a volume, on a network of the
/// project, healthy by an engine check; web: busybox httpd on the host network, healthy by
/// god's HTTP probe, after db.
fn stack(port: u16) -> String {
    format!(
        r#"[networks.net]
[volumes.data]

[components.db]
image = "busybox:local"
command = ["/bin/sh", "-c", "echo db up; echo greeting=$GREETING; exec sleep 600"]
env = {{ GREETING = "${{GREETING:-none}}" }}
volumes = ["data:/data"]
networks = ["net"]

[components.db.healthcheck]
test = ["CMD", "/bin/busybox", "true"]
interval = "500ms"
retries = 20

[components.web]
image = "busybox:local"
command = ["/bin/busybox", "httpd", "-f", "-v", "-p", "127.0.0.1:{port}", "-h", "/www"]
network_mode = "host"
depends_on = ["db"]

[components.web.healthcheck]
http = "http://127.0.0.1:{port}/"
interval = "500ms"
retries = 20
"#
    )
}

fn up(p: &TestProject) {
    p.write(&stack(free_port()));
    assert_exit(&p.run(&["apply", "--auto-approve"]), 0);
}

fn ps(p: &TestProject) -> Vec<Value> {
    let out = p.operate(&["ps", "--json"]);
    assert_exit(&out, 0);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["project"], p.name.as_str());
    doc["containers"].as_array().unwrap().clone()
}

fn row<'a>(rows: &'a [Value], component: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["component"] == component)
        .unwrap_or_else(|| panic!("no {component} in {rows:#?}"))
}

fn names_on_engine(kind: &str, project: &str) -> Vec<String> {
    docker(&[kind, "ls", "--format", "{{.Name}}"])
        .unwrap()
        .lines()
        .filter(|n| n.contains(project))
        .map(str::to_string)
        .collect()
}

#[test]
fn ps_lists_state_health_ports_and_components_without_a_container() {
    let p = TestProject::new("ps");
    up(&p);
    let rows = ps(&p);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let db = row(&rows, "db");
    assert_eq!(db["state"], "running");
    assert_eq!(db["health"], "healthy");
    assert_eq!(db["container"], format!("{}-db", p.name));
    assert!(db["uptime_seconds"].as_u64().is_some(), "{db}");
    assert_eq!(
        row(&rows, "web")["health"],
        Value::Null,
        "god's probe, not the engine's"
    );

    docker(&["stop", "-t", "1", &format!("{}-web", p.name)]).unwrap();
    let rows = ps(&p);
    let web = row(&rows, "web");
    assert_eq!(web["state"], "exited");
    assert!(web["exit_code"].is_i64(), "{web}");
    assert_eq!(web["uptime_seconds"], Value::Null);

    docker(&["rm", "-f", &format!("{}-web", p.name)]).unwrap();
    assert_eq!(row(&ps(&p), "web")["state"], "absent");
    let table = text(&p.operate(&["ps"]));
    assert!(table.starts_with("COMPONENT"), "{table}");
    assert!(
        table.contains("healthy") && table.contains("absent"),
        "{table}"
    );
}

#[test]
fn logs_show_each_containers_output_after_its_component() {
    let p = TestProject::new("logs");
    up(&p);
    let out = p.operate(&["logs", "db"]);
    assert_exit(&out, 0);
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(shown.contains("db | db up"), "{shown}");
    assert!(shown.contains("db | greeting=none"), "{shown}");
    assert!(
        !shown.contains("\x1b["),
        "no colour when not on a terminal: {shown:?}"
    );

    let last = p.operate(&["logs", "db", "--tail", "1", "--timestamps"]);
    let last = String::from_utf8_lossy(&last.stdout).to_string();
    assert_eq!(last.lines().count(), 1, "{last}");
    assert!(
        last.contains("greeting=none") && last.contains("Z "),
        "{last}"
    );

    let both = String::from_utf8_lossy(&p.operate(&["logs", "--since", "1h"]).stdout).to_string();
    assert!(
        both.contains("db  | db up"),
        "names padded to one width: {both}"
    );
    assert!(both.lines().any(|l| l.starts_with("web | ")), "{both}");

    let unknown = p.operate(&["logs", "nope"]);
    assert_exit(&unknown, 1);
    assert!(text(&unknown).contains("db, web"), "{}", text(&unknown));
}

#[test]
fn restart_restarts_in_place_and_waits_for_health() {
    let p = TestProject::new("restart");
    up(&p);
    let id = p.inspect("web").unwrap()["Id"].clone();
    let started = p.inspect("web").unwrap()["State"]["StartedAt"].clone();
    let out = p.operate(&["restart", "web"]);
    assert_exit(&out, 0);
    assert!(text(&out).contains("Restart complete"), "{}", text(&out));
    let after = p.inspect("web").unwrap();
    assert_eq!(after["Id"], id, "the same container");
    assert_ne!(after["State"]["StartedAt"], started, "started again");
    assert_eq!(row(&ps(&p), "web")["state"], "running");

    let unknown = p.operate(&["restart", "nope"]);
    assert_exit(&unknown, 1);
    assert!(
        text(&unknown).contains("the components are: db, web"),
        "{}",
        text(&unknown)
    );
}

#[test]
fn down_removes_containers_and_networks_keeps_volumes_and_never_touches_a_foreign_container() {
    let p = TestProject::new("down");
    up(&p);
    let foreign = format!("{}-foreign", p.name);
    docker(&[
        "run",
        "-d",
        "--name",
        &foreign,
        "--network",
        "none",
        "busybox:local",
        "/bin/busybox",
        "sleep",
        "600",
    ])
    .unwrap();
    let out = p.operate(&["down"]);
    assert_exit(&out, 0);
    let shown = text(&out);
    let web = shown.find(&format!("- container {}-web", p.name)).unwrap();
    let db = shown.find(&format!("- container {}-db", p.name)).unwrap();
    assert!(web < db, "dependents first: {shown}");
    assert!(shown.contains("--volumes removes it"), "{shown}");
    assert!(p.inspect("web").is_none() && p.inspect("db").is_none());
    assert!(names_on_engine("network", &p.name).is_empty());
    assert_eq!(
        names_on_engine("volume", &p.name),
        [format!("{}_data", p.name)]
    );
    assert!(
        docker(&["inspect", &foreign]).is_ok(),
        "the foreign container is still there"
    );
    docker(&["rm", "-f", &foreign]).unwrap();

    // --volumes asks first: without a terminal nothing is removed unless approved.
    up(&p);
    let refused = p.operate(&["down", "--volumes"]);
    assert_exit(&refused, 1);
    assert!(p.inspect("db").is_some(), "nothing removed");
    assert_exit(&p.operate(&["down", "--volumes", "--auto-approve"]), 0);
    assert!(names_on_engine("volume", &p.name).is_empty());
    assert_exit(&p.operate(&["down"]), 0);
}

#[test]
fn a_dotenv_value_reaches_the_container_and_the_process_environment_wins() {
    let p = TestProject::new("dotenv");
    let port = free_port();
    p.write(&stack(port).replace("${GREETING:-none}", "${GREETING}"));
    std::fs::write(
        p.dir.path().join(".env"),
        "# the platform's habit\nGREETING=\"from .env\"\n",
    )
    .unwrap();
    assert_exit(&p.run(&["apply", "--auto-approve"]), 0);
    let env = p.inspect("db").unwrap()["Config"]["Env"].to_string();
    assert!(env.contains("GREETING=from .env"), "{env}");

    let out = god()
        .env("GREETING", "from the shell")
        .arg("--components")
        .arg(p.dir.path().join("components.toml"))
        .args(["--project", &p.name, "plan", "--only", "docker"])
        .output()
        .unwrap();
    assert!(
        text(&out).contains("-/+ recreate container"),
        "{}",
        text(&out)
    );

    let other = p.dir.path().join("other.env");
    std::fs::write(&other, "GREETING=elsewhere\n").unwrap();
    let with_file = p.run(&["plan", "--env-file", other.to_str().unwrap()]);
    assert!(
        text(&with_file).contains("-/+ recreate"),
        "{}",
        text(&with_file)
    );
}

#[test]
fn a_variable_set_nowhere_is_an_error_naming_it_and_the_file() {
    let p = TestProject::new("novar");
    let path = p.write(&stack(free_port()).replace("${GREETING:-none}", "${GOD_TEST_NEVER_SET}"));
    let out = p.run(&["plan"]);
    assert_exit(&out, 1);
    let shown = text(&out);
    assert!(shown.contains("$GOD_TEST_NEVER_SET is not set"), "{shown}");
    assert!(shown.contains(&format!("{}:", path.display())), "{shown}");
    assert!(shown.contains(".env"), "the hint names .env: {shown}");
    assert!(!shown.contains("panicked"), "{shown}");

    let missing = p.run(&["plan", "--env-file", "/nonexistent/.env"]);
    assert_exit(&missing, 1);
    assert!(text(&missing).contains("--env-file /nonexistent/.env: no such file"));
}

#[test]
fn a_renamed_component_replaces_its_old_container_instead_of_running_beside_it() {
    let p = TestProject::new("rename");
    let port = free_port();
    let old = stack(port);
    p.write(&old);
    assert_exit(&p.run(&["apply", "--auto-approve"]), 0);
    let renamed = old
        .replace(
            "[components.web]",
            "[components.site]\nrenamed_from = [\"web\"]",
        )
        .replace(
            "[components.web.healthcheck]",
            "[components.site.healthcheck]",
        );
    p.write(&renamed);
    let plan = p.run(&["plan", "--json"]);
    assert_exit(&plan, 0);
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    let changes = plan["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{plan:#}");
    assert_eq!(changes[0]["action"], "replace");
    assert!(
        changes[0]["cause"]
            .as_str()
            .unwrap()
            .contains("component web is now site")
    );
    assert_exit(&p.run(&["apply", "--auto-approve"]), 0);
    assert!(p.inspect("web").is_none(), "the old container is gone");
    assert_eq!(p.inspect("site").unwrap()["State"]["Running"], true);
    let converged = p.run(&["plan", "--detailed-exitcode"]);
    assert_exit(&converged, 0);
}

/// A worker that finishes its work on SIGTERM: it writes `/out/<marker>` and exits 0. With
/// `grace`, its component sets `stop_grace_period`.
fn worker(marker: &str, grace: Option<&str>) -> String {
    let grace = grace.map_or(String::new(), |g| format!("stop_grace_period = \"{g}\"\n"));
    format!(
        r#"[components.worker]
image = "busybox:local"
command = ["/bin/sh", "-c", "trap 'echo finished > /out/{marker}; exit 0' TERM; echo started; while true; do sleep 1; done"]
volumes = ["./out:/out"]
network_mode = "none"
{grace}"#
    )
}

#[test]
fn a_stop_grace_period_lets_the_process_finish_on_sigterm_before_a_recreate_or_down_removes_it() {
    let p = TestProject::new("grace");
    let out = p.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    p.write(&worker("first", Some("20s")));
    assert_exit(&p.run(&["apply", "--auto-approve"]), 0);

    // A changed command recreates the container: the old one is stopped, not killed.
    p.write(&worker("second", Some("20s")));
    let started = std::time::Instant::now();
    assert_exit(&p.run(&["apply", "--auto-approve"]), 0);
    assert!(
        out.join("first").exists(),
        "the replaced container got SIGTERM and finished"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "god waited for the process, not for the whole grace period: {:?}",
        started.elapsed()
    );

    let started = std::time::Instant::now();
    assert_exit(&p.operate(&["down"]), 0);
    assert!(
        out.join("second").exists(),
        "down stopped the container before removing it"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    assert!(p.inspect("worker").is_none());

    // Without a grace period the container is removed at once, as `docker rm -f` does.
    p.write(&worker("third", None));
    assert_exit(&p.run(&["apply", "--auto-approve"]), 0);
    assert_exit(&p.operate(&["down"]), 0);
    assert!(p.inspect("worker").is_none());
    assert!(!out.join("third").exists(), "killed, not stopped");
}
