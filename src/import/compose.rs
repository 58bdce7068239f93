//! `god import compose`: a docker-compose.yml written as components.toml. Compose's keys keep
//! their names; what components.toml cannot express is left out and listed, each at its line.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::inputs::SourceFile;
use crate::inputs::components::is_host_path;
use crate::inputs::diagnostic::Diagnostic;
use crate::inputs::document::{PositionedDocument, escape_pointer};
use crate::inputs::yaml;
use crate::model::containers::interpolate;
use crate::model::duration::parse_millis;

/// A compose file converted: the components.toml text and what was left out or changed.
pub struct Converted {
    /// The components.toml text.
    pub text: String,
    /// One warning per thing components.toml cannot express, at its line of the compose file.
    pub left_out: Vec<Diagnostic>,
    /// The services converted.
    pub services: usize,
}

/// Service keys copied as they are (same name, same shape in TOML).
const VERBATIM: [&str; 9] = [
    "image",
    "container_name",
    "hostname",
    "user",
    "working_dir",
    "restart",
    "cpus",
    "stop_grace_period",
    "profiles",
];

/// Service keys that only matter to Compose or to a later deployment step, left out silently.
const IGNORED: [&str; 1] = ["version"];

/// Converts a compose file; a file that is not YAML is an error at its line.
pub fn convert(compose: &SourceFile) -> Result<Converted, Diagnostic> {
    let doc = yaml::parse(&compose.text).map_err(|e| {
        Diagnostic::error(
            compose,
            e.position.line,
            e.position.col,
            format!("YAML syntax error: {}", e.message),
        )
    })?;
    let mut importer = Importer {
        compose,
        doc: &doc,
        left_out: Vec::new(),
        out: String::new(),
        broker_marked: false,
    };
    let services = importer.run();
    Ok(Converted {
        text: importer.out,
        left_out: importer.left_out,
        services,
    })
}

struct Importer<'a> {
    compose: &'a SourceFile,
    doc: &'a PositionedDocument,
    left_out: Vec<Diagnostic>,
    out: String,
    broker_marked: bool,
}

impl Importer<'_> {
    fn run(&mut self) -> usize {
        let root = self.doc.value.as_object().cloned().unwrap_or_default();
        let _ = writeln!(
            self.out,
            "# Converted from {} by `god import compose`.",
            self.compose.path.display()
        );
        for (key, value) in &root {
            match key.as_str() {
                "services" | "networks" | "volumes" => {}
                "name" => self.leave_out(
                    "/name",
                    "the project name: pass --project NAME (or set GOD_PROJECT) to god",
                ),
                k if k.starts_with("x-") => {
                    self.leave_out(&format!("/{}", escape_pointer(k)), "extension fields")
                }
                k if IGNORED.contains(&k) => {}
                k => self.leave_out(
                    &format!("/{}", escape_pointer(k)),
                    &format!("the top-level `{k}` section ({})", kind_of(value)),
                ),
            }
        }
        for section in ["networks", "volumes"] {
            if let Some(objects) = root.get(section).and_then(Value::as_object) {
                for (name, decl) in objects {
                    self.shared_object(section, name, decl);
                }
            }
        }
        let services = root
            .get("services")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let declared = root.get("volumes").and_then(Value::as_object);
        for (pointer, volume) in undeclared_volumes(&services, declared) {
            self.convert_differently(
                &pointer,
                &format!("volume \"{volume}\" is mounted but not declared under `volumes` (docker compose rejects the file): [volumes.{volume}] is added so the stack runs; check the name"),
            );
            let _ = writeln!(self.out, "\n[volumes.{}]", toml_key(&volume));
        }
        for (name, service) in &services {
            self.service(name, service.as_object().cloned().unwrap_or_default());
        }
        services.len()
    }

    fn leave_out(&mut self, pointer: &str, what: &str) {
        self.list(
            pointer,
            format!("{what}; not converted"),
            "components.toml has no equivalent: carry it over by hand if it matters",
        );
    }

    fn convert_differently(&mut self, pointer: &str, what: &str) {
        self.list(
            pointer,
            format!("converted, but {what}"),
            "check that this is what you want",
        );
    }

    fn list(&mut self, pointer: &str, message: String, hint: &str) {
        let at = self.doc.key_position_of(pointer);
        let path = pointer.trim_start_matches('/').replace('/', ".");
        self.left_out.push(
            Diagnostic::warning(self.compose, at.line, at.col, format!("{path}: {message}"))
                .with_hint(hint),
        );
    }

    fn shared_object(&mut self, section: &str, name: &str, decl: &Value) {
        let pointer = format!("/{section}/{}", escape_pointer(name));
        let _ = writeln!(self.out, "\n[{section}.{}]", toml_key(name));
        for (key, value) in decl.as_object().into_iter().flatten() {
            match key.as_str() {
                "name" | "driver" => self.line(key, value),
                "external" => match value {
                    Value::Bool(_) => self.line(key, value),
                    // Compose's old `external: { name: X }`.
                    Value::Object(o) => {
                        self.line("external", &Value::Bool(true));
                        if let Some(n) = o.get("name") {
                            self.line("name", n);
                        }
                    }
                    _ => self.leave_out(&format!("{pointer}/external"), "an unreadable `external`"),
                },
                "labels" => self.line(key, &labels(value)),
                other => self.leave_out(
                    &format!("{pointer}/{}", escape_pointer(other)),
                    &format!("`{other}` of a {}", section.trim_end_matches('s')),
                ),
            }
        }
    }

    fn service(&mut self, name: &str, service: Map<String, Value>) {
        let pointer = format!("/services/{}", escape_pointer(name));
        let at = |key: &str| format!("{pointer}/{}", escape_pointer(key));
        let _ = writeln!(self.out, "\n[components.{}]", toml_key(name));
        let image = service
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if image.contains("rabbitmq") && !self.broker_marked {
            self.broker_marked = true;
            self.convert_differently(
                &format!("{pointer}/image"),
                "this RabbitMQ is marked `broker = true`: god applies the topology to it, starting it first when needed, and talks to it through its published ports unless --amqp-url says otherwise",
            );
            self.line("broker", &Value::Bool(true));
        }
        let mut tables: Vec<(String, Map<String, Value>)> = Vec::new();
        for (key, value) in &service {
            match key.as_str() {
                k if VERBATIM.contains(&k) => self.line(k, &memory_case(value)),
                "mem_limit" => self.line(key, &memory_case(value)),
                "build" => self.build(&at(key), value),
                "command" => self.command(&at(key), value),
                "environment" => {
                    let env = self.environment(&at(key), value);
                    tables.push(("env".into(), env));
                }
                "env_file" => self.env_file(&at(key), value),
                "ports" => self.ports(&at(key), value),
                "volumes" => self.mounts(&at(key), value),
                "networks" => self.line(key, &networks(value)),
                "network_mode" => self.line(key, value),
                "depends_on" => self.line(key, &depends_on(value)),
                "labels" => self.line(key, &labels(value)),
                "extra_hosts" => self.line(key, &extra_hosts(value)),
                "ulimits" => self.line(key, value),
                "deploy" => self.deploy(&at(key), value),
                "healthcheck" => {
                    if let Some(check) = self.healthcheck(&at(key), value) {
                        tables.push(("healthcheck".into(), check));
                    }
                }
                other => self.leave_out(&at(other), &format!("`{other}`")),
            }
        }
        for (table, entries) in tables {
            if entries.is_empty() {
                continue;
            }
            let _ = writeln!(self.out, "\n[components.{}.{table}]", toml_key(name));
            for (k, v) in &entries {
                self.line(k, v);
            }
        }
    }

    fn line(&mut self, key: &str, value: &Value) {
        match toml_value(value) {
            Some(text) => {
                let _ = writeln!(self.out, "{} = {text}", toml_key(key));
            }
            None => {
                let _ = writeln!(self.out, "# {key}: null in the compose file");
            }
        }
    }

    fn build(&mut self, pointer: &str, value: &Value) {
        match value {
            Value::String(_) => self.line("build", value),
            Value::Object(o) => {
                let mut kept = Map::new();
                for (k, v) in o {
                    match k.as_str() {
                        "context" | "dockerfile" => {
                            kept.insert(k.clone(), v.clone());
                        }
                        other => self.leave_out(
                            &format!("{pointer}/{}", escape_pointer(other)),
                            &format!("build `{other}`"),
                        ),
                    }
                }
                self.line("build", &Value::Object(kept));
            }
            _ => self.leave_out(pointer, "an unreadable `build`"),
        }
    }

    /// Compose splits a string command the way a shell would, without running a shell.
    fn command(&mut self, pointer: &str, value: &Value) {
        match value {
            Value::String(s) => match shlex::split(s) {
                Some(words) => self.line("command", &Value::from(words)),
                None => self.leave_out(pointer, "a command with unbalanced quotes"),
            },
            Value::Array(_) => self.line("command", value),
            _ => self.leave_out(pointer, "an unreadable `command`"),
        }
    }

    fn environment(&mut self, pointer: &str, value: &Value) -> Map<String, Value> {
        let pairs: Vec<(String, Value)> = match value {
            Value::Object(o) => o.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .map(|item| match item.split_once('=') {
                    Some((k, v)) => (k.to_string(), Value::from(v)),
                    None => (item.to_string(), Value::Null),
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut env = Map::new();
        for (key, value) in pairs {
            let at = format!("{pointer}/{}", escape_pointer(&key));
            match self.env_value(&at, &key, &value) {
                Some(v) => {
                    env.insert(key, v);
                }
                None => continue,
            }
        }
        env
    }

    /// One environment value, as written: god interpolates `${VAR}`, `${VAR:-default}` and
    /// the rest of Compose's forms itself. A value it could not interpolate is written with
    /// its dollars escaped, and listed.
    fn env_value(&mut self, pointer: &str, key: &str, value: &Value) -> Option<Value> {
        let text = match value {
            Value::Null => {
                self.leave_out(
                    pointer,
                    &format!("`{key}` without a value (passed from the caller's environment): write {key} = \"${{{key}}}\""),
                );
                return None;
            }
            Value::String(s) => s.clone(),
            other => return Some(Value::from(other.to_string())),
        };
        let syntax = interpolate(&text, &|_| Some(String::new()));
        if let Err(why) = syntax {
            self.convert_differently(
                pointer,
                &format!("{text:?} cannot be interpolated ({why}): written with its $ escaped"),
            );
            return Some(Value::from(text.replace('$', "$$")));
        }
        Some(Value::from(text))
    }

    fn env_file(&mut self, pointer: &str, value: &Value) {
        match value {
            Value::String(_) => self.line("env_file", value),
            Value::Array(files) if files.len() == 1 => self.line("env_file", &files[0]),
            _ => self.leave_out(pointer, "several env files (components.toml takes one)"),
        }
    }

    fn ports(&mut self, pointer: &str, value: &Value) {
        let mut kept = Vec::new();
        for (i, port) in value.as_array().into_iter().flatten().enumerate() {
            let at = format!("{pointer}/{i}");
            let text = match port {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Object(o) => match (o.get("published"), o.get("target")) {
                    (Some(p), Some(t)) => format!("{}:{}", plain(p), plain(t)),
                    _ => {
                        self.leave_out(&at, "a port without published and target");
                        continue;
                    }
                },
                _ => continue,
            };
            if text.contains('$') || text.contains('-') {
                self.leave_out(&at, &format!("port {text:?} (ranges and variables)"));
                continue;
            }
            if text.matches(':').count() == 1 {
                self.convert_differently(
                    &at,
                    &format!("god publishes port {text:?} on 127.0.0.1 where Compose publishes it on every interface: write 0.0.0.0:{text} to keep Compose's behaviour"),
                );
            }
            kept.push(Value::from(text));
        }
        self.line("ports", &Value::Array(kept));
    }

    fn mounts(&mut self, pointer: &str, value: &Value) {
        let mut kept = Vec::new();
        for (i, mount) in value.as_array().into_iter().flatten().enumerate() {
            let at = format!("{pointer}/{i}");
            let text = match mount {
                Value::String(s) => s.clone(),
                Value::Object(o) => {
                    let (Some(source), Some(target)) = (o.get("source"), o.get("target")) else {
                        self.leave_out(&at, "a mount without source and target (tmpfs?)");
                        continue;
                    };
                    let ro = o.get("read_only") == Some(&Value::Bool(true));
                    format!(
                        "{}:{}{}",
                        plain(source),
                        plain(target),
                        if ro { ":ro" } else { "" }
                    )
                }
                _ => continue,
            };
            if text.contains('$') || !text.split(':').nth(1).is_some_and(|t| t.starts_with('/')) {
                self.leave_out(
                    &at,
                    &format!("mount {text:?}: god does not interpolate variables in mounts; write the paths out"),
                );
                continue;
            }
            kept.push(Value::from(text));
        }
        self.line("volumes", &Value::Array(kept));
    }

    fn deploy(&mut self, pointer: &str, value: &Value) {
        let limits = value
            .pointer("/resources/limits")
            .and_then(Value::as_object);
        for (key, _) in value.as_object().into_iter().flatten() {
            if key != "resources" {
                self.leave_out(
                    &format!("{pointer}/{}", escape_pointer(key)),
                    &format!("deploy `{key}` (swarm)"),
                );
            }
        }
        let mut kept = Map::new();
        for (key, v) in limits.into_iter().flatten() {
            match key.as_str() {
                "memory" => {
                    kept.insert("mem_limit".into(), memory_case(v));
                }
                "cpus" => {
                    kept.insert("cpus".into(), v.clone());
                }
                other => self.leave_out(
                    &format!("{pointer}/resources/limits/{}", escape_pointer(other)),
                    &format!("limit `{other}`"),
                ),
            }
        }
        if value.pointer("/resources/reservations").is_some() {
            self.leave_out(
                &format!("{pointer}/resources/reservations"),
                "resource reservations",
            );
        }
        for (k, v) in &kept {
            self.line(k, v);
        }
    }

    fn healthcheck(&mut self, pointer: &str, value: &Value) -> Option<Map<String, Value>> {
        let check = value.as_object()?;
        if check.get("disable") == Some(&Value::Bool(true)) {
            self.leave_out(
                pointer,
                "a disabled health check (god then waits for running)",
            );
            return None;
        }
        let mut out = Map::new();
        for (key, v) in check {
            let at = format!("{pointer}/{}", escape_pointer(key));
            match key.as_str() {
                "test" => {
                    let test = match v {
                        Value::String(s) => Value::from(vec!["CMD-SHELL".to_string(), s.clone()]),
                        other => other.clone(),
                    };
                    if test.as_array().and_then(|t| t.first()) == Some(&Value::from("NONE")) {
                        self.leave_out(&at, "test NONE (no health check)");
                        return None;
                    }
                    out.insert("test".into(), test);
                }
                "interval" | "timeout" | "start_period" => match v.as_str().and_then(seconds) {
                    Some(s) => {
                        out.insert(key.clone(), Value::from(s));
                    }
                    None => self.leave_out(&at, &format!("duration {v}")),
                },
                "retries" => {
                    out.insert(key.clone(), v.clone());
                }
                other => self.leave_out(&at, &format!("health check `{other}`")),
            }
        }
        out.contains_key("test").then_some(out)
    }
}

/// The named volumes services mount without the file declaring them, each with the pointer of
/// its first mount.
fn undeclared_volumes(
    services: &Map<String, Value>,
    declared: Option<&Map<String, Value>>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (service, decl) in services {
        let mounts = decl.get("volumes").and_then(Value::as_array);
        for (i, mount) in mounts.into_iter().flatten().enumerate() {
            let Some(source) = mount.as_str().and_then(|m| m.split(':').next()) else {
                continue;
            };
            // An interpolated source is a path the importer lists, not a volume.
            let named = !is_host_path(source) && !source.starts_with('$');
            let known = declared.is_some_and(|d| d.contains_key(source));
            if named && !known && !out.iter().any(|(_, v)| v == source) {
                let pointer = format!("/services/{}/volumes/{i}", escape_pointer(service));
                out.push((pointer, source.to_string()));
            }
        }
    }
    out
}

/// A Compose duration (`10s`, `1m30s`, `500ms`) in the units components.toml takes.
fn seconds(text: &str) -> Option<String> {
    let millis = parse_millis(text).ok()?;
    Some(match millis % 1000 {
        0 => format!("{}s", millis / 1000),
        _ => format!("{millis}ms"),
    })
}

/// Compose writes sizes as `256M`; components.toml reads either case, and writes lower case.
fn memory_case(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::from(s.to_lowercase()),
        other => other.clone(),
    }
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "a table",
        Value::Array(_) => "a list",
        _ => "a value",
    }
}

/// Labels as a table (Compose also writes `- "key=value"` lists).
fn labels(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Object(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(|item| match item.split_once('=') {
                    Some((k, v)) => (k.to_string(), Value::from(v)),
                    None => (item.to_string(), Value::from("")),
                })
                .collect(),
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), Value::from(plain(v))))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Networks as a list, or as a table when any has aliases (`null` entries become `{}`).
fn networks(value: &Value) -> Value {
    match value {
        Value::Object(o) if o.values().all(|v| v.is_null()) => {
            Value::from(o.keys().cloned().collect::<Vec<_>>())
        }
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    let aliases = v
                        .get("aliases")
                        .cloned()
                        .unwrap_or(Value::Array(Vec::new()));
                    let mut entry = Map::new();
                    entry.insert("aliases".into(), aliases);
                    (k.clone(), Value::Object(entry))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// depends_on as a list, or as a table of conditions.
fn depends_on(value: &Value) -> Value {
    match value {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    let mut entry = Map::new();
                    if let Some(c) = v.get("condition") {
                        entry.insert("condition".into(), c.clone());
                    }
                    (k.clone(), Value::Object(entry))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// extra_hosts as `name:address` strings (Compose also writes a table).
fn extra_hosts(value: &Value) -> Value {
    match value {
        Value::Object(o) => Value::from(
            o.iter()
                .map(|(k, v)| format!("{k}:{}", plain(v)))
                .collect::<Vec<_>>(),
        ),
        other => other.clone(),
    }
}

/// A key as TOML writes it: bare when it can be, else quoted.
fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_string()
    } else {
        toml::Value::String(key.to_string()).to_string()
    }
}

/// A JSON value as an inline TOML value; None for null, which TOML cannot hold.
fn toml_value(value: &Value) -> Option<String> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => toml::Value::String(s.clone()).to_string(),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .filter_map(toml_value)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(o) => format!(
            "{{ {} }}",
            o.iter()
                .filter_map(|(k, v)| Some(format!("{} = {}", toml_key(k), toml_value(v)?)))
                .collect::<Vec<_>>()
                .join(", ")
        )
        .replace("{  }", "{}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_durations_become_components_durations() {
        assert_eq!(seconds("10s").as_deref(), Some("10s"));
        assert_eq!(seconds("1m30s").as_deref(), Some("90s"));
        assert_eq!(seconds("500ms").as_deref(), Some("500ms"));
        assert_eq!(seconds("soon"), None);
    }

    #[test]
    fn keys_and_values_are_written_as_toml() {
        assert_eq!(toml_key("33god-network"), "33god-network");
        assert_eq!(toml_key("traefik.enable"), "\"traefik.enable\"");
        let v = serde_json::json!({"a": ["x", 1, true], "b": {}});
        assert_eq!(toml_value(&v).unwrap(), "{ a = [\"x\", 1, true], b = {} }");
    }
}
