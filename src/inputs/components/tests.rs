//! Fixtures of components.toml shared by the tests of this folder, and the tests of loading.

use indoc::indoc;

use super::loaded::{LoadedComponents, load_components};
use crate::inputs::SourceFile;
use crate::inputs::diagnostic::Diagnostic;

pub(crate) fn load(text: &str) -> Result<LoadedComponents, Vec<Diagnostic>> {
    load_components(SourceFile {
        path: std::path::PathBuf::from("/p/components.toml"),
        text: text.to_string(),
    })
}

pub(crate) fn env(var: &str) -> Option<String> {
    (var == "API_TOKEN").then(|| "s3cret".to_string())
}

pub(crate) const WEB: &str = r#"
[components]
bloodbank = { path = "bloodbank", kind = "submodule", enabled = true }

[components.web]
enabled = true
image = "busybox:local"
command = ["httpd", "-f", "-p", "8080"]
env = { MODE = "demo", API_TOKEN = { secret = true, from_env = "API_TOKEN" } }
network_mode = "host"
restart = "unless-stopped"
depends_on = ["queue-worker"]
labels = { team = "infra" }

[components.web.healthcheck]
test = ["CMD", "/bin/busybox", "wget", "-q", "-O-", "http://127.0.0.1:8080/"]
interval = "2s"
timeout = "2s"
retries = 5
start_period = "1s"

[components.queue-worker]
image = "busybox:local"
ports = ["9000:9000", "0.0.0.0:9001:9001/udp"]
"#;

#[test]
fn schema_violations_are_located() {
    let errs = load(indoc! {r#"
        [components.a]
        image = "x"
        restart = "sometimes"
    "#})
    .unwrap_err();
    assert!(
        errs[0]
            .headline()
            .starts_with("/p/components.toml:3:11: /components/a/restart:"),
        "{errs:?}"
    );
}
