//! A parsed input document as JSON data, with the source position of each node, whatever the
//! file format (YAML or TOML): what lets schema and rule checks report `file:line:col`.

use std::collections::HashMap;

use serde_json::Value;

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl Position {
    /// The position of a byte offset in a text.
    pub fn of_offset(text: &str, offset: usize) -> Self {
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before
            .rsplit('\n')
            .next()
            .map(|l| l.chars().count())
            .unwrap_or(0)
            + 1;
        Self { line, col }
    }
}

/// A document: its value, and where each of its nodes (and mapping keys) came from.
#[derive(Debug, Clone, Default)]
pub struct PositionedDocument {
    /// The document as JSON data.
    pub value: Value,
    values: HashMap<String, Position>,
    keys: HashMap<String, Position>,
}

impl PositionedDocument {
    /// Records where the node at a JSON pointer starts.
    pub fn record_value(&mut self, pointer: &str, position: Position) {
        self.values.insert(pointer.to_string(), position);
    }

    /// Records where the key of the entry at a JSON pointer is.
    pub fn record_key(&mut self, pointer: &str, position: Position) {
        self.keys.insert(pointer.to_string(), position);
    }

    /// Where the node at a JSON pointer starts; falls back to the nearest ancestor.
    pub fn position_of(&self, pointer: &str) -> Position {
        let mut p = pointer.to_string();
        loop {
            if let Some(pos) = self.values.get(&p) {
                return *pos;
            }
            match p.rfind('/') {
                Some(i) => p.truncate(i),
                None => return Position { line: 1, col: 1 },
            }
        }
    }

    /// Where the key of the mapping entry at a JSON pointer is (falls back to its value).
    pub fn key_position_of(&self, pointer: &str) -> Position {
        self.keys
            .get(pointer)
            .copied()
            .unwrap_or_else(|| self.position_of(pointer))
    }
}

/// Escapes a mapping key for use in a JSON pointer (RFC 6901).
pub fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}
