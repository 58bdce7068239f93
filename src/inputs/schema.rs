//! The JSON Schemas god ships (compiled into the binary), and their violations as diagnostics
//! at the offending place: an unknown key is reported at the key itself, with the known key it
//! most likely misspells.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use super::SourceFile;
use super::diagnostic::Diagnostic;
use super::document::{PositionedDocument, escape_pointer};
use crate::model::duration;

/// The registry schema (`schemas/registry.schema.json`).
pub const REGISTRY_SCHEMA: &str = include_str!("../../schemas/registry.schema.json");
/// The schema of topology files (`schemas/topology.schema.json`).
pub const TOPOLOGY_SCHEMA: &str = include_str!("../../schemas/topology.schema.json");
/// The components schema (`schemas/components.schema.json`).
pub const COMPONENTS_SCHEMA: &str = include_str!("../../schemas/components.schema.json");

/// A compiled schema with every property name it knows (for "did you mean").
pub struct Schema {
    validator: jsonschema::Validator,
    known_keys: BTreeSet<String>,
    file: &'static str,
}

/// The registry's schema, compiled once.
pub fn registry() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::compile(REGISTRY_SCHEMA, "schemas/registry.schema.json"))
}

/// The schema of topology files, compiled once.
pub fn topology() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::compile(TOPOLOGY_SCHEMA, "schemas/topology.schema.json"))
}

/// The components schema, compiled once.
pub fn components() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::compile(COMPONENTS_SCHEMA, "schemas/components.schema.json"))
}

impl Schema {
    /// Compiles a schema shipped with god (a broken one is a bug, hence the panic).
    fn compile(text: &str, file: &'static str) -> Self {
        let schema: Value = serde_json::from_str(text).expect("a shipped schema is JSON");
        let validator = jsonschema::validator_for(&schema).expect("a shipped schema compiles");
        let mut known_keys = BTreeSet::new();
        collect_property_names(&schema, &mut known_keys);
        Self {
            validator,
            known_keys,
            file,
        }
    }

    /// Every violation of the schema, each at the place of the offending node (an unknown key
    /// at the key).
    pub fn problems(&self, source: &SourceFile, doc: &PositionedDocument) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for error in self.validator.iter_errors(&doc.value) {
            let pointer = error.instance_path().to_string();
            let shown = if pointer.is_empty() { "/" } else { &pointer };
            match error.kind() {
                ValidationErrorKind::AdditionalProperties { unexpected } => {
                    for key in unexpected {
                        let at = doc.key_position_of(&format!("{pointer}/{}", escape_pointer(key)));
                        out.push(
                            Diagnostic::error(
                                source,
                                at.line,
                                at.col,
                                format!("unknown key {key:?} in {shown}"),
                            )
                            .with_hint(self.unknown_key_hint(key)),
                        );
                    }
                }
                kind if is_duration_error(kind) => {
                    let at = doc.position_of(&pointer);
                    let message = format!("{shown}: {} is not a duration", error.instance());
                    out.push(
                        Diagnostic::error(source, at.line, at.col, message).with_hint(format!(
                            "write {} (a number, no space, then ms, s, m, h or d); a plain integer is milliseconds where the file allows one",
                            duration::EXAMPLES
                        )),
                    );
                }
                _ => {
                    let at = doc.position_of(&pointer);
                    out.push(
                        Diagnostic::error(source, at.line, at.col, format!("{shown}: {error}"))
                            .with_hint(self.hint(&pointer)),
                    );
                }
            }
        }
        out
    }

    fn unknown_key_hint(&self, key: &str) -> String {
        let closest = self
            .known_keys
            .iter()
            .map(|k| (strsim::damerau_levenshtein(key, k), k))
            .filter(|(distance, _)| *distance <= 2)
            .min();
        match closest {
            Some((_, known)) => format!("did you mean {known:?}? (the keys are in {})", self.file),
            None => format!("remove it; the keys god knows are in {}", self.file),
        }
    }

    fn hint(&self, pointer: &str) -> String {
        match pointer.rsplit('/').next().unwrap_or_default() {
            "dead_letter" => {
                "dead_letter is true, false, or the name of the dead-letter queue".to_string()
            }
            "status" => "status is one of planned, active, deprecated".to_string(),
            _ => format!("see {} and the README", self.file),
        }
    }
}

/// Whether a violation is a value that is not a duration: the duration pattern failed, alone
/// or as a branch of a `oneOf` (durations that also take a number of milliseconds).
fn is_duration_error(kind: &ValidationErrorKind) -> bool {
    match kind {
        ValidationErrorKind::Pattern { pattern } => pattern == duration::PATTERN,
        ValidationErrorKind::OneOfNotValid { context } => context
            .iter()
            .flatten()
            .any(|e| is_duration_error(e.kind())),
        _ => false,
    }
}

/// Every name under a `properties` keyword anywhere in a schema.
fn collect_property_names(schema: &Value, names: &mut BTreeSet<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Object(properties)) = map.get("properties") {
                names.extend(properties.keys().cloned());
            }
            for value in map.values() {
                collect_property_names(value, names);
            }
        }
        Value::Array(items) => {
            for item in items {
                collect_property_names(item, names);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every duration a schema accepts as a string, by the pattern it gives.
    fn duration_patterns(schema: &Value, found: &mut Vec<String>) {
        match schema {
            Value::Object(map) => {
                if let Some(Value::String(p)) = map.get("pattern")
                    && p.contains("ms|s|m|h")
                {
                    found.push(p.clone());
                }
                map.values().for_each(|v| duration_patterns(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| duration_patterns(v, found)),
            _ => {}
        }
    }

    #[test]
    fn every_file_takes_durations_in_the_one_grammar() {
        let mut found = Vec::new();
        for text in [REGISTRY_SCHEMA, TOPOLOGY_SCHEMA, COMPONENTS_SCHEMA] {
            duration_patterns(&serde_json::from_str(text).unwrap(), &mut found);
        }
        assert_eq!(found.len(), 3, "one duration pattern per schema: {found:?}");
        for pattern in found {
            assert_eq!(pattern, crate::model::duration::PATTERN);
        }
    }
}
