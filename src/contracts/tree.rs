//! A Holyfields schema tree: JSON Schema 2020-12 files in folders by domain, read into the
//! event types they describe, each compiled once with its `$ref`s resolved offline and its
//! formats (uuid, date-time, email) asserted.
//!
//! The event type and version come from the path: `theboard/meeting.created.v1.schema.json`
//! and `agent/feedback/requested.v1.json` are `theboard.meeting.created` v1 and
//! `agent.feedback.requested` v1; a file without `.v<N>` is version 1; an `event_type` `const`
//! in the schema names its type too. Folders starting with `_` (and `common/`) hold shared
//! types, not events.
//!
//! A schema describes the whole event when its top-level `properties` name `event_type` or
//! `payload`, or when it includes another schema through `allOf` (the older Holyfields form,
//! extending `_common/base_event`); any other schema describes the payload alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};

use super::resolver::{TreeResolver, file_uri};
use crate::inputs::SourceFile;
use crate::inputs::diagnostic::Diagnostic;

/// One schema violation: where in the event (a JSON pointer), what, and which schema file said so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON pointer into the event.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
    /// The schema file, relative to the tree (none for god's own envelope schema).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
}

/// A schema file of the tree.
#[derive(Debug, Clone)]
pub struct SchemaFile {
    /// The file, with its text (for positions in diagnostics).
    pub source: SourceFile,
    /// Its path relative to the tree, with `/` separators.
    pub relative: String,
    /// The schema.
    pub value: Value,
}

impl SchemaFile {
    /// Its `$id`, when it has one.
    pub fn id(&self) -> Option<&str> {
        self.value.get("$id").and_then(Value::as_str)
    }
}

/// The schema of one version of one event type.
pub struct EventSchema {
    /// The event type (`theboard.meeting.created`).
    pub event_type: String,
    /// Its version (1 for `.v1`).
    pub version: u32,
    /// The file, relative to the tree.
    pub file: String,
    /// Whether it describes the whole event (else its payload).
    pub whole_event: bool,
    validator: jsonschema::Validator,
    /// The payload's schema when the schema describes the whole event (`/properties/payload`).
    payload: Option<jsonschema::Validator>,
}

impl EventSchema {
    /// What an event posted whole (envelope and payload) violates.
    pub fn event_violations(&self, envelope: &Value) -> Vec<Violation> {
        match self.whole_event {
            true => self.report(&self.validator, envelope, ""),
            false => match envelope.get("payload") {
                Some(payload) => self.report(&self.validator, payload, "/payload"),
                None => Vec::new(),
            },
        }
    }

    /// What a payload violates (the payload schema, or a whole-event schema's payload part).
    pub fn payload_violations(&self, payload: &Value) -> Vec<Violation> {
        match (self.whole_event, &self.payload) {
            (false, _) => self.report(&self.validator, payload, "/payload"),
            (true, Some(validator)) => self.report(validator, payload, "/payload"),
            (true, None) => Vec::new(),
        }
    }

    fn report(
        &self,
        validator: &jsonschema::Validator,
        value: &Value,
        prefix: &str,
    ) -> Vec<Violation> {
        if validator.is_valid(value) {
            return Vec::new();
        }
        validator
            .iter_errors(value)
            .map(|e| Violation {
                pointer: format!("{prefix}{}", e.instance_path()),
                message: e.to_string(),
                schema: Some(self.file.clone()),
            })
            .collect()
    }
}

/// Which schema an event gets.
pub enum Selected<'a> {
    /// The schema of its type and version.
    Schema(&'a EventSchema),
    /// Its type has no schema.
    Unknown,
    /// Its type has schemas, but none of the version it asks for.
    NoSuchVersion(Vec<u32>),
}

/// A loaded tree: its files, its event schemas, and what is wrong in it.
pub struct SchemaTree {
    /// The folder.
    pub root: PathBuf,
    /// Every schema file, in path order.
    pub files: Vec<SchemaFile>,
    events: BTreeMap<String, BTreeMap<u32, EventSchema>>,
    /// What is wrong (errors) or doubtful (warnings), each at its file and line.
    pub problems: Vec<Diagnostic>,
    /// Its documents by file URI and `$id`.
    pub resolver: TreeResolver,
}

impl SchemaTree {
    /// Reads every schema under `root`; an unreadable folder is an error, every problem of a
    /// file is a diagnostic of the tree.
    pub fn load(root: &Path) -> Result<Self, String> {
        if !root.is_dir() {
            return Err(format!("{}: no such folder", root.display()));
        }
        let canonical = root
            .canonicalize()
            .map_err(|e| format!("{}: {e}", root.display()))?;
        let mut problems = Vec::new();
        let files = read_files(root, &mut problems);
        problems.extend(id_problems(&files));
        let located: Vec<PathBuf> = files.iter().map(|f| canonical.join(&f.relative)).collect();
        let resolver = TreeResolver::new(
            files
                .iter()
                .zip(&located)
                .map(|(f, path)| (path.as_path(), f.id(), &f.value)),
        );
        problems.extend(
            files
                .iter()
                .zip(&located)
                .flat_map(|(f, path)| reference_problems(f, path, &resolver)),
        );
        let mut tree = Self {
            root: canonical,
            files: Vec::new(),
            events: BTreeMap::new(),
            problems,
            resolver: resolver.clone(),
        };
        for (file, path) in files.iter().zip(&located) {
            tree.add_events(file, path, &resolver);
        }
        tree.files = files;
        Ok(tree)
    }

    /// Whether the tree has errors (warnings do not count).
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(Diagnostic::is_error)
    }

    /// The event types with a schema.
    pub fn event_types(&self) -> impl Iterator<Item = &str> {
        self.events.keys().map(String::as_str)
    }

    /// The schema for `event_type` at the version an event asks for (`v2`, `2`, `2.1.0`); a
    /// type with a single version uses it whatever the event says.
    pub fn select(&self, event_type: &str, version: Option<&Value>) -> Selected<'_> {
        let Some(versions) = self.events.get(event_type) else {
            return Selected::Unknown;
        };
        if versions.len() == 1 {
            return Selected::Schema(versions.values().next().expect("one version"));
        }
        let wanted = version.and_then(major_version);
        match wanted.and_then(|v| versions.get(&v)) {
            Some(schema) => Selected::Schema(schema),
            None => Selected::NoSuchVersion(versions.keys().copied().collect()),
        }
    }

    /// The event schemas, by type and version.
    pub fn schemas(&self) -> impl Iterator<Item = &EventSchema> {
        self.events.values().flat_map(BTreeMap::values)
    }

    /// Every event type the tree's files name (by path or `event_type` const), those that do
    /// not compile included.
    pub fn named_types(&self) -> BTreeSet<String> {
        self.files
            .iter()
            .filter_map(|f| {
                let (path_type, _) = event_of_path(&f.relative)?;
                Some([Some(path_type), event_type_const(&f.value)])
            })
            .flatten()
            .flatten()
            .collect()
    }

    fn add_events(&mut self, file: &SchemaFile, path: &Path, resolver: &TreeResolver) {
        let Some((path_type, version)) = event_of_path(&file.relative) else {
            return;
        };
        let constant = event_type_const(&file.value);
        let mut types = vec![path_type.clone()];
        if let Some(constant) = constant.filter(|c| *c != path_type) {
            types.push(constant);
        }
        for event_type in types {
            if let Some(other) = self.events.get(&event_type).and_then(|v| v.get(&version)) {
                let line = line_of(&file.source.text, "\"$id\"").unwrap_or(1);
                self.problems.push(
                    Diagnostic::warning(
                        &file.source,
                        line,
                        1,
                        format!(
                            "{event_type} v{version} has a schema already ({}): this file does not replace it",
                            other.file
                        ),
                    )
                    .with_hint("one schema per event type and version: rename the file or its event_type const"),
                );
                continue;
            }
            match compile(path, &file.value, resolver) {
                Ok((validator, payload)) => {
                    let schema = EventSchema {
                        event_type: event_type.clone(),
                        version,
                        file: file.relative.clone(),
                        whole_event: describes_whole_event(&file.value),
                        validator,
                        payload,
                    };
                    self.events
                        .entry(event_type)
                        .or_default()
                        .insert(version, schema);
                }
                Err(why) => {
                    if !self
                        .problems
                        .iter()
                        .any(|p| p.file == file.source.path && p.is_error())
                    {
                        self.problems.push(Diagnostic::error(
                            &file.source,
                            1,
                            1,
                            format!("the schema does not compile: {why}"),
                        ));
                    }
                    return;
                }
            }
        }
    }
}

/// Every JSON file under `root` that is a schema, in path order; one that is not JSON is a
/// problem at its line.
fn read_files(root: &Path, problems: &mut Vec<Diagnostic>) -> Vec<SchemaFile> {
    let mut files = Vec::new();
    let walk = walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walk.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy();
        let skipped = NOT_SCHEMAS.contains(&name.as_ref()) || name.starts_with("tsconfig");
        if !entry.file_type().is_file() || path.extension().is_none_or(|e| e != "json") || skipped {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let source = SourceFile {
            path: path.to_path_buf(),
            text,
        };
        let value: Value = match serde_json::from_str(&source.text) {
            Ok(v) => v,
            Err(e) => {
                problems.push(Diagnostic::error(
                    &source,
                    e.line(),
                    e.column(),
                    format!("not JSON: {e}"),
                ));
                continue;
            }
        };
        if !is_schema(&value) {
            continue;
        }
        let relative = path
            .strip_prefix(root)
            .unwrap_or(path)
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        files.push(SchemaFile {
            source,
            relative,
            value,
        });
    }
    files
}

/// Files beside the schemas that are JSON but not schemas.
const NOT_SCHEMAS: [&str; 4] = [
    "package.json",
    "package-lock.json",
    "tsconfig.json",
    "composer.json",
];

/// Whether a JSON document is a schema (a flat payload schema may be as short as
/// `{"type": "object", "required": [...]}`).
fn is_schema(value: &Value) -> bool {
    let keys = [
        "$schema",
        "$id",
        "properties",
        "allOf",
        "oneOf",
        "anyOf",
        "$defs",
        "type",
        "required",
    ];
    value.is_object() && keys.iter().any(|k| value.get(k).is_some())
}

/// Duplicate `$id`s (errors) and `$id`s that disagree with their path (warnings).
fn id_problems(files: &[SchemaFile]) -> Vec<Diagnostic> {
    let mut seen: BTreeMap<&str, &SchemaFile> = BTreeMap::new();
    let mut problems = Vec::new();
    for file in files {
        let Some(id) = file.id() else { continue };
        let (line, col) = place_of(&file.source.text, &Value::from(id).to_string());
        if let Some(first) = seen.get(id) {
            problems.push(
                Diagnostic::error(
                    &file.source,
                    line,
                    col,
                    format!("duplicate $id {id:?}: {} has it too", first.relative),
                )
                .with_hint("a $id names one schema: give this one its own"),
            );
            continue;
        }
        seen.insert(id, file);
        let path = id.split('#').next().unwrap_or(id);
        if !path.ends_with(&format!("/{}", file.relative)) && !path.ends_with(&file.relative) {
            problems.push(
                Diagnostic::warning(
                    &file.source,
                    line,
                    col,
                    format!("$id {id:?} disagrees with the file's path {}", file.relative),
                )
                .with_hint("references by $id and by path then lead to different places: make the $id end with the path"),
            );
        }
    }
    problems
}

/// Each `$ref` of a file (at `path`) that does not resolve, at its line.
fn reference_problems(file: &SchemaFile, path: &Path, resolver: &TreeResolver) -> Vec<Diagnostic> {
    let base = file_uri(path);
    let mut references = Vec::new();
    collect_references(&file.value, &mut references);
    references
        .into_iter()
        .filter_map(|reference| {
            let why = resolver.check(&base, reference).err()?;
            let (line, col) = place_of(&file.source.text, &Value::from(reference).to_string());
            Some(
                Diagnostic::error(&file.source, line, col, format!("$ref {reference:?} does not resolve: {why}"))
                    .with_hint("a relative $ref is resolved against this file's path, an absolute one against the $ids of the tree; god never fetches over the network"),
            )
        })
        .collect()
}

fn collect_references<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                out.push(reference);
            }
            map.values().for_each(|v| collect_references(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_references(v, out)),
        _ => {}
    }
}

/// The first line (1-based) holding `needle`.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    Some(place_of_opt(text, needle)?.0)
}

/// Where `needle` first stands (1-based line and column), else the file's start.
fn place_of(text: &str, needle: &str) -> (usize, usize) {
    place_of_opt(text, needle).unwrap_or((1, 1))
}

fn place_of_opt(text: &str, needle: &str) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(i, line)| {
        let at = line.find(needle)?;
        Some((i + 1, line[..at].chars().count() + 1))
    })
}

/// The schema (of the file at `path`) compiled with formats asserted, and its payload part when
/// it describes the whole event.
fn compile(
    path: &Path,
    schema: &Value,
    resolver: &TreeResolver,
) -> Result<(jsonschema::Validator, Option<jsonschema::Validator>), String> {
    let options = || {
        jsonschema::options()
            .should_validate_formats(true)
            .with_retriever(resolver.clone())
    };
    let served = resolver.document(&file_uri(path))?;
    let validator = options().build(&served).map_err(|e| e.to_string())?;
    let payload = match schema.pointer("/properties/payload") {
        Some(_) if describes_whole_event(schema) => {
            let reference = json!({"$ref": format!("{}#/properties/payload", file_uri(path))});
            Some(options().build(&reference).map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    Ok((validator, payload))
}

/// Whether a schema describes the whole event (see the module's documentation).
pub fn describes_whole_event(schema: &Value) -> bool {
    let named = |key| schema.pointer(&format!("/properties/{key}")).is_some();
    named("event_type") || named("payload") || schema.get("allOf").is_some()
}

/// The event type and version a file's path names, or None for a shared-types file.
pub fn event_of_path(relative: &str) -> Option<(String, u32)> {
    let mut parts: Vec<&str> = relative.split('/').collect();
    let name = parts.pop()?;
    if parts.iter().any(|p| p.starts_with('_') || *p == "common") || name.starts_with('_') {
        return None;
    }
    let stem = name
        .strip_suffix(".schema.json")
        .or_else(|| name.strip_suffix(".json"))?;
    let (stem, version) = match stem.rsplit_once(".v") {
        Some((rest, digits))
            if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) =>
        {
            (rest, digits.parse().ok()?)
        }
        _ => (stem, 1),
    };
    parts.push(stem);
    Some((parts.join("."), version))
}

/// The `event_type` a schema pins with `const`, at its top or in a schema it includes with
/// `allOf`.
fn event_type_const(schema: &Value) -> Option<String> {
    let constant = |s: &Value| {
        s.pointer("/properties/event_type/const")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    constant(schema).or_else(|| schema.get("allOf")?.as_array()?.iter().find_map(constant))
}

/// The major version an event asks for: `v2`, `2`, `2.1.0` and 2 are all 2.
pub fn major_version(version: &Value) -> Option<u32> {
    match version {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => {
            let s = s.trim().trim_start_matches(['v', 'V']);
            s.split('.').next()?.parse().ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_names_the_event_type_and_version() {
        let cases = [
            (
                "theboard/meeting.created.v1.schema.json",
                Some(("theboard.meeting.created", 1)),
            ),
            (
                "agent/feedback/requested.v1.json",
                Some(("agent.feedback.requested", 1)),
            ),
            ("agent/heartbeat.v2.json", Some(("agent.heartbeat", 2))),
            ("agent/state_changed.json", Some(("agent.state_changed", 1))),
            ("_common/base_event.v1.json", None),
            ("common/schemas/types.json", None),
            ("theboard/notes.txt", None),
        ];
        for (path, expected) in cases {
            let found = event_of_path(path);
            assert_eq!(
                found.as_ref().map(|(t, v)| (t.as_str(), *v)),
                expected,
                "{path}"
            );
        }
    }

    #[test]
    fn an_event_asks_for_a_version_in_any_of_the_platform_spellings() {
        for (spelling, major) in [
            (json!("v2"), Some(2)),
            (json!("2"), Some(2)),
            (json!("2.1.0"), Some(2)),
            (json!(2), Some(2)),
            (json!("1.0.0"), Some(1)),
            (json!("two"), None),
            (json!(null), None),
        ] {
            assert_eq!(major_version(&spelling), major, "{spelling}");
        }
    }

    #[test]
    fn whole_event_schemas_are_told_from_payload_schemas() {
        assert!(describes_whole_event(
            &json!({"allOf": [{"$ref": "../_common/base_event.v1.json"}]})
        ));
        assert!(describes_whole_event(
            &json!({"properties": {"payload": {}}})
        ));
        assert!(describes_whole_event(
            &json!({"properties": {"event_type": {"const": "a.b"}}})
        ));
        assert!(!describes_whole_event(
            &json!({"properties": {"meeting_id": {}}})
        ));
    }
}
