//! god plan / god apply for containers, against the real Docker engine. Every test has its own
//! project label; the containers serve HTTP with busybox on host networking, on loopback ports.

mod support;

use indoc::indoc;
use serde_json::Value;
use support::*;

/// A web server component on `port`, healthy when it answers.
fn httpd(name: &str, port: u16, extra: &str) -> String {
    format!(
        "[components.{name}]\nimage = \"busybox:local\"\ncommand = [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"127.0.0.1:{port}\", \"-h\", \"/www\"]\nnetwork_mode = \"host\"\n{extra}\n[components.{name}.healthcheck]\ntest = [\"CMD\", \"/bin/busybox\", \"wget\", \"-q\", \"-O-\", \"http://127.0.0.1:{port}/\"]\ninterval = \"1s\"\ntimeout = \"2s\"\nretries = 10\n\n"
    )
}

fn plan_json(p: &TestProject) -> Value {
    let out = p.run(&["plan", "--json"]);
    assert_exit(&out, 0);
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_plan_schema(&plan);
    plan
}

fn started_at(p: &TestProject, component: &str) -> String {
    p.inspect(component).unwrap()["State"]["StartedAt"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn containers_are_created_in_dependency_order_then_converged_then_recreated_on_change() {
    let p = TestProject::new("order");
    let (db, web) = (free_port(), free_port());
    let components = |mode: &str| {
        format!(
            "[components]\nbloodbank = {{ path = \"bloodbank\", kind = \"submodule\", enabled = true }}\n\n{}{}",
            httpd(
                "web",
                web,
                &format!("depends_on = [\"db\"]\nenv = {{ MODE = \"{mode}\" }}")
            ),
            httpd("db", db, "")
        )
    };
    p.write(&components("demo"));
    let plan = plan_json(&p);
    let ids = change_ids(&plan);
    assert_eq!(
        ids,
        vec![
            format!("container/{}-db", p.name),
            format!("container/{}-web", p.name)
        ]
    );

    let out = p.run(&["apply", "--auto-approve"]);
    assert_exit(&out, 0);
    assert!(
        started_at(&p, "db") < started_at(&p, "web"),
        "db starts before web, which depends on it"
    );
    let labels = &p.inspect("web").unwrap()["Config"]["Labels"];
    assert_eq!(labels["god.project"], p.name.as_str());
    assert_eq!(labels["god.component"], "web");
    assert_exit(&p.run(&["plan", "--detailed-exitcode"]), 0);

    p.write(&components("live"));
    let plan = plan_json(&p);
    let changes = plan["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{plan:#}");
    assert_eq!(changes[0]["action"], "replace");
    assert_eq!(changes[0]["id"], format!("container/{}-web", p.name));
    assert_eq!(
        changes[0]["diff"],
        serde_json::json!(["- env.MODE: \"demo\"", "+ env.MODE: \"live\""])
    );
    let shown = text(&p.run(&["plan"]));
    assert!(shown.contains("-/+ recreate container"), "{shown}");
    let db_before = started_at(&p, "db");
    assert_exit(&p.run(&["apply", "--auto-approve"]), 0);
    assert_eq!(started_at(&p, "db"), db_before, "db was not touched");
    assert_exit(&p.run(&["plan", "--detailed-exitcode"]), 0);
}

#[test]
fn a_failing_health_check_stops_apply_naming_the_container() {
    let p = TestProject::new("unhealthy");
    let after = free_port();
    p.write(&format!(
        "[components.bad]\nimage = \"busybox:local\"\ncommand = [\"/bin/busybox\", \"sh\", \"-c\", \"echo booting; echo cannot open config; sleep 600\"]\nnetwork_mode = \"host\"\n[components.bad.healthcheck]\ntest = [\"CMD\", \"/bin/busybox\", \"false\"]\ninterval = \"1s\"\ntimeout = \"1s\"\nretries = 1\n\n{}",
        httpd("after", after, "depends_on = [\"bad\"]")
    ));
    let out = p.run(&["apply", "--auto-approve"]);
    assert_exit(&out, 1);
    let shown = text(&out);
    assert!(
        shown.contains(&format!("container {}-bad is unhealthy", p.name)),
        "{shown}"
    );
    assert!(
        shown.contains("cannot open config"),
        "the log is quoted: {shown}"
    );
    assert!(
        p.inspect("after").is_none(),
        "nothing after the failure is started"
    );
}

#[test]
fn foreign_containers_are_never_touched_and_prune_removes_only_gods_orphans() {
    let p = TestProject::new("prune");
    let (a, b) = (free_port(), free_port());
    p.write(&format!("{}{}", httpd("a", a, ""), httpd("b", b, "")));
    assert_exit(&p.run(&["apply", "--auto-approve"]), 0);

    // A container that is not god's but has the name god would give component c.
    let foreign = format!("{}-c", p.name);
    let started = std::process::Command::new("docker")
        .args([
            "run",
            "-d",
            "--name",
            &foreign,
            "--network",
            "host",
            "--label",
            &format!("god.project={}", p.name),
            "busybox:local",
            "/bin/busybox",
            "sleep",
            "600",
        ])
        .output()
        .unwrap();
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let foreign_id = String::from_utf8_lossy(&started.stdout).trim().to_string();

    p.write(&format!(
        "{}{}",
        httpd("a", a, ""),
        httpd("c", free_port(), "")
    ));
    let out = p.run(&["plan"]);
    let shown = text(&out);
    assert!(
        shown.contains("REFUSED") && shown.contains("is not god's"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("container/{}-b", p.name)) && shown.contains("--prune removes it"),
        "{shown}"
    );
    let out = p.run(&["apply", "--auto-approve", "--prune"]);
    assert_exit(&out, 1);
    assert!(p.inspect("b").is_none(), "god's orphan b is pruned");
    assert!(p.inspect("a").is_some(), "a is kept");
    let c = p
        .inspect("c")
        .expect("the foreign container is still there");
    assert_eq!(
        c["Id"].as_str().unwrap(),
        foreign_id,
        "and it is the same container"
    );
}

#[test]
fn an_unreachable_engine_is_a_clear_error() {
    let p = TestProject::new("down");
    p.write(&httpd("a", free_port(), ""));
    let out = god()
        .arg("--components")
        .arg(p.dir.path().join("components.toml"))
        .args(["plan", "--only", "docker"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_exit(&out, 1);
    let shown = text(&out);
    assert!(
        shown.contains("cannot reach the Docker engine at unix:///nonexistent/docker.sock"),
        "{shown}"
    );
    assert!(!shown.contains("panicked"), "{shown}");
}

#[test]
fn a_saved_container_plan_is_refused_once_a_container_moved() {
    let p = TestProject::new("saved");
    let port = free_port();
    p.write(&httpd("a", port, ""));
    let saved = p.dir.path().join("plan.json");
    assert_exit(&p.run(&["plan", "--out", saved.to_str().unwrap()]), 0);
    assert_exit(&p.run(&["apply", saved.to_str().unwrap()]), 0);
    assert!(p.inspect("a").is_some());

    // A plan made now (nothing to do), then the container is stopped behind god's back: the
    // plan no longer describes the engine, and is refused.
    assert_exit(&p.run(&["plan", "--out", saved.to_str().unwrap()]), 0);
    let stopped = std::process::Command::new("docker")
        .args(["stop", "-t", "1", &format!("{}-a", p.name)])
        .output()
        .unwrap();
    assert!(stopped.status.success());
    let out = p.run(&["apply", saved.to_str().unwrap()]);
    assert_exit(&out, 1);
    assert!(
        text(&out).contains(&format!("container/{}-a changed", p.name)),
        "{}",
        text(&out)
    );
}

#[test]
fn a_build_context_is_built_locally_and_a_change_to_it_recreates() {
    let p = TestProject::new("build");
    let port = free_port();
    let app = p.dir.path().join("app");
    std::fs::create_dir(&app).unwrap();
    std::fs::write(
        app.join("Dockerfile"),
        format!("FROM busybox:local\nCOPY index.html /www/index.html\nCMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"127.0.0.1:{port}\", \"-h\", \"/www\"]\n"),
    )
    .unwrap();
    std::fs::write(app.join("index.html"), "first\n").unwrap();
    p.write(&format!(
        "[components.site]\nbuild = \"app\"\nnetwork_mode = \"host\"\n[components.site.healthcheck]\nhttp = \"http://127.0.0.1:{port}/\"\ninterval = \"500ms\"\nretries = 20\n"
    ));
    let out = p.run(&["apply", "--auto-approve"]);
    assert_exit(&out, 0);
    let body = std::process::Command::new("curl")
        .args(["-sf", &format!("http://127.0.0.1:{port}/")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&body.stdout), "first\n");
    assert_exit(&p.run(&["plan", "--detailed-exitcode"]), 0);

    std::fs::write(app.join("index.html"), "second\n").unwrap();
    let plan = plan_json(&p);
    assert_eq!(plan["changes"][0]["action"], "replace", "{plan:#}");
    assert_exit(&p.run(&["apply", "--auto-approve"]), 0);
    let body = std::process::Command::new("curl")
        .args(["-sf", &format!("http://127.0.0.1:{port}/")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&body.stdout), "second\n");
}

#[test]
fn god_runs_its_own_gateway_and_relay_as_containers_and_waits_for_them() {
    let v = TestVhost::new("builtin");
    let p = TestProject::new("builtin");
    let (gateway, relay) = (free_port(), free_port());
    let (_d, registry) = registry_with(indoc! {r#"
            s:
              queue_name: q
              routing_keys: ["agent.#"]
        "#});
    p.write(&format!(
        "{}{}",
        builtin_component("gateway", gateway, "/health/ready", ""),
        builtin_component("relay", relay, "/health", "depends_on = [\"gateway\"]"),
    ));
    // The broker URL is given as a flag only: god hands the one it resolved to its services.
    let god_on = |amqp_url: &str, args: &[&str]| p.run_with_broker(&registry, amqp_url, args);
    let out = god_on(&v.amqp_url(), &["apply", "--auto-approve"]);
    assert_exit(&out, 0);
    let shown = text(&out);
    assert!(!shown.contains("guest:guest"), "{shown}");
    let gateway_container = p.inspect("gateway").unwrap();
    let env = gateway_container["Config"]["Env"].to_string();
    for expected in [
        "GOD_EXCHANGE=bus",
        "GOD_LOG_FORMAT=json",
        &format!("RABBITMQ_URL={}", v.amqp_url()),
    ] {
        assert!(env.contains(expected), "{expected} not in {env}");
    }
    assert!(
        !gateway_container["Config"]["Labels"]["god.config"]
            .to_string()
            .contains("guest:guest"),
        "secrets stay out of labels"
    );

    assert_eq!(post_event(gateway, "agent.x", "{}"), 202);
    assert!(
        v.await_message("q").is_some(),
        "the containerised gateway published into the vhost"
    );
    let logs = std::process::Command::new("docker")
        .args(["logs", &format!("{}-gateway", p.name)])
        .output()
        .unwrap();
    let logged = String::from_utf8_lossy(&logs.stderr);
    assert!(!logged.is_empty());
    for line in logged.lines() {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "the container logs JSON: {line:?}"
        );
    }
    assert_exit(&god_on(&v.amqp_url(), &["apply", "--only", "docker"]), 0);
    assert_exit(&god_on(&v.amqp_url(), &["plan", "--detailed-exitcode"]), 0);

    let elsewhere = TestVhost::new("elsewhere");
    let moved = god_on(
        &elsewhere.amqp_url(),
        &["plan", "--only", "docker", "--detailed-exitcode"],
    );
    assert_exit(&moved, 2);
    let shown = text(&moved);
    assert!(shown.contains("RABBITMQ_URL moved (vhost)"), "{shown}");
    assert!(!shown.contains("guest:guest"), "{shown}");
}

#[test]
fn concurrent_container_applies_of_one_project_take_turns() {
    let p = TestProject::new("turns");
    p.write(&httpd("web", free_port(), ""));
    let spawn = || {
        god()
            .arg("--components")
            .arg(p.dir.path().join("components.toml"))
            .args([
                "--project",
                &p.name,
                "apply",
                "--auto-approve",
                "--only",
                "docker",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(), spawn());
    let outputs = [
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    ];
    for out in &outputs {
        assert_exit(out, 0);
    }
    let texts: Vec<String> = outputs.iter().map(text).collect();
    assert!(
        texts.iter().any(|t| t.contains(&format!(
            "Waiting for the apply lock of container project \"{}\"",
            p.name
        ))),
        "neither apply waited for the other:\n{texts:#?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("Nothing to do.")),
        "the second apply did not plan again after the first:\n{texts:#?}"
    );
    assert!(p.inspect("web").is_some());
}

#[test]
fn a_held_project_lock_fails_after_the_timeout_naming_the_project() {
    let p = TestProject::new("held");
    p.write(&httpd("web", free_port(), ""));
    let lock = god::apply::lock::project_lock_path(&p.name);
    // --no-fork: flock itself becomes the sleeping holder, so killing it releases the lock.
    let mut holder = std::process::Command::new("flock")
        .arg("--no-fork")
        .arg(&lock)
        .args(["sleep", "30"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // The holder has the lock once a non-blocking attempt fails.
    while std::process::Command::new("flock")
        .arg("-n")
        .arg(&lock)
        .arg("true")
        .status()
        .unwrap()
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "flock never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = p.run(&["apply", "--auto-approve", "--lock-timeout", "0"]);
    let _ = holder.kill();
    let _ = holder.wait();
    let _ = std::fs::remove_file(&lock);
    assert_exit(&out, 1);
    assert!(
        text(&out).contains(&format!(
            "another god apply is running on container project \"{}\"",
            p.name
        )),
        "{}",
        text(&out)
    );
    assert!(p.inspect("web").is_none(), "nothing was applied");
}

/// A copy of the repository's own registry.yaml and components.toml in a project directory.
fn repository_inputs(p: &TestProject) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["registry.yaml", "components.toml"] {
        std::fs::copy(root.join(file), p.dir.path().join(file)).unwrap();
    }
}

#[test]
fn the_repository_plans_doctors_and_graphs_with_no_broker_variable_exported() {
    let p = TestProject::new("root");
    repository_inputs(&p);
    let in_project = |args: &[&str]| {
        god()
            .current_dir(p.dir.path())
            .args(["--project", &p.name])
            .args(args)
            .output()
            .unwrap()
    };
    let plan = in_project(&["plan", "--only", "docker"]);
    assert_exit(&plan, 0);
    let shown = text(&plan);
    assert!(shown.contains("+ container 33god-bloodbank "), "{shown}");
    let plan = in_project(&["plan", "--only", "docker", "--json"]);
    assert_exit(&plan, 0);
    let json: Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_plan_schema(&json);
    let gateway = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "container/33god-bloodbank")
        .unwrap();
    assert_eq!(
        gateway["after"]["env"]["RABBITMQ_URL"],
        serde_json::json!({"broker_url": "amqp://guest:***@rabbitmq:5672/%2F"}),
        "the stack's broker at its name on the project network, password masked"
    );
    assert!(!text(&plan).contains("guest:guest"), "{}", text(&plan));
    let doctor = in_project(&["doctor", "--json"]);
    let report: Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let components = doctor_check(&report, "config.components");
    assert_eq!(components["status"], "ok", "{components}");
    assert_exit(&in_project(&["graph"]), 0);
}

#[test]
fn a_secret_url_that_moved_is_named_in_the_plan_with_its_password_masked() {
    let p = TestProject::new("url");
    let port = free_port();
    p.write(&httpd(
        "web",
        port,
        "env = { TARGET = { secret = true, from_env = \"TARGET\" }, TOKEN = { secret = true, from_env = \"TOKEN\" } }",
    ));
    let with = |target: &str, token: &str, args: &[&str]| {
        god()
            .arg("--components")
            .arg(p.dir.path().join("components.toml"))
            .args(["--project", &p.name])
            .args(args)
            .args(["--only", "docker"])
            .env("TARGET", target)
            .env("TOKEN", token)
            .output()
            .unwrap()
    };
    let first = "amqp://ops:hunter2@127.0.0.1:5672/%2f";
    assert_exit(&with(first, "s3cr3t-one", &["apply", "--auto-approve"]), 0);
    let moved = with(
        "amqp://ops:hunter2@127.0.0.1:5672/probe",
        "s3cr3t-one",
        &["plan", "--detailed-exitcode"],
    );
    assert_exit(&moved, 2);
    let shown = text(&moved);
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        shown.contains("+ env.TARGET: amqp://ops:***@127.0.0.1:5672/probe"),
        "{shown}"
    );
    assert!(
        shown.contains("- env.TARGET: amqp://ops:***@127.0.0.1:5672/%2f"),
        "{shown}"
    );
    assert!(shown.contains("TARGET moved (vhost)"), "{shown}");
    let rotated = with(first, "s3cr3t-two", &["plan", "--json"]);
    assert_exit(&rotated, 0);
    let plan: Value = serde_json::from_slice(&rotated.stdout).unwrap();
    assert_plan_schema(&plan);
    assert!(
        plan["changes"][0]["cause"]
            .as_str()
            .unwrap()
            .contains("a secret value changed"),
        "a plain secret says only that it changed: {plan:#}"
    );
    assert!(
        !rotated.stdout.windows(10).any(|w| w == b"s3cr3t-two"),
        "{plan:#}"
    );
}

#[test]
fn limits_host_name_and_stop_settings_reach_the_engine_and_a_limit_change_recreates() {
    let p = TestProject::new("limits");
    let port = free_port();
    let components = |memory: &str| {
        httpd(
            "api",
            port,
            &format!(
                "mem_limit = \"{memory}\"\ncpus = 0.5\nhostname = \"bloodbank\"\nextra_hosts = [\"broker:127.0.0.1\"]\nstop_grace_period = \"5s\"\nulimits = {{ nofile = {{ soft = 1024, hard = 2048 }} }}"
            ),
        )
    };
    p.write(&components("64m"));
    assert_exit(&p.run(&["apply", "--auto-approve"]), 0);
    let inspected = p.inspect("api").unwrap();
    let host = &inspected["HostConfig"];
    assert_eq!(host["Memory"], 64 * 1024 * 1024);
    assert_eq!(host["NanoCpus"], 500_000_000);
    assert_eq!(host["ExtraHosts"], serde_json::json!(["broker:127.0.0.1"]));
    assert_eq!(
        host["Ulimits"],
        serde_json::json!([{"Name": "nofile", "Soft": 1024, "Hard": 2048}])
    );
    assert_eq!(inspected["Config"]["Hostname"], "bloodbank");
    assert_eq!(inspected["Config"]["StopTimeout"], 5);
    assert_exit(&p.run(&["plan", "--detailed-exitcode"]), 0);

    p.write(&components("128m"));
    let plan = plan_json(&p);
    let changes = plan["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{plan:#}");
    assert_eq!(changes[0]["action"], "replace");
    assert_eq!(
        changes[0]["diff"],
        serde_json::json!(["- memory_bytes: 67108864", "+ memory_bytes: 134217728"])
    );
    assert_exit(&p.run(&["apply", "--auto-approve"]), 0);
    assert_eq!(
        p.inspect("api").unwrap()["HostConfig"]["Memory"],
        128 * 1024 * 1024
    );
}

#[test]
fn a_limit_written_twice_is_an_error_at_its_line() {
    let p = TestProject::new("limits-twice");
    p.write(&httpd(
        "api",
        free_port(),
        "mem_limit = \"64m\"\ndeploy = { resources = { limits = { memory = \"128m\" } } }",
    ));
    let out = p.run(&["plan"]);
    assert_exit(&out, 1);
    let shown = text(&out);
    assert!(
        shown.contains("component \"api\": mem_limit is set twice, as mem_limit and under deploy.resources.limits"),
        "{shown}"
    );
}

#[test]
fn a_profile_starts_its_containers_only_when_named_and_never_removes_them_when_not() {
    let p = TestProject::new("profiles");
    let (api, grafana) = (free_port(), free_port());
    p.write(&format!(
        "{}{}",
        httpd("api", api, ""),
        httpd("grafana", grafana, "profiles = [\"observability\"]")
    ));
    assert_exit(&p.run(&["apply", "--auto-approve"]), 0);
    assert!(p.inspect("api").is_some());
    assert!(
        p.inspect("grafana").is_none(),
        "not started without its profile"
    );

    assert_exit(
        &p.run(&["apply", "--auto-approve", "--profile", "observability"]),
        0,
    );
    assert!(p.inspect("grafana").is_some(), "started with --profile");
    assert_exit(
        &p.run(&["plan", "--detailed-exitcode", "--profile", "observability"]),
        0,
    );

    // Without the profile, even --prune leaves it alone, as `docker compose up` does.
    let plan = plan_json(&p);
    assert!(plan["changes"].as_array().unwrap().is_empty(), "{plan:#}");
    let out = p.run(&["apply", "--auto-approve", "--prune"]);
    assert_exit(&out, 0);
    assert!(p.inspect("grafana").is_some(), "kept: {}", text(&out));

    // A component that needs one of an inactive profile says which profile to name.
    p.write(&format!(
        "{}{}",
        httpd("api", api, "depends_on = [\"grafana\"]"),
        httpd("grafana", grafana, "profiles = [\"observability\"]")
    ));
    let out = p.run(&["plan"]);
    assert_exit(&out, 1);
    assert!(
        text(&out).contains("component \"api\" depends on \"grafana\", which runs only in profile observability, not active"),
        "{}",
        text(&out)
    );
}

#[test]
fn container_name_names_the_container_and_a_rename_recreates_it() {
    let p = TestProject::new("named");
    let port = free_port();
    let first = format!("{}-first", p.name);
    let second = format!("{}-second", p.name);
    p.write(&httpd(
        "api",
        port,
        &format!("container_name = \"{first}\""),
    ));
    assert_exit(&p.run(&["apply", "--auto-approve"]), 0);
    let inspect = |name: &str| {
        let out = std::process::Command::new("docker")
            .args(["inspect", name])
            .output()
            .unwrap();
        out.status.success()
    };
    assert!(inspect(&first), "created as {first}");
    assert_exit(&p.run(&["plan", "--detailed-exitcode"]), 0);

    p.write(&httpd(
        "api",
        port,
        &format!("container_name = \"{second}\""),
    ));
    let plan = plan_json(&p);
    assert_eq!(plan["changes"][0]["action"], "replace", "{plan:#}");
    assert_exit(&p.run(&["apply", "--auto-approve"]), 0);
    assert!(inspect(&second), "recreated as {second}");
    assert!(!inspect(&first), "{first} is gone");
    let _ = std::process::Command::new("docker")
        .args(["rm", "-f", &second])
        .output();
}
