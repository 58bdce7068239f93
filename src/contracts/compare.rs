//! Breaking changes between two revisions of a schema tree (`god schema check`): for each event
//! type and version present in both, what an event valid under the old schema may fail under the
//! new one: a new required property, a removed property, a narrowed type, a removed enum value,
//! a tightened bound or pattern, `additionalProperties` closed. `$ref`s and `allOf` are followed,
//! so a change in a shared file counts for every event that includes it. A new version file is
//! free, and so is everything that only widens.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};
use url::Url;

use super::resolver::{TreeResolver, file_uri};
use super::tree::SchemaTree;

/// One breaking change: the new schema file, where in it, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breaking {
    /// The new schema file, relative to its tree.
    pub file: String,
    /// A JSON pointer into the schema.
    pub pointer: String,
    /// What changed.
    pub what: String,
}

/// What comparing two trees found.
#[derive(Debug, Default)]
pub struct Comparison {
    /// Event types and versions present in both trees.
    pub compared: usize,
    /// Event types and versions only the new tree has: new versions are free.
    pub added: Vec<String>,
    /// Every breaking change.
    pub breaking: Vec<Breaking>,
}

/// Bounds that only tighten by growing, and those that only tighten by shrinking.
const LOWER_BOUNDS: [&str; 5] = [
    "minimum",
    "exclusiveMinimum",
    "minLength",
    "minItems",
    "minProperties",
];
const UPPER_BOUNDS: [&str; 5] = [
    "maximum",
    "exclusiveMaximum",
    "maxLength",
    "maxItems",
    "maxProperties",
];
/// How deep `$ref`s and nested schemas are followed (shared types refer to one another).
const DEPTH: usize = 24;

/// Compares every event type and version of `new` with the same in `old`.
pub fn compare(old: &SchemaTree, new: &SchemaTree) -> Comparison {
    let mut comparison = Comparison::default();
    let old_files: BTreeMap<(String, u32), &str> = old
        .schemas()
        .map(|s| ((s.event_type.clone(), s.version), s.file.as_str()))
        .collect();
    for schema in new.schemas() {
        let key = (schema.event_type.clone(), schema.version);
        let Some(old_file) = old_files.get(&key) else {
            comparison.added.push(format!("{} v{}", key.0, key.1));
            continue;
        };
        comparison.compared += 1;
        let side = |tree: &SchemaTree, file: &str| {
            let path = tree.root.join(file);
            let uri = file_uri(&path);
            let value = tree.resolver.document(&uri).unwrap_or(Value::Null);
            Node { value, base: uri }
        };
        let mut walk = Walk {
            old: &old.resolver,
            new: &new.resolver,
            file: &schema.file,
            found: Vec::new(),
        };
        walk.schema(&side(old, old_file), &side(new, &schema.file), "", 0);
        for change in walk.found {
            if !comparison.breaking.contains(&change) {
                comparison.breaking.push(change);
            }
        }
    }
    comparison
}

/// A schema node and the URI its references are resolved against.
#[derive(Debug, Clone)]
struct Node {
    value: Value,
    base: String,
}

struct Walk<'a> {
    old: &'a TreeResolver,
    new: &'a TreeResolver,
    file: &'a str,
    found: Vec<Breaking>,
}

impl Walk<'_> {
    fn breaking(&mut self, pointer: &str, what: String) {
        self.found.push(Breaking {
            file: self.file.to_string(),
            pointer: if pointer.is_empty() {
                "/".into()
            } else {
                pointer.to_string()
            },
            what,
        });
    }

    fn schema(&mut self, old: &Node, new: &Node, pointer: &str, depth: usize) {
        if depth > DEPTH {
            return;
        }
        let old = flatten(self.old, old, depth);
        let new = flatten(self.new, new, depth);
        self.types(&old, &new, pointer);
        self.enums(&old, &new, pointer);
        self.bounds(&old, &new, pointer);
        self.objects(&old, &new, pointer, depth);
        if let (Some(o), Some(n)) = (&old.items, &new.items) {
            self.schema(o, n, &format!("{pointer}/items"), depth + 1);
        }
    }

    fn types(&mut self, old: &Flat, new: &Flat, pointer: &str) {
        let (Some(old_types), Some(new_types)) = (&old.types, &new.types) else {
            if old.types.is_none() && new.types.is_some() {
                let now = type_list(new.types.iter().flatten());
                self.breaking(
                    &format!("{pointer}/type"),
                    format!("type narrowed from any to {now}"),
                );
            }
            return;
        };
        let lost: Vec<&String> = old_types
            .iter()
            .filter(|t| {
                let widened = *t == "integer" && new_types.contains("number");
                !(new_types.contains(*t) || widened)
            })
            .collect();
        if !lost.is_empty() {
            self.breaking(
                &format!("{pointer}/type"),
                format!(
                    "type narrowed from {} to {}: {} no longer allowed",
                    type_list(old_types.iter()),
                    type_list(new_types.iter()),
                    type_list(lost.into_iter())
                ),
            );
        }
    }

    fn enums(&mut self, old: &Flat, new: &Flat, pointer: &str) {
        match (&old.allowed, &new.allowed) {
            (Some(before), Some(after)) => {
                for value in before.iter().filter(|v| !after.contains(v)) {
                    self.breaking(
                        &format!("{pointer}/enum"),
                        format!("enum value {value} removed"),
                    );
                }
            }
            (None, Some(after)) => self.breaking(
                &format!("{pointer}/enum"),
                format!("values restricted to {}", Value::Array(after.clone())),
            ),
            _ => {}
        }
    }

    fn bounds(&mut self, old: &Flat, new: &Flat, pointer: &str) {
        for key in LOWER_BOUNDS.iter().chain(&UPPER_BOUNDS) {
            let before = old.keywords.get(*key).and_then(Value::as_f64);
            let Some(after) = new.keywords.get(*key).and_then(Value::as_f64) else {
                continue;
            };
            let tighter = match before {
                None => true,
                Some(before) if LOWER_BOUNDS.contains(key) => after > before,
                Some(before) => after < before,
            };
            if tighter {
                let was = before.map_or("none".to_string(), |b| b.to_string());
                self.breaking(
                    &format!("{pointer}/{key}"),
                    format!("bound tightened: {key} {was} -> {after}"),
                );
            }
        }
        for key in ["pattern", "format", "const"] {
            let (before, after) = (old.keywords.get(key), new.keywords.get(key));
            if after.is_some() && before != after {
                let was = before.map_or("none".to_string(), Value::to_string);
                let now = after.map_or(String::new(), Value::to_string);
                self.breaking(
                    &format!("{pointer}/{key}"),
                    format!("{key} tightened: {was} -> {now}"),
                );
            }
        }
    }

    fn objects(&mut self, old: &Flat, new: &Flat, pointer: &str, depth: usize) {
        for name in new.required.difference(&old.required) {
            self.breaking(
                &format!("{pointer}/required"),
                format!("new required property {name:?}"),
            );
        }
        for (name, before) in &old.properties {
            let at = format!(
                "{pointer}/properties/{}",
                name.replace('~', "~0").replace('/', "~1")
            );
            match new.properties.get(name) {
                None => self.breaking(&at, format!("property {name:?} removed")),
                Some(after) => self.schema(before, after, &at, depth + 1),
            }
        }
        if !old.closed && new.closed {
            self.breaking(
                &format!("{pointer}/additionalProperties"),
                "additionalProperties closed: properties the old schema let through are refused"
                    .into(),
            );
        }
    }
}

/// A schema node with its `$ref` followed and its `allOf` parts merged in: what an instance
/// must satisfy, as far as the comparison reads it.
#[derive(Debug, Default)]
struct Flat {
    types: Option<BTreeSet<String>>,
    allowed: Option<Vec<Value>>,
    keywords: Map<String, Value>,
    required: BTreeSet<String>,
    properties: BTreeMap<String, Node>,
    closed: bool,
    items: Option<Node>,
}

fn flatten(resolver: &TreeResolver, node: &Node, depth: usize) -> Flat {
    let mut flat = Flat::default();
    merge(resolver, node, &mut flat, depth);
    flat
}

fn merge(resolver: &TreeResolver, node: &Node, flat: &mut Flat, depth: usize) {
    if depth > DEPTH {
        return;
    }
    let node = dereference(resolver, node, depth);
    let Value::Object(map) = &node.value else {
        return;
    };
    let child = |value: &Value| Node {
        value: value.clone(),
        base: node.base.clone(),
    };
    if let Some(types) = map.get("type") {
        let set: BTreeSet<String> = match types {
            Value::String(t) => [t.clone()].into(),
            Value::Array(ts) => ts
                .iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect(),
            _ => BTreeSet::new(),
        };
        flat.types = Some(match flat.types.take() {
            Some(before) => before.intersection(&set).cloned().collect(),
            None => set,
        });
    }
    if let Some(Value::Array(values)) = map.get("enum") {
        flat.allowed.get_or_insert_with(|| values.clone());
    }
    for key in LOWER_BOUNDS
        .iter()
        .chain(&UPPER_BOUNDS)
        .chain(&["pattern", "format", "const"])
    {
        if let Some(value) = map.get(*key) {
            flat.keywords
                .entry(key.to_string())
                .or_insert_with(|| value.clone());
        }
    }
    if let Some(Value::Array(names)) = map.get("required") {
        flat.required
            .extend(names.iter().filter_map(|n| n.as_str().map(str::to_string)));
    }
    if let Some(Value::Object(properties)) = map.get("properties") {
        for (name, schema) in properties {
            flat.properties
                .entry(name.clone())
                .or_insert_with(|| child(schema));
        }
    }
    if map.get("additionalProperties") == Some(&Value::Bool(false)) {
        flat.closed = true;
    }
    if let Some(items) = map.get("items").filter(|i| i.is_object()) {
        flat.items.get_or_insert_with(|| child(items));
    }
    if let Some(Value::Array(parts)) = map.get("allOf") {
        for part in parts {
            merge(resolver, &child(part), flat, depth + 1);
        }
    }
}

/// The node a `$ref` leads to (the node itself when it has none or the reference is broken:
/// loading the tree reports broken references).
fn dereference(resolver: &TreeResolver, node: &Node, depth: usize) -> Node {
    let Some(reference) = node.value.get("$ref").and_then(Value::as_str) else {
        return node.clone();
    };
    let Some(target) = Url::parse(&node.base).and_then(|b| b.join(reference)).ok() else {
        return node.clone();
    };
    let Ok(document) = resolver.document(target.as_str()) else {
        return node.clone();
    };
    let pointer = target.fragment().unwrap_or("").to_string();
    let value = match pointer.is_empty() {
        true => document,
        false => document.pointer(&pointer).cloned().unwrap_or(Value::Null),
    };
    let mut base = target;
    base.set_fragment(None);
    let followed = Node {
        value,
        base: base.to_string(),
    };
    match depth < DEPTH {
        true => dereference(resolver, &followed, depth + 1),
        false => followed,
    }
}

/// Type names as a schema author writes them: `number`, or `string or null`.
fn type_list<'a>(types: impl Iterator<Item = &'a String>) -> String {
    types.map(String::as_str).collect::<Vec<_>>().join(" or ")
}
