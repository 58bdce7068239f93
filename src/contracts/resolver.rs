//! `$ref`s of a schema tree resolved offline, never over the network: a relative reference
//! against the referring file's path (each file's `$id` is replaced by its `file://` URI for
//! that), an absolute one against the `$id`s found in the tree, and a file outside the tree
//! that a relative reference names read from the disk.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use url::Url;

/// The documents of a tree by every URI that names them: their `file://` URI and their `$id`.
#[derive(Debug, Clone, Default)]
pub struct TreeResolver {
    documents: Arc<HashMap<String, Value>>,
}

/// The `file://` URI of a path.
pub fn file_uri(path: &Path) -> String {
    Url::from_file_path(path)
        .map(|u| u.to_string())
        .unwrap_or_else(|()| format!("file://{}", path.display()))
}

/// A schema as the resolver serves it: its `$id` replaced by the file's URI, so that the
/// relative references in it resolve against the file's path.
pub fn based_on_file(schema: &Value, path: &Path) -> Value {
    let mut schema = schema.clone();
    if let Value::Object(map) = &mut schema {
        map.insert("$id".into(), Value::from(file_uri(path)));
    }
    schema
}

impl TreeResolver {
    /// A resolver of `documents`: (path, `$id` when it has one, the document).
    pub fn new<'a>(
        documents: impl IntoIterator<Item = (&'a Path, Option<&'a str>, &'a Value)>,
    ) -> Self {
        let mut by_uri = HashMap::new();
        for (path, id, value) in documents {
            let served = based_on_file(value, path);
            if let Some(id) = id {
                by_uri.insert(without_fragment(id).to_string(), served.clone());
            }
            by_uri.insert(file_uri(path), served);
        }
        Self {
            documents: Arc::new(by_uri),
        }
    }

    /// The document a URI (without its fragment) names: one of the tree's, or a JSON file on
    /// the disk for a `file://` URI.
    pub fn document(&self, uri: &str) -> Result<Value, String> {
        let uri = without_fragment(uri);
        if let Some(found) = self.documents.get(uri) {
            return Ok(found.clone());
        }
        let parsed = Url::parse(uri).map_err(|e| format!("{uri} is not a URI: {e}"))?;
        if parsed.scheme() != "file" {
            return Err(format!(
                "{uri} is not the $id of any schema of the tree, and god never fetches schemas over the network"
            ));
        }
        let path: PathBuf = parsed
            .to_file_path()
            .map_err(|()| format!("{uri} names no local file"))?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("{} cannot be read: {e}", path.display()))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
        Ok(based_on_file(&value, &path))
    }

    /// Whether `reference`, written in the document at `base`, leads to a document and to a
    /// node in it; the reason when it does not.
    pub fn check(&self, base: &str, reference: &str) -> Result<(), String> {
        let target = Url::parse(base)
            .and_then(|b| b.join(reference))
            .map_err(|e| format!("{reference:?} is not a valid reference: {e}"))?;
        let document = self.document(target.as_str())?;
        let pointer = target.fragment().unwrap_or("");
        let pointer = percent_encoding::percent_decode_str(pointer).decode_utf8_lossy();
        if pointer.is_empty() || pointer.starts_with('/') && document.pointer(&pointer).is_some() {
            return Ok(());
        }
        if !pointer.starts_with('/') {
            // A plain-name fragment: an `$anchor` somewhere in the document.
            return match anchors(&document).iter().any(|a| *a == pointer) {
                true => Ok(()),
                false => Err(format!(
                    "no $anchor {pointer:?} in {}",
                    without_fragment(target.as_str())
                )),
            };
        }
        Err(format!(
            "{} has no node at {pointer}",
            without_fragment(target.as_str())
        ))
    }
}

impl jsonschema::Retrieve for TreeResolver {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        self.document(uri.as_str()).map_err(Into::into)
    }
}

fn without_fragment(uri: &str) -> &str {
    uri.split('#').next().unwrap_or(uri)
}

fn anchors(value: &Value) -> Vec<&str> {
    let mut found = Vec::new();
    let mut stack = vec![value];
    while let Some(node) = stack.pop() {
        match node {
            Value::Object(map) => {
                if let Some(Value::String(anchor)) = map.get("$anchor") {
                    found.push(anchor.as_str());
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    found
}
