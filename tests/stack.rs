//! The platform's whole stack under god, on the real engine with locally built images: project
//! networks with aliases, named volumes, one-shot dependencies, pruning rules, and the broker
//! itself as a container that one apply brings up before the topology and god's services.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use indoc::{formatdoc, indoc};
use support::*;

/// A healthcheck that passes once `url` answers inside the container.
fn wget_check(url: &str) -> String {
    formatdoc! {r#"
        test = ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "{url}"]
        interval = "500ms"
        timeout = "2s"
        retries = 40
    "#}
}

/// Four containers on two project networks: `db` keeps a boot log in a named volume and is
/// reached by its alias `database`; `seed` runs once; `web` needs both; `cache` is on the back
/// network only. `marker` goes into db's environment (changing it recreates db).
fn four_containers(marker: &str) -> String {
    formatdoc! {r#"
        [networks.back]
        [networks.front]

        [volumes.data]

        [components.db]
        image = "busybox:local"
        command = ["sh", "-c", "echo boot >> /data/boots; httpd -f -p 8080 -h /data"]
        env = {{ MARKER = "{marker}" }}
        networks = {{ back = {{ aliases = ["database"] }} }}
        volumes = ["data:/data"]

        [components.db.healthcheck]
        {db_check}
        [components.seed]
        image = "busybox:local"
        command = ["sh", "-c", "wget -q -O /dev/null http://database:8080/boots"]
        networks = ["back"]
        depends_on = ["db"]

        [components.web]
        image = "busybox:local"
        command = ["sh", "-c", "httpd -f -p 8080 -h /"]
        networks = ["back", "front"]
        depends_on = {{ db = {{ condition = "service_healthy" }}, seed = {{ condition = "service_completed_successfully" }} }}

        [components.web.healthcheck]
        {web_check}
        [components.cache]
        image = "busybox:local"
        command = ["sh", "-c", "sleep 3600"]
        networks = ["back"]
    "#,
        db_check = wget_check("http://127.0.0.1:8080/boots"),
        // Healthy only when db answers by its alias on the back network.
        web_check = wget_check("http://database:8080/boots"),
    }
}

fn exec(p: &TestProject, component: &str, command: &str) -> Result<String, String> {
    docker(&[
        "exec",
        &format!("{}-{component}", p.name),
        "sh",
        "-c",
        command,
    ])
}

#[test]
fn a_stack_on_project_networks_reaches_its_components_by_name_and_alias_and_keeps_its_volume() {
    let p = TestProject::new("stack");
    p.write(&four_containers("one"));
    let out = p.run(&["apply", "--auto-approve"]);
    assert_exit(&out, 0);
    let shown = text(&out);
    for expected in [
        &format!("+ network {}_back (bridge)", p.name),
        &format!("+ volume {}_data (local)", p.name),
        &format!("network {}_back as db, database", p.name),
    ] {
        assert!(shown.contains(expected.as_str()), "{expected} in {shown}");
    }
    // By component name and by alias, from a container on the same network.
    for host in ["db", "database"] {
        let got = exec(
            &p,
            "cache",
            &format!("wget -q -O- http://{host}:8080/boots"),
        );
        assert_eq!(got.as_deref(), Ok("boot"), "{host}");
    }
    // cache is not on the front network: web is not reachable from it there by name... but
    // web joined both, so it reaches db.
    assert!(exec(&p, "web", "wget -q -O- http://database:8080/boots").is_ok());
    let seed = p.inspect("seed").unwrap();
    assert_eq!(seed["State"]["Status"], "exited");
    assert_eq!(seed["State"]["ExitCode"], 0);
    assert_eq!(seed["HostConfig"]["RestartPolicy"]["Name"], "no");
    assert_exit(&p.run(&["plan", "--detailed-exitcode"]), 0);

    // A changed setting recreates db; its volume keeps what the first one wrote.
    p.write(&four_containers("two"));
    let out = p.run(&["apply", "--auto-approve"]);
    assert_exit(&out, 0);
    assert!(
        text(&out).contains(&format!("recreate container {}-db", p.name)),
        "{}",
        text(&out)
    );
    assert_eq!(
        exec(&p, "db", "cat /data/boots").as_deref(),
        Ok("boot\nboot"),
        "the volume survived the recreation with its data"
    );
    assert_exit(&p.run(&["plan", "--detailed-exitcode"]), 0);
}

#[test]
fn a_one_shot_dependency_that_fails_stops_apply_before_its_dependents() {
    let p = TestProject::new("oneshot");
    p.write(indoc! {r#"
        [components.migrate]
        image = "busybox:local"
        command = ["sh", "-c", "echo migration failed; exit 3"]

        [components.app]
        image = "busybox:local"
        command = ["sh", "-c", "sleep 3600"]
        depends_on = { migrate = { condition = "service_completed_successfully" } }
    "#});
    let out = p.run(&["apply", "--auto-approve"]);
    assert_exit(&out, 1);
    let shown = text(&out);
    assert!(shown.contains("it exited with code 3"), "{shown}");
    assert!(shown.contains("| migration failed"), "{shown}");
    assert!(p.inspect("app").is_none(), "app is not started: {shown}");
}

#[test]
fn undeclared_networks_and_volumes_and_both_network_forms_are_errors_at_their_line() {
    let p = TestProject::new("undeclared");
    p.write(indoc! {r#"
        [components.a]
        image = "busybox:local"
        networks = ["back"]

        [components.b]
        image = "busybox:local"
        volumes = ["data:/data"]

        [networks.front]

        [components.c]
        image = "busybox:local"
        network_mode = "host"
        networks = ["front"]
    "#});
    let out = p.run(&["plan"]);
    assert_exit(&out, 1);
    let shown = text(&out);
    for expected in [
        "components.toml:3:12: component \"a\" joins network \"back\", which [networks] does not declare",
        "hint: add [networks.back]",
        "components.toml:7:12: component \"b\" mounts volume \"data\", which [volumes] does not declare",
        "components.toml:14:12: component \"c\" sets both network_mode and networks",
    ] {
        assert!(shown.contains(expected), "{expected} in {shown}");
    }
}

#[test]
fn prune_removes_gods_network_only_when_nothing_else_is_attached_and_never_touches_others() {
    let p = TestProject::new("netprune");
    let with_extra = indoc! {r#"
        [networks.extra]

        [components.app]
        image = "busybox:local"
        command = ["sh", "-c", "sleep 3600"]
        networks = ["extra"]
    "#};
    p.write(with_extra);
    assert_exit(&p.run(&["apply", "--auto-approve"]), 0);
    let network = format!("{}_extra", p.name);
    let foreign = format!("{}-foreign", p.name);
    docker(&[
        "run",
        "-d",
        "--name",
        &foreign,
        "--network",
        &network,
        "busybox:local",
        "sh",
        "-c",
        "sleep 3600",
    ])
    .unwrap();
    p.write(indoc! {r#"
        [components.app]
        image = "busybox:local"
        command = ["sh", "-c", "sleep 3600"]
    "#});
    let out = p.run(&["apply", "--prune", "--auto-approve"]);
    assert_exit(&out, 1);
    let shown = text(&out);
    assert!(
        shown.contains(&format!(
            "REFUSED: 1 container is attached to it ({foreign}): a network is removed only when nothing uses it"
        )),
        "{shown}"
    );
    assert!(docker(&["network", "inspect", &network]).is_ok());
    let state = docker(&["inspect", "-f", "{{.State.Running}}", &foreign]);
    assert_eq!(
        state.as_deref(),
        Ok("true"),
        "the foreign container is untouched"
    );

    docker(&["rm", "-f", &foreign]).unwrap();
    let out = p.run(&["apply", "--prune", "--auto-approve"]);
    assert_exit(&out, 0);
    assert!(
        docker(&["network", "inspect", &network]).is_err(),
        "{}",
        text(&out)
    );
    assert_exit(&p.run(&["plan", "--prune", "--detailed-exitcode"]), 0);
}

#[test]
fn a_volume_holding_data_is_removed_only_with_allow_data_loss_and_the_plan_gives_its_size() {
    let p = TestProject::new("volprune");
    p.write(indoc! {r#"
        [volumes.data]
        [volumes.empty]

        [components.writer]
        image = "busybox:local"
        command = ["sh", "-c", "head -c 1000 /dev/zero > /data/file; sleep 3600"]
        volumes = ["data:/data", "empty:/empty"]
    "#});
    assert_exit(&p.run(&["apply", "--auto-approve"]), 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while exec(&p, "writer", "test -s /data/file").is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    p.write(indoc! {r#"
        [components.writer]
        image = "busybox:local"
        command = ["sh", "-c", "sleep 3600"]
    "#});
    let plan = p.run(&["plan", "--prune"]);
    let shown = text(&plan);
    assert!(shown.contains("it holds 1000 bytes (--prune)"), "{shown}");
    assert!(
        shown.contains(
            "REFUSED: it holds 1000 bytes: --prune --allow-data-loss removes it with its data"
        ),
        "{shown}"
    );
    let out = p.run(&["apply", "--prune", "--auto-approve"]);
    assert_exit(&out, 1);
    let (data, empty) = (format!("{}_data", p.name), format!("{}_empty", p.name));
    assert!(
        docker(&["volume", "inspect", &data]).is_ok(),
        "{}",
        text(&out)
    );
    assert!(
        docker(&["volume", "inspect", &empty]).is_err(),
        "an empty volume goes with --prune alone: {}",
        text(&out)
    );
    let out = p.run(&["apply", "--prune", "--allow-data-loss", "--auto-approve"]);
    assert_exit(&out, 0);
    assert!(
        docker(&["volume", "inspect", &data]).is_err(),
        "{}",
        text(&out)
    );
}

/// Waits until the relay at `port` counts a client, so an event cannot pass it by.
fn await_relay_client(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let metrics = Command::new("curl")
            .args(["-fsS", &format!("http://127.0.0.1:{port}/metrics")])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&metrics.stdout)
            .lines()
            .any(|l| l.starts_with("god_relay_clients ") && !l.ends_with(" 0"))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the relay never counted the client");
}

#[test]
fn one_apply_on_a_machine_without_a_broker_brings_up_broker_topology_gateway_and_relay() {
    let p = TestProject::new("withbroker");
    let [amqp, management, gateway] = [free_port(), free_port(), free_port()];
    let [relay, watch] = [free_port(), free_port()];
    let (_d, registry) = registry_with(indoc! {r##"
        audit:
          queue_name: audit
          routing_keys: ["#"]
    "##});
    p.write(&formatdoc! {r#"
        [networks.bus]
        [volumes.rabbitmq-data]

        {broker}
        [components.gateway]
        builtin = "gateway"
        networks = {{ bus = {{ aliases = ["bloodbank"] }} }}
        ports = ["127.0.0.1:{gateway}:8682"]
        depends_on = ["rabbitmq"]

        [components.gateway.healthcheck]
        http = "http://127.0.0.1:{gateway}/health/ready"
        interval = "500ms"
        retries = 60

        [components.relay]
        builtin = "relay"
        networks = {{ bus = {{ aliases = ["bloodbank-ws-relay"] }} }}
        ports = ["127.0.0.1:{relay}:8683"]
        depends_on = ["gateway"]

        [components.relay.healthcheck]
        http = "http://127.0.0.1:{relay}/health"
        interval = "500ms"
        retries = 60

        [components.watch]
        builtin = "watch"
        network_mode = "host"
        command = ["/god", "watch", "--listen", "127.0.0.1:{watch}", "--interval", "1s"]

        [components.watch.healthcheck]
        http = "http://127.0.0.1:{watch}/health"
        interval = "500ms"
        retries = 60
    "#,
        broker = broker_component(
            amqp,
            management,
            "bus",
            "env = { RABBITMQ_DEFAULT_USER = \"ops\", RABBITMQ_DEFAULT_PASS = \"${STACK_PASS}\" }\nvolumes = [\"rabbitmq-data:/var/lib/rabbitmq\"]",
        ),
    });
    let run = |args: &[&str]| {
        let mut cmd = god();
        cmd.env("STACK_PASS", "s3cret-stack")
            .arg("--registry")
            .arg(&registry)
            .arg("--components")
            .arg(p.dir.path().join("components.toml"))
            .args(["--project", &p.name])
            .args(args);
        cmd.output().unwrap()
    };
    let out = run(&["apply", "--auto-approve"]);
    let shown = text(&out);
    assert_exit(&out, 0);
    assert!(!shown.contains("s3cret-stack"), "{shown}");
    assert!(
        shown.contains(&format!("on http://127.0.0.1:{management}")),
        "god found the broker by its component: {shown}"
    );
    let position = |needle: &str| {
        shown
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} in {shown}"))
    };
    let broker_line = position(&format!("+ container {}-rabbitmq", p.name));
    let topology_line = position("+ exchange bus");
    let gateway_line = position(&format!("+ container {}-gateway", p.name));
    assert!(
        broker_line < topology_line && topology_line < gateway_line,
        "{shown}"
    );

    // The gateway reaches the broker by its name on the project network.
    let gateway_env = p.inspect("gateway").unwrap()["Config"]["Env"].to_string();
    assert!(
        gateway_env
            .to_lowercase()
            .contains("rabbitmq_url=amqp://ops:s3cret-stack@rabbitmq:5672/%2f"),
        "{gateway_env}"
    );

    // A sample event, through the gateway and out of the relay.
    let tail = god()
        .args([
            "tail",
            "--relay",
            &format!("ws://127.0.0.1:{relay}/"),
            "--count",
            "1",
            "--timeout",
            "30",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    await_relay_client(relay);
    assert_eq!(
        post_event(gateway, "god.sample.hello", "{\"hello\": \"stack\"}"),
        202
    );
    let tailed = tail.wait_with_output().unwrap();
    let event = String::from_utf8_lossy(&tailed.stdout);
    assert!(
        event.contains("god.sample.hello"),
        "the relay delivered: {event}"
    );

    assert_exit(&run(&["plan", "--detailed-exitcode"]), 0);

    // The watch in the stack computes what god computes here (the broker's password from
    // god's environment included): it reports no drift on a converged stack.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let logs = docker(&["logs", &format!("{}-watch", p.name)]).unwrap();
    assert!(!logs.contains("god.drift"), "{logs}");
    let (status, _, health) = http_request(
        "GET",
        &format!("http://127.0.0.1:{watch}/health"),
        None,
        &[],
    );
    assert_eq!(status, 200, "{health}");
}

/// `god import compose FILE --out OUT` in `dir`.
fn import(file: &Path, dir: &Path, extra: &[&str]) -> std::process::Output {
    god()
        .current_dir(dir)
        .args(["import", "compose"])
        .arg(file)
        .args(["--out", "components.toml"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn every_upstream_compose_file_converts_into_a_components_file_that_validates() {
    for name in [
        "docker-compose-2026-02-20.yml",
        "compose-2026-03-11.yml",
        "compose-2026-03-27.yml",
        "compose-2026-05-06.yml",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = import(&upstream(name), dir.path(), &[]);
        assert_exit(&out, 0);
        let listed = text(&out);
        assert!(listed.contains("service(s) of"), "{name}: {listed}");
        let valid = god()
            .current_dir(dir.path())
            .args(["validate", "--components", "components.toml"])
            .output()
            .unwrap();
        assert!(
            text(&valid).contains("components.toml is valid"),
            "{name}: {}",
            text(&valid)
        );
    }
}

#[test]
fn the_converted_upstream_stack_plans_and_lists_what_it_could_not_express_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = import(&upstream("compose-2026-05-06.yml"), dir.path(), &[]);
    let listed = text(&out);
    for expected in [
        // The upstream file mounts a volume it never declares (docker compose rejects it).
        "compose-2026-05-06.yml:25:9: warning: services.redis.volumes.0: converted, but volume \"33god-redis-data\" is mounted but not declared",
        "services.heartbeat-router.volumes.0: mount \"${HOME}/.openclaw:${HOME}/.openclaw:ro\"",
        "services.bloodbank.ports.0: converted, but god publishes port \"8682:8682\" on 127.0.0.1",
        "12 service(s) of",
    ] {
        assert!(listed.contains(expected), "{expected} in {listed}");
    }
    let converted = std::fs::read_to_string(dir.path().join("components.toml")).unwrap();
    for expected in [
        "[components.rabbitmq]\nbroker = true\nimage = \"rabbitmq:3.12-management-alpine\"\n",
        "RABBIT_URL = \"amqp://${RABBITMQ_USER}:${RABBITMQ_PASS}@rabbitmq:5672/\"",
        "depends_on = { redis = { condition = \"service_healthy\" }, rabbitmq = { condition = \"service_healthy\" } }",
        "networks = [\"33god-network\", \"proxy\"]",
        "ulimits = { nofile = { soft = 65536, hard = 65536 } }",
        "[networks.proxy]\nexternal = true",
    ] {
        assert!(converted.contains(expected), "{expected} in {converted}");
    }
    // The stack's source tree, reduced to its Dockerfiles, and the variables it reads.
    for context in [
        "bloodbank",
        "bloodbank/websocket-relay",
        "services/candystore",
        "services/postgres-notify-bridge",
    ] {
        std::fs::create_dir_all(dir.path().join(context)).unwrap();
        std::fs::write(
            dir.path().join(context).join("Dockerfile"),
            "FROM scratch\n",
        )
        .unwrap();
    }
    let project = format!("godtest-upstream-{}", std::process::id());
    let plan = god()
        .current_dir(dir.path())
        .envs([
            ("RABBITMQ_USER", "ops"),
            ("RABBITMQ_PASS", "s3cret-upstream"),
            ("POSTGRES_PASSWORD", "pg-s3cret"),
        ])
        .args(["plan", "--only", "docker", "--json", "--project", &project])
        .output()
        .unwrap();
    assert_exit(&plan, 0);
    let shown = text(&plan);
    assert!(
        !shown.contains("s3cret-upstream") && !shown.contains("pg-s3cret"),
        "{shown}"
    );
    let json: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_plan_schema(&json);
    let ids = change_ids(&json);
    assert_eq!(
        ids.iter().filter(|i| i.starts_with("container/")).count(),
        12,
        "{ids:?}"
    );
    let proxy = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "network/proxy")
        .unwrap();
    assert!(
        proxy["blocked"]
            .as_str()
            .unwrap()
            .contains("god never creates an external one"),
        "{proxy}"
    );
}

#[test]
fn import_never_overwrites_a_file_without_force() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("components.toml"), "# mine\n").unwrap();
    let compose = upstream("docker-compose-2026-02-20.yml");
    let out = import(&compose, dir.path(), &[]);
    assert_exit(&out, 1);
    assert!(
        text(&out).contains("components.toml exists: god does not overwrite it"),
        "{}",
        text(&out)
    );
    let kept = std::fs::read_to_string(dir.path().join("components.toml")).unwrap();
    assert_eq!(kept, "# mine\n");
    assert_exit(&import(&compose, dir.path(), &["--force"]), 0);
}

/// `god doctor --json` on this project's containers (and the default broker), as a report.
fn doctor(p: &TestProject) -> serde_json::Value {
    let out = god()
        .arg("--components")
        .arg(p.dir.path().join("components.toml"))
        .args(["--project", &p.name, "doctor", "--json"])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

#[test]
fn doctor_sees_networks_and_aliases_memory_near_its_limit_and_volumes() {
    let p = TestProject::new("doctorstack");
    p.write(indoc! {r#"
        [networks.back]
        [volumes.data]

        [components.app]
        image = "busybox:local"
        command = ["sh", "-c", "head -c 58m /dev/zero > /dev/shm/fill; sleep 3600"]
        networks = { back = { aliases = ["api"] } }
        volumes = ["data:/data"]
        mem_limit = "64m"
    "#});
    assert_exit(&p.run(&["apply", "--auto-approve"]), 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut report = doctor(&p);
    while doctor_check(&report, "services.containers")["status"] != "warn"
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(300));
        report = doctor(&p);
    }
    let containers = doctor_check(&report, "services.containers");
    assert_eq!(containers["status"], "warn", "{containers:#}");
    assert!(
        containers["details"][0]
            .as_str()
            .unwrap()
            .contains("of its 64 MiB memory limit"),
        "{containers:#}"
    );
    assert_eq!(doctor_check(&report, "services.networks")["status"], "ok");
    // Whether it warns depends on this machine's disk; the thresholds are unit-tested.
    let volumes = doctor_check(&report, "services.volumes");
    assert_ne!(volumes["status"], "fail", "{volumes:#}");
    assert!(
        volumes["details"][0]
            .as_str()
            .unwrap()
            .contains("of its filesystem's"),
        "{volumes:#}"
    );

    let network = format!("{}_back", p.name);
    docker(&[
        "network",
        "disconnect",
        &network,
        &format!("{}-app", p.name),
    ])
    .unwrap();
    let networks = doctor(&p);
    let networks = doctor_check(&networks, "services.networks");
    assert_eq!(networks["status"], "fail", "{networks:#}");
    assert_eq!(
        networks["details"][0],
        format!("{}-app: not on network {network}", p.name)
    );
}
