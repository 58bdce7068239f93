//! docker-compose.yml, read only to compare it with components.toml: for the services both
//! describe, `god validate` warns where image, ports or environment disagree.

use std::collections::BTreeMap;

use serde_json::Value;

use super::SourceFile;
use super::components::{LoadedComponents, parse_port};
use super::diagnostic::Diagnostic;
use super::document::escape_pointer;
use super::yaml;

/// Compares a compose file with the components; one warning per disagreement, placed in
/// components.toml and naming the compose line.
pub fn compare(compose: &SourceFile, components: &LoadedComponents) -> Vec<Diagnostic> {
    let doc = match yaml::parse(&compose.text) {
        Ok(doc) => doc,
        Err(e) => {
            return vec![Diagnostic::warning(
                compose,
                e.position.line,
                e.position.col,
                format!(
                    "cannot read docker-compose.yml to compare it: {}",
                    e.message
                ),
            )];
        }
    };
    let mut out = Vec::new();
    let Some(services) = doc.value.get("services").and_then(Value::as_object) else {
        return out;
    };
    let described = components
        .file
        .components
        .iter()
        .filter(|(_, c)| c.enabled && (c.image.is_some() || c.builtin.is_some()));
    for (name, component) in described {
        let Some(service) = services.get(name) else {
            continue;
        };
        let pointer = format!("/services/{}", escape_pointer(name));
        let mut warn = |field: &str, what: String| {
            let at = doc.position_of(&format!("{pointer}/{field}"));
            out.push(components.warning_at(
                &format!("/components/{}", escape_pointer(name)),
                format!(
                    "component \"{name}\" and service \"{name}\" of {}:{}:{} disagree on {what}",
                    compose.path.display(),
                    at.line,
                    at.col
                ),
                "make components.toml and docker-compose.yml describe the same stack",
            ));
        };
        let image = service.get("image").and_then(Value::as_str);
        if component.builtin.is_none() && image.is_some() && image != component.image.as_deref() {
            warn(
                "image",
                format!(
                    "the image ({} vs {})",
                    component.image.as_deref().unwrap_or("none"),
                    image.unwrap_or("none")
                ),
            );
        }
        let theirs = compose_ports(service);
        let ours: Vec<String> = component
            .ports
            .iter()
            .filter_map(|p| parse_port(p).ok())
            .map(|p| p.to_string())
            .collect();
        if sorted(ours.clone()) != sorted(theirs.clone()) {
            warn(
                "ports",
                format!("the ports ({} vs {})", ours.join(", "), theirs.join(", ")),
            );
        }
        let env_ours: BTreeMap<String, Option<String>> = component
            .env
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str()
                        .map(str::to_string)
                        .or_else(|| v.is_number().then(|| v.to_string())),
                )
            })
            .collect();
        // What god gives its bundled services a compose file must spell out.
        let given_by_god = |key: &str| {
            component.builtin.is_some() && crate::services::builtin::GIVEN_VARIABLES.contains(&key)
        };
        for (key, theirs) in compose_env(service) {
            match env_ours.get(&key) {
                None if given_by_god(&key) => {}
                None => warn(
                    "environment",
                    format!("environment variable {key} (only in docker-compose.yml)"),
                ),
                Some(Some(ours)) if !theirs.contains("${") && *ours != theirs => {
                    warn(
                        "environment",
                        format!("the value of environment variable {key}"),
                    );
                }
                _ => {}
            }
        }
        for key in env_ours
            .keys()
            .filter(|k| !compose_env(service).contains_key(*k))
        {
            warn(
                "environment",
                format!("environment variable {key} (only in components.toml)"),
            );
        }
    }
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn compose_ports(service: &Value) -> Vec<String> {
    service
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| match p {
            Value::String(s) => parse_port(s).ok().map(|p| p.to_string()),
            Value::Number(n) => parse_port(&n.to_string()).ok().map(|p| p.to_string()),
            _ => None,
        })
        .collect()
}

fn compose_env(service: &Value) -> BTreeMap<String, String> {
    match service.get("environment") {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|item| match item.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (item.to_string(), "${".to_string()),
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// Compose files compared with components.toml, looked for beside it.
const COMPOSE_FILES: [&str; 2] = ["docker-compose.yml", "compose.yml"];

/// The compose file beside components.toml, if there is one.
pub fn beside(components: &std::path::Path) -> Option<std::path::PathBuf> {
    let dir = components
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    COMPOSE_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::components::load_components;
    use indoc::indoc;

    #[test]
    fn disagreements_on_image_ports_and_env_are_warned() {
        let components = load_components(SourceFile {
            path: "components.toml".into(),
            text: indoc! {r#"
                [components.web]
                image = "busybox:local"
                ports = ["8080:80"]
                env = { MODE = "demo", ONLY_HERE = "x" }
                [components.same]
                image = "a:1"
            "#}
            .into(),
        })
        .unwrap();
        let compose = SourceFile {
            path: "docker-compose.yml".into(),
            text: indoc! {r#"
                services:
                  web:
                    image: busybox:1.36
                    ports:
                      - "9090:80"
                    environment:
                      MODE: live
                      TOKEN: ${TOKEN}
                  same:
                    image: a:1
                  other:
                    image: x
            "#}
            .into(),
        };
        let warnings: Vec<String> = compare(&compose, &components)
            .iter()
            .map(Diagnostic::headline)
            .collect();
        assert_eq!(warnings.len(), 5, "{warnings:#?}");
        assert!(warnings[0].starts_with("components.toml:1:13: warning: component \"web\" and service \"web\" of docker-compose.yml:3:12 disagree on the image"), "{warnings:#?}");
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("the ports (127.0.0.1:8080:80/tcp vs 127.0.0.1:9090:80/tcp)"))
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("the value of environment variable MODE"))
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("TOKEN (only in docker-compose.yml)"))
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("ONLY_HERE (only in components.toml)"))
        );
    }
}
