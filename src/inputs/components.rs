//! `components.toml`: the platform's component manifest, read as the upstream writes it
//! (`{ path, kind, enabled }`, which plans nothing), plus god's extension: a component with an
//! `image` is a container, described with Docker Compose's key names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::SourceFile;
use super::diagnostic::Diagnostic;
use super::document::{PositionedDocument, escape_pointer};
use super::toml_doc;
use crate::builtin::Builtin;
use crate::model::containers::{
    BuildSpec, ContainerSpec, DesiredContainers, EnvSource, HealthProbe, HealthSpec, PortSpec,
    SecretValues, masked_url,
};

/// The file as written.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ComponentsFile {
    /// Components by name (mixed case allowed, as upstream).
    #[serde(default)]
    pub components: BTreeMap<String, Component>,
}

/// One component.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Component {
    /// Enabled (true when absent).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Image reference: makes the component a container.
    #[serde(default)]
    pub image: Option<String>,
    /// A local build context: a directory, or `{ context, dockerfile }`.
    #[serde(default)]
    pub build: Option<BuildDecl>,
    /// One of god's bundled services (`gateway`, `relay`), run from an image of god itself.
    #[serde(default)]
    pub builtin: Option<String>,
    /// Command.
    #[serde(default)]
    pub command: Vec<String>,
    /// Environment.
    #[serde(default)]
    pub env: BTreeMap<String, Value>,
    /// A `KEY=VALUE` file, relative to components.toml.
    #[serde(default)]
    pub env_file: Option<String>,
    /// Network mode.
    #[serde(default)]
    pub network_mode: Option<String>,
    /// Networks (one at most).
    #[serde(default)]
    pub networks: Vec<String>,
    /// Published ports.
    #[serde(default)]
    pub ports: Vec<String>,
    /// Mounts.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Restart policy.
    #[serde(default)]
    pub restart: Option<String>,
    /// Components started (and healthy) first.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Health check.
    #[serde(default)]
    pub healthcheck: Option<HealthcheckDecl>,
    /// User.
    #[serde(default)]
    pub user: Option<String>,
    /// Working directory.
    #[serde(default)]
    pub working_dir: Option<String>,
}

/// The `build` key.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum BuildDecl {
    /// Just the context directory.
    Context(String),
    /// Context and Dockerfile.
    Full {
        /// The context directory, relative to components.toml.
        context: String,
        /// The Dockerfile, relative to the context.
        #[serde(default)]
        dockerfile: Option<String>,
    },
}

/// The `healthcheck` table.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HealthcheckDecl {
    /// Command run by the engine.
    #[serde(default)]
    pub test: Option<Vec<String>>,
    /// URL requested by god from the host.
    #[serde(default)]
    pub http: Option<String>,
    /// Interval.
    #[serde(default)]
    pub interval: Option<String>,
    /// Timeout.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Retries.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Start period.
    #[serde(default)]
    pub start_period: Option<String>,
}

fn yes() -> bool {
    true
}

/// A components file that parsed and validated.
#[derive(Debug, Clone)]
pub struct LoadedComponents {
    /// The file.
    pub source: SourceFile,
    /// Its content.
    pub file: ComponentsFile,
    doc: PositionedDocument,
    /// Problems that do not stop god.
    pub warnings: Vec<Diagnostic>,
}

/// Parses and validates components.toml (syntax, schema, dependencies).
pub fn load_components(source: SourceFile) -> Result<LoadedComponents, Vec<Diagnostic>> {
    let doc = toml_doc::parse(&source.text).map_err(|e| {
        vec![Diagnostic::error(
            &source,
            e.position.line,
            e.position.col,
            format!("TOML syntax error: {}", e.message),
        )]
    })?;
    let problems = super::schema::components().problems(&source, &doc);
    if problems.iter().any(Diagnostic::is_error) {
        return Err(problems);
    }
    let file: ComponentsFile = serde_json::from_value(doc.value.clone()).map_err(|e| {
        vec![Diagnostic::error(
            &source,
            1,
            1,
            format!("cannot read the components: {e}"),
        )]
    })?;
    let mut loaded = LoadedComponents {
        source,
        file,
        doc,
        warnings: problems,
    };
    let errors = loaded.dependency_problems();
    let (errs, warns): (Vec<_>, Vec<_>) = errors.into_iter().partition(Diagnostic::is_error);
    loaded.warnings.extend(warns);
    if !errs.is_empty() {
        return Err(errs.into_iter().chain(loaded.warnings).collect());
    }
    Ok(loaded)
}

impl LoadedComponents {
    fn at(&self, pointer: &str, message: String, hint: &str) -> Diagnostic {
        let pos = self.doc.position_of(pointer);
        Diagnostic::error(&self.source, pos.line, pos.col, message).with_hint(hint)
    }

    /// A warning at the key of the node at a JSON pointer of this file.
    pub fn warning_at(&self, pointer: &str, message: String, hint: &str) -> Diagnostic {
        let pos = self.doc.key_position_of(pointer);
        Diagnostic::warning(&self.source, pos.line, pos.col, message).with_hint(hint)
    }

    /// The components that are containers and enabled.
    pub fn containers(&self) -> impl Iterator<Item = (&String, &Component)> {
        self.file.components.iter().filter(|(_, c)| {
            c.enabled && (c.image.is_some() || c.build.is_some() || c.builtin.is_some())
        })
    }

    fn dependency_problems(&self) -> Vec<Diagnostic> {
        let names: BTreeSet<&String> = self.containers().map(|(n, _)| n).collect();
        let mut out = Vec::new();
        for (name, component) in self.containers() {
            for (i, dep) in component.depends_on.iter().enumerate() {
                if !names.contains(dep) {
                    out.push(self.at(
                        &format!("/components/{}/depends_on/{i}", escape_pointer(name)),
                        format!("component \"{name}\" depends on \"{dep}\", which is not an enabled container component"),
                        "name another component of this file that has an image and is enabled",
                    ));
                }
            }
        }
        if out.is_empty()
            && let Err(cycle) = self.dependency_order()
        {
            out.push(self.at(
                &format!("/components/{}/depends_on", escape_pointer(&cycle[0])),
                format!("depends_on forms a cycle: {}", cycle.join(" -> ")),
                "remove one of the dependencies",
            ));
        }
        out
    }

    /// Container component names, each after the ones it depends on (ties by name).
    pub fn dependency_order(&self) -> Result<Vec<String>, Vec<String>> {
        let deps: BTreeMap<&String, &Vec<String>> =
            self.containers().map(|(n, c)| (n, &c.depends_on)).collect();
        let mut order: Vec<String> = Vec::new();
        let mut visiting: Vec<String> = Vec::new();
        fn visit(
            name: &String,
            deps: &BTreeMap<&String, &Vec<String>>,
            order: &mut Vec<String>,
            visiting: &mut Vec<String>,
        ) -> Result<(), Vec<String>> {
            if order.contains(name) {
                return Ok(());
            }
            if let Some(i) = visiting.iter().position(|v| v == name) {
                let mut cycle = visiting[i..].to_vec();
                cycle.push(name.clone());
                return Err(cycle);
            }
            visiting.push(name.clone());
            for dep in deps.get(name).copied().into_iter().flatten() {
                visit(dep, deps, order, visiting)?;
            }
            visiting.pop();
            order.push(name.clone());
            Ok(())
        }
        for name in deps.keys() {
            visit(name, &deps, &mut order, &mut visiting)?;
        }
        Ok(order)
    }

    /// The desired containers of `project`, dependencies first. Environment variables named by
    /// `from_env` are looked up with `lookup`; a missing one is an error at its place.
    pub fn desired(
        &self,
        project: &str,
        lookup: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<DesiredContainers, Vec<Diagnostic>> {
        let order = self
            .dependency_order()
            .map_err(|_| self.dependency_problems())?;
        let base = self
            .source
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut containers = Vec::new();
        let mut problems = Vec::new();
        for name in order {
            match self.container_spec(project, &name, &base, lookup) {
                Ok(spec) => containers.push(spec),
                Err(mut p) => problems.append(&mut p),
            }
        }
        if problems.is_empty() {
            Ok(DesiredContainers {
                project: project.to_string(),
                containers,
            })
        } else {
            Err(problems)
        }
    }

    fn container_spec(
        &self,
        project: &str,
        name: &str,
        base: &Path,
        lookup: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<ContainerSpec, Vec<Diagnostic>> {
        let c = &self.file.components[name];
        let pointer = format!("/components/{}", escape_pointer(name));
        let mut problems = Vec::new();
        let mut env = BTreeMap::new();
        if let Some(file) = &c.env_file {
            match read_env_file(&base.join(file)) {
                Ok(pairs) => env.extend(pairs.into_iter().map(|(k, v)| (k, EnvSource::Value(v)))),
                Err(e) => problems.push(self.at(
                    &format!("{pointer}/env_file"),
                    format!("cannot read env_file {file}: {e}"),
                    "the path is relative to components.toml",
                )),
            }
        }
        for (key, value) in &c.env {
            match env_source(value, lookup) {
                Ok(source) => {
                    env.insert(key.clone(), source);
                }
                Err(message) => problems.push(self.at(
                    &format!("{pointer}/env/{}", escape_pointer(key)),
                    format!("env {key} of component \"{name}\": {message}"),
                    "export the variable before running god",
                )),
            }
        }
        let mut ports = Vec::new();
        for (i, raw) in c.ports.iter().enumerate() {
            match parse_port(raw) {
                Ok(p) => ports.push(p),
                Err(message) => problems.push(self.at(
                    &format!("{pointer}/ports/{i}"),
                    format!("port {raw:?}: {message}"),
                    "write HOST_IP:HOST_PORT:CONTAINER_PORT, e.g. 127.0.0.1:8080:80",
                )),
            }
        }
        let healthcheck = match &c.healthcheck {
            Some(h) => match health_spec(h) {
                Ok(spec) => Some(spec),
                Err(message) => {
                    problems.push(self.at(
                        &format!("{pointer}/healthcheck"),
                        message,
                        "durations look like 500ms, 2s, 1m",
                    ));
                    None
                }
            },
            None => None,
        };
        let build = match &c.build {
            Some(decl) => match build_spec(decl, base) {
                Ok(b) => Some(b),
                Err(message) => {
                    problems.push(self.at(&format!("{pointer}/build"), format!("component \"{name}\": {message}"), "the context is a directory relative to components.toml, holding the Dockerfile"));
                    None
                }
            },
            None => None,
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        let image = match (&c.image, &build, &c.builtin) {
            (Some(image), _, _) => image.clone(),
            (None, Some(b), _) => format!(
                "god-build/{project}-{name}:{}",
                context_digest(Path::new(&b.context)).unwrap_or_default()
            ),
            (None, None, Some(_)) => crate::builtin::image(),
            (None, None, None) => String::new(),
        };
        let builtin = c.builtin.as_deref().and_then(Builtin::parse);
        let command = match (builtin, c.command.is_empty()) {
            (Some(service), true) => service.command(),
            _ => c.command.clone(),
        };
        let mut spec = ContainerSpec {
            name: format!("{project}-{name}"),
            component: name.to_string(),
            project: project.to_string(),
            image,
            build,
            builtin: c.builtin.clone(),
            command,
            env,
            network_mode: c
                .network_mode
                .clone()
                .or_else(|| c.networks.first().cloned()),
            ports,
            volumes: c.volumes.iter().map(|v| absolute_bind(v, base)).collect(),
            restart: c
                .restart
                .clone()
                .unwrap_or_else(|| "unless-stopped".to_string()),
            depends_on: c.depends_on.clone(),
            labels: c.labels.clone(),
            healthcheck,
            user: c.user.clone(),
            working_dir: c.working_dir.clone(),
            config_hash: String::new(),
        };
        spec.config_hash = spec.compute_hash(&SecretValues {
            env: lookup,
            broker_url: None,
        });
        Ok(spec)
    }
}

fn build_spec(decl: &BuildDecl, base: &Path) -> Result<BuildSpec, String> {
    let (context, dockerfile) = match decl {
        BuildDecl::Context(c) => (c.clone(), None),
        BuildDecl::Full {
            context,
            dockerfile,
        } => (context.clone(), dockerfile.clone()),
    };
    let dockerfile = dockerfile.unwrap_or_else(|| "Dockerfile".to_string());
    let dir = base.join(&context);
    if !dir.join(&dockerfile).is_file() {
        return Err(format!(
            "build context {} has no {dockerfile}",
            dir.display()
        ));
    }
    let absolute =
        std::fs::canonicalize(&dir).map_err(|e| format!("build context {}: {e}", dir.display()))?;
    Ok(BuildSpec {
        context: absolute.display().to_string(),
        dockerfile,
    })
}

/// A digest of every file of a build context (paths and contents), so that a change to the
/// context changes the image tag, and so the container.
pub fn context_digest(dir: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    files.sort();
    for file in files {
        hasher.update(
            file.strip_prefix(dir)
                .unwrap_or(&file)
                .to_string_lossy()
                .as_bytes(),
        );
        hasher.update([0]);
        hasher.update(std::fs::read(&file)?);
        hasher.update([0]);
    }
    Ok(hex::encode(&hasher.finalize()[..8]))
}

fn env_source(
    value: &Value,
    lookup: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<EnvSource, String> {
    match value {
        Value::String(s) => Ok(EnvSource::Value(s.clone())),
        Value::Number(n) => Ok(EnvSource::Value(n.to_string())),
        Value::Bool(b) => Ok(EnvSource::Value(b.to_string())),
        Value::Object(o) => {
            let var = o
                .get("from_env")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let secret = o.get("secret").and_then(Value::as_bool).unwrap_or(false);
            match (lookup(var), secret) {
                (None, _) => Err(format!("${var} is not set")),
                (Some(v), true) => Ok(EnvSource::Secret {
                    from_env: var.to_string(),
                    shown: masked_url(&v),
                }),
                (Some(v), false) => Ok(EnvSource::Value(v)),
            }
        }
        _ => Err("must be a string, a number, a boolean or { from_env = \"VAR\" }".to_string()),
    }
}

fn read_env_file(path: &Path) -> std::io::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect())
}

/// Parses `[host_ip:][host_port:]container_port[/protocol]`; the host side defaults to 127.0.0.1.
pub fn parse_port(raw: &str) -> Result<PortSpec, String> {
    let (addr, protocol) = match raw.rsplit_once('/') {
        Some((a, p)) => (a, p.to_string()),
        None => (raw, "tcp".to_string()),
    };
    let (host_ip, rest) = match addr.strip_prefix('[') {
        Some(v6) => {
            let (ip, rest) = v6.split_once("]:").ok_or("unclosed [ in an IPv6 address")?;
            (ip.to_string(), rest)
        }
        None if addr.matches(':').count() == 2 => {
            let (ip, rest) = addr.split_once(':').expect("two colons");
            (ip.to_string(), rest)
        }
        None => ("127.0.0.1".to_string(), addr),
    };
    let number = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| format!("{s:?} is not a port number"))
    };
    let (host_port, container_port) = match rest.split_once(':') {
        Some((h, c)) => (Some(number(h)?), number(c)?),
        None => (None, number(rest)?),
    };
    Ok(PortSpec {
        host_ip,
        host_port,
        container_port,
        protocol,
    })
}

fn absolute_bind(volume: &str, base: &Path) -> String {
    match volume.split_once(':') {
        Some((source, rest)) if source.starts_with('.') => {
            let absolute: PathBuf = base.join(source);
            format!("{}:{rest}", absolute.display())
        }
        _ => volume.to_string(),
    }
}

/// Parses `500ms`, `2s`, `1m`, `1h` into milliseconds.
pub fn parse_duration(raw: &str) -> Result<u64, String> {
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration"))?;
    let factor = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("{raw:?} is not a duration")),
    };
    Ok(n * factor)
}

fn health_spec(h: &HealthcheckDecl) -> Result<HealthSpec, String> {
    let duration =
        |d: &Option<String>, default: u64| d.as_deref().map(parse_duration).unwrap_or(Ok(default));
    let probe = match (&h.test, &h.http) {
        (Some(test), _) => HealthProbe::Command(test.clone()),
        (None, Some(url)) => HealthProbe::Http(url.clone()),
        (None, None) => return Err("a healthcheck needs `test` or `http`".to_string()),
    };
    Ok(HealthSpec {
        probe,
        interval_ms: duration(&h.interval, 5_000)?,
        timeout_ms: duration(&h.timeout, 3_000)?,
        retries: h.retries.unwrap_or(3),
        start_period_ms: duration(&h.start_period, 0)?,
    })
}

/// The default project: the name of the directory holding components.toml, reduced to the
/// characters Docker accepts in names.
pub fn default_project(components: &Path) -> String {
    let dir = std::fs::canonicalize(components)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("god"));
    let name: String = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_else(|| "god".to_string())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = name.trim_matches('-').to_string();
    if trimmed.is_empty() {
        "god".to_string()
    } else {
        trimmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<LoadedComponents, Vec<Diagnostic>> {
        load_components(SourceFile {
            path: PathBuf::from("/p/components.toml"),
            text: text.to_string(),
        })
    }

    fn env(var: &str) -> Option<String> {
        (var == "API_TOKEN").then(|| "s3cret".to_string())
    }

    const WEB: &str = r#"
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
    fn the_documented_form_gives_containers_in_dependency_order() {
        let loaded = load(WEB).unwrap();
        let desired = loaded.desired("p", &env).unwrap();
        let names: Vec<&str> = desired.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["p-queue-worker", "p-web"]);
        let web = &desired.containers[1];
        assert_eq!(
            web.env["API_TOKEN"],
            EnvSource::Secret {
                from_env: "API_TOKEN".into(),
                shown: None,
            }
        );
        assert_eq!(web.healthcheck.as_ref().unwrap().interval_ms, 2000);
        assert!(
            web.config_lines()
                .contains("env.API_TOKEN: *** (secret, from $API_TOKEN)")
        );
        assert!(!web.config_lines().contains("s3cret"));
        let worker = &desired.containers[0];
        assert_eq!(worker.ports[0].to_string(), "127.0.0.1:9000:9000/tcp");
        assert_eq!(worker.ports[1].to_string(), "0.0.0.0:9001:9001/udp");
    }

    #[test]
    fn a_rotated_secret_changes_the_hash() {
        let loaded = load(WEB).unwrap();
        let a = loaded.desired("p", &env).unwrap().containers[1]
            .config_hash
            .clone();
        let b = loaded
            .desired("p", &|v: &str| {
                (v == "API_TOKEN").then(|| "other".to_string())
            })
            .unwrap()
            .containers[1]
            .config_hash
            .clone();
        assert_ne!(a, b);
    }

    #[test]
    fn upstream_manifests_have_no_containers() {
        for f in [
            "components-2026-02-06.toml",
            "components-2026-03-15.toml",
            "components-2026-04-09.toml",
            "components-2026-04-19.toml",
        ] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/upstream")
                .join(f);
            let loaded = load_components(SourceFile::read(&path).unwrap())
                .unwrap_or_else(|e| panic!("{f}: {e:?}"));
            assert!(
                loaded.desired("p", &env).unwrap().containers.is_empty(),
                "{f}"
            );
        }
    }

    #[test]
    fn unknown_dependencies_and_cycles_are_errors_at_their_place() {
        let errs = load("[components.a]\nimage = \"x\"\ndepends_on = [\"nope\"]\n").unwrap_err();
        assert_eq!(
            errs[0].headline(),
            "/p/components.toml:3:15: component \"a\" depends on \"nope\", which is not an enabled container component"
        );
        let errs = load("[components.a]\nimage = \"x\"\ndepends_on = [\"b\"]\n[components.b]\nimage = \"x\"\ndepends_on = [\"a\"]\n").unwrap_err();
        assert!(errs[0].message.contains("cycle: a -> b -> a"), "{errs:?}");
    }

    #[test]
    fn a_missing_variable_is_an_error_naming_it() {
        let loaded =
            load("[components.a]\nimage = \"x\"\nenv = { T = { from_env = \"NOPE_NOT_SET\" } }\n")
                .unwrap();
        let errs = loaded.desired("p", &env).unwrap_err();
        assert!(
            errs[0]
                .headline()
                .contains("env T of component \"a\": $NOPE_NOT_SET is not set"),
            "{errs:?}"
        );
    }

    #[test]
    fn schema_violations_are_located() {
        let errs = load("[components.a]\nimage = \"x\"\nrestart = \"sometimes\"\n").unwrap_err();
        assert!(
            errs[0]
                .headline()
                .starts_with("/p/components.toml:3:11: /components/a/restart:"),
            "{errs:?}"
        );
    }

    #[test]
    fn ports_parse_like_compose() {
        assert_eq!(
            parse_port("8080").unwrap().to_string(),
            "127.0.0.1::8080/tcp"
        );
        assert_eq!(parse_port("[::1]:80:8080").unwrap().host_ip, "::1");
        assert!(parse_port("a:b").is_err());
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert!(parse_duration("5 s").is_err());
    }
}
