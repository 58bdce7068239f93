//! god apply stopped part-way: by the broker going away, or by a declaration the broker
//! refuses. Either way apply exits 3 and says what was done, what failed and what was not
//! attempted, and what it did is in the broker.

mod support;

use indoc::indoc;
use serde_json::Value;
use support::*;

#[test]
fn a_broker_stopped_mid_apply_exits_3_and_says_what_was_done() {
    let mut broker = DedicatedBroker::start();
    // Enough services for several import chunks, so that the stop lands between two of them.
    let services: String = (0..3000)
        .map(|i| format!("s{i}:\n  queue_name: q{i:04}\n  routing_keys: [k.{i}, \"w.{i}.#\"]\n"))
        .collect();
    let (dir, registry) = registry_with(&services);
    let (stdout, stderr) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = god()
        .arg("--registry")
        .arg(&registry)
        .args([
            "apply",
            "--auto-approve",
            "--management-url",
            &broker.management_url(),
            "--amqp-url",
            &broker.amqp_url(),
        ])
        // Into files, not pipes: the plan is long, and nobody reads a pipe until god exits.
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let list = format!("{}/api/queues/%2f?columns=name", broker.management_url());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let out = std::process::Command::new("curl")
            .args(["-sf", "-u", "guest:guest", &list])
            .output()
            .unwrap();
        let queues: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        // Past the first import chunk (2,000 objects), so that some changes are surely done.
        if queues.as_array().is_some_and(|q| q.len() > 2100) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "apply never got past its first chunk"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    broker.stop();
    let status = child.wait().unwrap();
    let shown =
        std::fs::read_to_string(&stdout).unwrap() + &std::fs::read_to_string(&stderr).unwrap();
    assert_eq!(status.code(), Some(3), "{shown}");
    assert!(shown.contains("Apply stopped part-way"), "{shown}");
    let done = shown
        .split("Done:\n")
        .nth(1)
        .unwrap()
        .split("Not done:\n")
        .next()
        .unwrap();
    assert!(
        done.contains("+ queue/q0000"),
        "the first chunk is reported done: {shown}"
    );
    let not_done = shown.split("Not done:\n").nth(1).unwrap();
    assert!(
        not_done.contains("+ binding/bus/queue/q2999/w.2999.#"),
        "the last binding is reported not done: {shown}"
    );
    assert!(
        not_done.contains("(not attempted)") || not_done.contains("(unknown"),
        "{shown}"
    );
}

#[test]
fn a_refused_queue_stops_apply_after_the_queues_naming_the_refusal() {
    let v = TestVhost::new("refused");
    // guest may configure everything on this vhost but the queue `q-denied`: its declaration
    // is refused (ACCESS_REFUSED), which the plan, read through the management API, cannot see.
    v.grant_guest("^(?!q-denied$).*");
    let (_d, registry) = registry_with(indoc! {"
        allowed:
          queue_name: q-allowed
          routing_keys: [allowed.#]
          dead_letter: false
        denied:
          queue_name: q-denied
          routing_keys: [denied.#]
          dead_letter: false
    "});
    let out = v.run(&registry, &["apply", "--auto-approve"]);
    assert_exit(&out, 3);
    let shown = text(&out);
    let done = shown.split("Done:\n").nth(1).unwrap();
    let not_done = shown.split("Not done:\n").nth(1).unwrap();
    assert!(done.contains("+ queue/q-allowed"), "{shown}");
    assert!(
        not_done.contains("+ queue/q-denied (failed") && not_done.contains("ACCESS_REFUSED"),
        "{shown}"
    );
    // The run stopped after the queues: no binding was attempted, and none is in the broker.
    for key in ["allowed.#", "denied.#"] {
        let queue = key.replace(".#", "");
        assert!(
            not_done.contains(&format!(
                "+ binding/bus/queue/q-{queue}/{key} (not attempted)"
            )),
            "{shown}"
        );
    }
    assert!(
        v.bindings().iter().all(|(source, _, _)| source != "bus"),
        "{:?}",
        v.bindings()
    );
    assert!(v.queue("q-allowed").is_some() && v.queue("q-denied").is_none());
    // With the permission back, the next apply completes the rest.
    v.grant_guest(".*");
    assert_exit(&v.run(&registry, &["apply", "--auto-approve"]), 0);
    assert_exit(&v.run(&registry, &["plan", "--detailed-exitcode"]), 0);
}
