//! Turning a component into the container god wants: its image (given, built from a context,
//! or god's own), environment (values, `env_file`, `from_env` secrets), ports, mounts, health
//! check, and the hash of it all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::build_context::context_digest;
use super::fields::{parse_cpus, parse_memory, parse_port};
use super::file::{BuildDecl, Component, HealthcheckDecl, SharedObjectDecl, UlimitDecl};
use super::loaded::LoadedComponents;
use crate::inputs::diagnostic::Diagnostic;
use crate::inputs::document::escape_pointer;
use crate::model::containers::{
    BuildSpec, Condition, ContainerSpec, DesiredContainers, EnvSource, HealthProbe, HealthSpec,
    NetworkSpec, RuntimeSpec, SecretValues, Ulimit, VolumeSpec, interpolate, looks_secret,
    masked_url,
};
use crate::model::duration::parse_millis as parse_duration;
use crate::services::builtin::Builtin;

impl LoadedComponents {
    /// The desired containers of `project`, dependencies first. Environment variables named by
    /// `from_env` are looked up with `lookup`; a missing one is an error at its place.
    pub fn desired(
        &self,
        project: &str,
        lookup: &(dyn Fn(&str) -> Option<String> + Sync),
        profiles: &[String],
    ) -> Result<DesiredContainers, Vec<Diagnostic>> {
        let order = self
            .dependency_order()
            .map_err(|_| self.dependency_problems())?;
        let active = |name: &String| {
            let wanted = &self.file.components[name].profiles;
            wanted.is_empty() || wanted.iter().any(|p| profiles.contains(p))
        };
        let inactive: BTreeMap<String, Vec<String>> = order
            .iter()
            .filter(|name| !active(name))
            .map(|name| (name.clone(), self.file.components[name].profiles.clone()))
            .collect();
        let dependency_problems = self.inactive_dependencies(&inactive);
        if !dependency_problems.is_empty() {
            return Err(dependency_problems);
        }
        let order: Vec<String> = order.into_iter().filter(|n| active(n)).collect();
        let networks = self.networks(project);
        let volumes = self.volumes(project);
        let base = self
            .source
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut containers = Vec::new();
        let mut problems = Vec::new();
        let shared = Shared {
            networks: &networks,
            volumes: &volumes,
            run_once: self.run_once(),
        };
        for name in order {
            match self.container_spec(project, &name, &base, lookup, &shared) {
                Ok(spec) => containers.push(spec),
                Err(mut p) => problems.append(&mut p),
            }
        }
        if problems.is_empty() {
            let renamed_from = self
                .file
                .components
                .iter()
                .filter(|(_, c)| !c.renamed_from.is_empty())
                .map(|(name, c)| (name.clone(), c.renamed_from.clone()))
                .collect();
            Ok(DesiredContainers {
                project: project.to_string(),
                containers,
                inactive,
                networks,
                volumes,
                renamed_from,
            })
        } else {
            Err(problems)
        }
    }

    /// A component that runs depending on one whose profiles are all inactive: an error at the
    /// dependency, naming the profile that would bring it.
    fn inactive_dependencies(&self, inactive: &BTreeMap<String, Vec<String>>) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for (name, component) in self
            .containers()
            .filter(|(n, _)| !inactive.contains_key(*n))
        {
            for (i, dep) in component.depends_on.names().enumerate() {
                if let Some(profiles) = inactive.get(dep) {
                    out.push(self.at(
                        &format!(
                            "/components/{}{}",
                            escape_pointer(name),
                            component.depends_on.pointer(i)
                        ),
                        format!("component \"{name}\" depends on \"{dep}\", which runs only in profile {}, not active", profiles.join(", ")),
                        &format!("pass --profile {} (or take \"{dep}\" out of its profiles)", profiles[0]),
                    ));
                }
            }
        }
        out
    }

    /// The project's networks: `[networks.KEY]`, named `name`, else `KEY` when external (as
    /// Compose), else `<project>_KEY`.
    fn networks(&self, project: &str) -> Vec<NetworkSpec> {
        self.file
            .networks
            .iter()
            .map(|(key, decl)| NetworkSpec {
                name: engine_name(project, key, decl),
                key: key.clone(),
                project: project.to_string(),
                driver: decl.driver.clone().unwrap_or_else(|| "bridge".to_string()),
                external: decl.external,
            })
            .collect()
    }

    /// The project's named volumes, named as its networks are.
    fn volumes(&self, project: &str) -> Vec<VolumeSpec> {
        self.file
            .volumes
            .iter()
            .map(|(key, decl)| VolumeSpec {
                name: engine_name(project, key, decl),
                key: key.clone(),
                project: project.to_string(),
                driver: decl.driver.clone().unwrap_or_else(|| "local".to_string()),
                external: decl.external,
            })
            .collect()
    }

    /// The components another depends on with `service_completed_successfully`: one-shot.
    fn run_once(&self) -> BTreeSet<String> {
        self.containers()
            .flat_map(|(_, c)| c.depends_on.entries.iter())
            .filter(|(_, condition)| *condition == Condition::ServiceCompletedSuccessfully)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The networks a component joins (engine name → aliases: its own name first), or the
    /// problem at the key that names an undeclared one.
    fn attachments(
        &self,
        name: &str,
        c: &Component,
        networks: &[NetworkSpec],
    ) -> Result<BTreeMap<String, Vec<String>>, Diagnostic> {
        let pointer = format!("/components/{}/networks", escape_pointer(name));
        if c.network_mode.is_some() && !c.networks.0.is_empty() {
            return Err(self.at(
                &pointer,
                format!("component \"{name}\" sets both network_mode and networks"),
                "network_mode (host, bridge, none) and networks cannot be combined, as in Compose: keep one",
            ));
        }
        let mut out = BTreeMap::new();
        for (key, aliases) in &c.networks.0 {
            let Some(network) = networks.iter().find(|n| &n.key == key) else {
                return Err(self.at(
                    &pointer,
                    format!("component \"{name}\" joins network \"{key}\", which [networks] does not declare"),
                    &format!("add [networks.{key}] (with external = true when it exists already)"),
                ));
            };
            let mut all = vec![name.to_string()];
            all.extend(aliases.iter().filter(|a| a.as_str() != name).cloned());
            out.insert(network.name.clone(), all);
        }
        Ok(out)
    }

    /// The mounts of a component: host paths made absolute, named volumes turned into their
    /// engine names; or the problem at a mount of a volume `[volumes]` does not declare.
    fn mounts(
        &self,
        name: &str,
        c: &Component,
        base: &Path,
        volumes: &[VolumeSpec],
    ) -> Result<Vec<String>, Diagnostic> {
        let mut out = Vec::new();
        for (i, mount) in c.volumes.iter().enumerate() {
            let (source, rest) = mount.split_once(':').unwrap_or((mount, ""));
            if is_host_path(source) {
                out.push(absolute_bind(mount, base));
                continue;
            }
            let Some(volume) = volumes.iter().find(|v| v.key == source) else {
                return Err(self.at(
                    &format!("/components/{}/volumes/{i}", escape_pointer(name)),
                    format!("component \"{name}\" mounts volume \"{source}\", which [volumes] does not declare"),
                    &format!("add [volumes.{source}], or write a host path (./{source} or /path)"),
                ));
            };
            out.push(format!("{}:{rest}", volume.name));
        }
        if let Some(tree) = &c.schemas {
            out.push(self.schema_tree_mount(name, c, &base.join(tree))?);
        }
        Ok(out)
    }

    /// The read-only mount of a gateway's schema tree, or the problem at its `schemas` key: a
    /// component other than god's gateway, or a tree that is not a directory.
    fn schema_tree_mount(
        &self,
        name: &str,
        c: &Component,
        tree: &Path,
    ) -> Result<String, Diagnostic> {
        let pointer = format!("/components/{}/schemas", escape_pointer(name));
        if c.builtin.as_deref().and_then(Builtin::parse) != Some(Builtin::Gateway) {
            return Err(self.at(
                &pointer,
                format!("component \"{name}\" is not god's gateway: `schemas` gives a schema tree to builtin = \"gateway\" only"),
                "move the key to the gateway's component, or mount the tree with volumes and set HOLYFIELDS_SCHEMA_DIR",
            ));
        }
        if !tree.is_dir() {
            return Err(self.at(
                &pointer,
                format!("component \"{name}\": schema tree {} is not a directory", tree.display()),
                "the path is relative to components.toml: the schemas/ folder of a Holyfields checkout",
            ));
        }
        Ok(format!(
            "{}:{}:ro",
            tree.display(),
            crate::services::builtin::SCHEMA_MOUNT
        ))
    }

    fn container_spec(
        &self,
        project: &str,
        name: &str,
        base: &Path,
        lookup: &(dyn Fn(&str) -> Option<String> + Sync),
        shared: &Shared<'_>,
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
                    "export the variable, set it in .env beside components.toml (or the --env-file), or give a default: ${VAR:-value}",
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
        let networks = self
            .attachments(name, c, shared.networks)
            .map_err(|p| problems.push(p))
            .unwrap_or_default();
        let volumes = self
            .mounts(name, c, base, shared.volumes)
            .map_err(|p| problems.push(p))
            .unwrap_or_default();
        let runtime = match runtime_spec(c) {
            Ok(runtime) => runtime,
            Err((key, message)) => {
                problems.push(self.at(
                    &format!("{pointer}/{key}"),
                    format!("component \"{name}\": {message}"),
                    "memory as 512m or 1g, cpus as 0.5, durations as 30s; set a limit once (mem_limit or deploy.resources.limits.memory)",
                ));
                RuntimeSpec::default()
            }
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
            (None, None, Some(_)) => crate::services::builtin::image(),
            (None, None, None) => String::new(),
        };
        let builtin = c.builtin.as_deref().and_then(Builtin::parse);
        let command = match (builtin, c.command.is_empty()) {
            (Some(service), true) => service.command(c.network_mode.as_deref() == Some("host")),
            _ => c.command.clone(),
        };
        if c.schemas.is_some() {
            env.entry(crate::services::builtin::SCHEMA_DIR_VARIABLE.to_string())
                .or_insert_with(|| EnvSource::Value(crate::services::builtin::SCHEMA_MOUNT.into()));
        }
        let mut spec = ContainerSpec {
            name: runtime
                .container_name
                .clone()
                .unwrap_or_else(|| format!("{project}-{name}")),
            component: name.to_string(),
            project: project.to_string(),
            image,
            build,
            builtin: c.builtin.clone(),
            command,
            env,
            network_mode: c.network_mode.clone(),
            networks,
            ports,
            volumes,
            restart: c.restart.clone().unwrap_or_else(|| {
                let once = shared.run_once.contains(name);
                if once { "no" } else { "unless-stopped" }.to_string()
            }),
            depends_on: c.depends_on.names().cloned().collect(),
            conditions: c
                .depends_on
                .entries
                .iter()
                .filter(|(_, condition)| *condition != Condition::ServiceHealthy)
                .map(|(n, condition)| (n.clone(), *condition))
                .collect(),
            run_once: shared.run_once.contains(name),
            broker: c.broker,
            labels: c.labels.clone(),
            healthcheck,
            user: c.user.clone(),
            working_dir: c.working_dir.clone(),
            runtime,
            config_hash: String::new(),
        };
        spec.config_hash = spec.compute_hash(&SecretValues {
            env: lookup,
            broker_url: None,
        });
        Ok(spec)
    }
}

/// What every container of the project may refer to.
struct Shared<'a> {
    networks: &'a [NetworkSpec],
    volumes: &'a [VolumeSpec],
    run_once: BTreeSet<String>,
}

/// The engine's name of a network or volume: `name`, else the key when external, else
/// `<project>_<key>` (Compose's rule).
fn engine_name(project: &str, key: &str, decl: &SharedObjectDecl) -> String {
    match (&decl.name, decl.external) {
        (Some(name), _) => name.clone(),
        (None, true) => key.to_string(),
        (None, false) => format!("{project}_{key}"),
    }
}

/// A component's limits, host name and stop settings; on a problem, the key at fault and why.
fn runtime_spec(c: &Component) -> Result<RuntimeSpec, (&'static str, String)> {
    let limits = c
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.limits.as_ref());
    let memory = one_of(
        c.mem_limit.as_ref(),
        limits.and_then(|l| l.memory.as_ref()),
        "mem_limit",
    )?;
    let cpus = one_of(
        c.cpus.as_ref(),
        limits.and_then(|l| l.cpus.as_ref()),
        "cpus",
    )?;
    let stop_grace_period_s = match &c.stop_grace_period {
        Some(raw) => Some(
            parse_duration(raw)
                .map(|ms| (ms / 1000) as i64)
                .map_err(|e| ("stop_grace_period", e))?,
        ),
        None => None,
    };
    Ok(RuntimeSpec {
        container_name: c.container_name.clone(),
        hostname: c.hostname.clone(),
        extra_hosts: c
            .extra_hosts
            .iter()
            .map(|h| h.replacen('=', ":", 1))
            .collect(),
        memory_bytes: memory
            .map(parse_memory)
            .transpose()
            .map_err(|e| ("mem_limit", e))?,
        nano_cpus: cpus.map(parse_cpus).transpose().map_err(|e| ("cpus", e))?,
        ulimits: c
            .ulimits
            .iter()
            .map(|(name, limit)| {
                let (soft, hard) = match *limit {
                    UlimitDecl::Both(n) => (n, n),
                    UlimitDecl::Pair { soft, hard } => (soft, hard),
                };
                (name.clone(), Ulimit { soft, hard })
            })
            .collect(),
        stop_grace_period_s,
    })
}

/// A limit written at most once: as the component's own key or under `deploy`.
fn one_of<'a>(
    own: Option<&'a Value>,
    deployed: Option<&'a Value>,
    key: &'static str,
) -> Result<Option<&'a Value>, (&'static str, String)> {
    match (own, deployed) {
        (Some(_), Some(_)) => Err((
            key,
            format!("{key} is set twice, as {key} and under deploy.resources.limits"),
        )),
        (own, deployed) => Ok(own.or(deployed)),
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

fn env_source(
    value: &Value,
    lookup: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<EnvSource, String> {
    match value {
        Value::String(s) if s.contains('$') => {
            let (value, read) = interpolate(s, lookup)?;
            if read.iter().any(|v| looks_secret(v)) {
                Ok(EnvSource::Template {
                    template: s.clone(),
                })
            } else {
                Ok(EnvSource::Value(value))
            }
        }
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

/// Whether a mount's source is a path on the host (`/abs`, `./rel`, `~/x`), as opposed to the
/// key of a named volume.
pub fn is_host_path(source: &str) -> bool {
    source.starts_with(['/', '.', '~'])
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
    use indoc::indoc;
    use std::path::Path;

    use crate::inputs::SourceFile;
    use crate::inputs::components::loaded::load_components;
    use crate::inputs::components::tests::{WEB, env, load};
    use crate::model::containers::EnvSource;

    #[test]
    fn the_documented_form_gives_containers_in_dependency_order() {
        let loaded = load(WEB).unwrap();
        let desired = loaded.desired("p", &env, &[]).unwrap();
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
        let a = loaded.desired("p", &env, &[]).unwrap().containers[1]
            .config_hash
            .clone();
        let b = loaded
            .desired(
                "p",
                &|v: &str| (v == "API_TOKEN").then(|| "other".to_string()),
                &[],
            )
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
                loaded
                    .desired("p", &env, &[])
                    .unwrap()
                    .containers
                    .is_empty(),
                "{f}"
            );
        }
    }

    #[test]
    fn a_missing_variable_is_an_error_naming_it() {
        let loaded = load(indoc! {r#"
                [components.a]
                image = "x"
                env = { T = { from_env = "NOPE_NOT_SET" } }
            "#})
        .unwrap();
        let errs = loaded.desired("p", &env, &[]).unwrap_err();
        assert!(
            errs[0]
                .headline()
                .contains("env T of component \"a\": $NOPE_NOT_SET is not set"),
            "{errs:?}"
        );
    }
}
