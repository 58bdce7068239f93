//! Reading components.toml: its syntax, its schema and its dependencies checked
//! ([`load_components`]), and what the rest of god asks of a loaded file.

use serde_json::Value;

use super::fields::parse_port;
use super::file::{Component, ComponentsFile};
use crate::inputs::SourceFile;
use crate::inputs::diagnostic::Diagnostic;
use crate::inputs::document::PositionedDocument;
use crate::inputs::{schema, toml_doc};
use crate::model::containers::interpolate;

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
    let problems = schema::components().problems(&source, &doc);
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
    pub(super) fn at(&self, pointer: &str, message: String, hint: &str) -> Diagnostic {
        let pos = self.doc.position_of(pointer);
        Diagnostic::error(&self.source, pos.line, pos.col, message).with_hint(hint)
    }

    /// A warning at the key of the node at a JSON pointer of this file.
    pub fn warning_at(&self, pointer: &str, message: String, hint: &str) -> Diagnostic {
        let pos = self.doc.key_position_of(pointer);
        Diagnostic::warning(&self.source, pos.line, pos.col, message).with_hint(hint)
    }

    /// Where god reaches the broker that components.toml runs (`broker = true`), from the
    /// ports it publishes for 5672 and 15672 and its `RABBITMQ_DEFAULT_USER`/`_PASS`
    /// (guest/guest by default): the AMQP and management URLs, when there is such a
    /// component, active under `profiles`, publishing both ports.
    pub fn broker_urls(
        &self,
        lookup: &(dyn Fn(&str) -> Option<String> + Sync),
        profiles: &[String],
    ) -> Option<(String, String)> {
        let (_, broker) = self.containers().find(|(_, c)| {
            c.broker && (c.profiles.is_empty() || c.profiles.iter().any(|p| profiles.contains(p)))
        })?;
        let published = |container_port: u16| {
            broker
                .ports
                .iter()
                .filter_map(|p| parse_port(p).ok())
                .find(|p| p.container_port == container_port && p.host_port.is_some())
                .map(|p| {
                    let host = match p.host_ip.as_str() {
                        "0.0.0.0" | "" => "127.0.0.1".to_string(),
                        "::" => "[::1]".to_string(),
                        ip if ip.contains(':') => format!("[{ip}]"),
                        ip => ip.to_string(),
                    };
                    format!("{host}:{}", p.host_port.unwrap_or_default())
                })
        };
        let (amqp, management) = (published(5672)?, published(15672)?);
        let variable = |name: &str, default: &str| match broker.env.get(name) {
            Some(Value::String(v)) => interpolate(v, lookup).ok().map(|(value, _)| value),
            Some(Value::Object(o)) => o.get("from_env").and_then(Value::as_str).and_then(lookup),
            Some(_) => None,
            None => Some(default.to_string()),
        };
        let mut url = url::Url::parse(&format!("amqp://{amqp}")).ok()?;
        url.set_username(&variable("RABBITMQ_DEFAULT_USER", "guest")?)
            .ok()?;
        url.set_password(Some(&variable("RABBITMQ_DEFAULT_PASS", "guest")?))
            .ok()?;
        Some((url.to_string(), format!("http://{management}")))
    }

    /// The components that are containers and enabled.
    pub fn containers(&self) -> impl Iterator<Item = (&String, &Component)> {
        self.file.components.iter().filter(|(_, c)| {
            c.enabled && (c.image.is_some() || c.build.is_some() || c.builtin.is_some())
        })
    }
}
