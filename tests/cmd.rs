//! CLI transcripts: the commands as a user sees them, in tests/cmd/*.trycmd (each run in its
//! `.in` directory when it has one), and every `console` example of the README, run from the
//! repository's root. The transcripts that talk to the broker name their vhosts
//! (`god-test-cmd-*`), which this test makes afresh first, on the broker `scripts/bootstrap`
//! starts. Regenerate after an intended change with `TRYCMD=overwrite cargo test --test cmd`
//! and review the diff.

mod support;

use std::path::Path;

use support::TestVhost;

/// The registry the live transcripts share (tests/cmd/live/registry.yaml).
const LIVE_REGISTRY: &str = "tests/cmd/live/registry.yaml";

#[test]
fn transcripts() {
    let _vhosts = live_vhosts();
    trycmd::TestCases::new()
        .register_bin("god", std::path::PathBuf::from(env!("CARGO_BIN_EXE_god")))
        .env("COLUMNS", "100")
        .env("NO_COLOR", "1")
        .case("tests/cmd/*.trycmd")
        .case("README.md");
}

/// The vhosts the live transcripts use, in the state each describes: empty ones for plan and
/// apply, the registry applied for import and doctor, and two rejected events for dlq.
fn live_vhosts() -> Vec<TestVhost> {
    let registry = Path::new(env!("CARGO_MANIFEST_DIR")).join(LIVE_REGISTRY);
    let empty = ["cmd-plan", "cmd-refused", "cmd-apply"].map(TestVhost::named);
    let applied = ["cmd-import", "cmd-doctor", "cmd-dlq"].map(|tag| {
        let vhost = TestVhost::named(tag);
        support::assert_exit(&vhost.run(&registry, &["apply", "--auto-approve"]), 0);
        vhost
    });
    let dlq = &applied[2];
    for event in ["agent.tonny.message.received", "task.inbox.issue.created"] {
        let body = format!(
            r#"{{"event_type":"{event}","event_id":"00000000-0000-4000-8000-000000000001"}}"#
        );
        dlq.publish("bloodbank.events.v1", event, &body);
        assert!(dlq.reject_one("candystore_events"), "{event} was rejected");
    }
    empty.into_iter().chain(applied).collect()
}
