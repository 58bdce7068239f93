//! YAML with positions: parses a document with saphyr (serde_yaml is deprecated upstream) into a
//! `serde_json::Value` plus a map from each node's JSON pointer to where it sits in the file, so
//! that schema and semantic checks can report `file:line:col`.

use std::borrow::Cow;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Number, Value};

use super::SourceFile;
use super::diagnostic::Diagnostic;
use super::document::{Position, PositionedDocument, escape_pointer};

/// A YAML syntax problem, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where the parser stopped.
    pub position: Position,
    /// What the parser said.
    pub message: String,
}

/// Parses one YAML document. An empty file is an empty mapping.
pub fn parse(text: &str) -> Result<PositionedDocument, SyntaxError> {
    let docs = MarkedYaml::load_from_str(text).map_err(|e| {
        let m = e.marker();
        SyntaxError {
            position: Position {
                line: m.line().max(1),
                col: m.col() + 1,
            },
            message: e.info().to_string(),
        }
    })?;
    if docs.len() > 1 {
        return Err(SyntaxError {
            position: position(&docs[1]),
            message: "more than one YAML document in the file (a second `---`)".to_string(),
        });
    }
    let mut doc = PositionedDocument::default();
    doc.value = match docs.first() {
        Some(root) => convert(root, "", &mut doc)?,
        None => Value::Object(Map::new()),
    };
    Ok(doc)
}

/// A YAML syntax error at its place; a tab in the indentation is pointed at, with the fix.
pub fn syntax_problem(source: &SourceFile, error: &SyntaxError) -> Diagnostic {
    let message = format!("YAML syntax error: {}", error.message);
    let line = source
        .text
        .lines()
        .nth(error.position.line.saturating_sub(1));
    let tab = line
        .and_then(|l| l.find('\t'))
        .filter(|_| error.message.contains("tab"));
    match tab {
        Some(index) => Diagnostic::error(source, error.position.line, index + 1, message)
            .with_hint("YAML indents with spaces only: replace the tab with spaces"),
        None if error.message.contains("duplicated key") => Diagnostic::error(
            source,
            error.position.line,
            error.position.col,
            message,
        )
        .with_hint("a key appears once in a mapping: a name is defined once, so remove or rename one of the two"),
        None => Diagnostic::error(source, error.position.line, error.position.col, message)
            .with_hint(
                "fix the YAML syntax at this place (indentation, quotes, a missing `:` or `]`)",
            ),
    }
}

fn position(node: &MarkedYaml<'_>) -> Position {
    Position {
        line: node.span.start.line().max(1),
        col: node.span.start.col() + 1,
    }
}

fn convert(
    node: &MarkedYaml<'_>,
    pointer: &str,
    doc: &mut PositionedDocument,
) -> Result<Value, SyntaxError> {
    doc.record_value(pointer, position(node));
    let value = match &node.data {
        YamlData::Value(scalar) => scalar_to_json(scalar),
        YamlData::Representation(raw, style, tag) => {
            match Scalar::parse_from_cow_and_metadata(raw.clone(), *style, tag.as_ref()) {
                Some(scalar) => scalar_to_json(&scalar),
                None => {
                    return Err(unsupported(
                        node,
                        "a scalar whose tag does not match its value",
                    ));
                }
            }
        }
        YamlData::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(convert(item, &format!("{pointer}/{i}"), doc)?);
            }
            Value::Array(out)
        }
        YamlData::Mapping(entries) => {
            let mut out = Map::new();
            for (key, value) in entries {
                let name = key_to_string(key)?;
                let child = format!("{pointer}/{}", escape_pointer(&name));
                doc.record_key(&child, position(key));
                let converted = convert(value, &child, doc)?;
                out.insert(name, converted);
            }
            Value::Object(out)
        }
        YamlData::Tagged(_, inner) => convert(inner, pointer, doc)?,
        YamlData::Alias(_) => return Err(unsupported(node, "YAML aliases (`*name`)")),
        YamlData::BadValue => return Err(unsupported(node, "this value")),
    };
    Ok(value)
}

fn unsupported(node: &MarkedYaml<'_>, what: &str) -> SyntaxError {
    SyntaxError {
        position: position(node),
        message: format!("{what} cannot be read here"),
    }
}

fn scalar_to_json(scalar: &Scalar<'_>) -> Value {
    match scalar {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => Value::Number((*i).into()),
        Scalar::FloatingPoint(f) => Number::from_f64(f.into_inner())
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.to_string())),
        Scalar::String(s) => Value::String(s.to_string()),
    }
}

fn key_to_string(key: &MarkedYaml<'_>) -> Result<String, SyntaxError> {
    match &key.data {
        YamlData::Value(scalar) => Ok(scalar_text(scalar)),
        YamlData::Representation(raw, _, _) => Ok(raw.to_string()),
        YamlData::Tagged(_, inner) => key_to_string(inner),
        _ => Err(unsupported(key, "a mapping key that is not a plain scalar")),
    }
}

fn scalar_text(scalar: &Scalar<'_>) -> String {
    match scalar {
        Scalar::Null => "null".to_string(),
        Scalar::Boolean(b) => b.to_string(),
        Scalar::Integer(i) => i.to_string(),
        Scalar::FloatingPoint(f) => f.to_string(),
        Scalar::String(s) => Cow::to_string(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indoc::indoc;

    #[test]
    fn values_and_positions_are_kept() {
        let doc = parse(indoc! {"
            version: \"1.0\"
            services:
              a:
                routing_keys:
                  - \"#\" # all
                  - x.y
        "})
        .unwrap();
        assert_eq!(doc.value["version"], "1.0");
        assert_eq!(doc.value["services"]["a"]["routing_keys"][1], "x.y");
        assert_eq!(
            doc.position_of("/services/a/routing_keys/1"),
            Position { line: 6, col: 9 }
        );
        assert_eq!(
            doc.key_position_of("/services/a"),
            Position { line: 3, col: 3 }
        );
        assert_eq!(
            doc.position_of("/services/a/missing"),
            Position { line: 4, col: 5 }
        );
    }

    #[test]
    fn syntax_errors_carry_their_line() {
        let err = parse(indoc! {"
            a: 1
            b: [1, 2
            c: 3
        "})
        .unwrap_err();
        assert!(err.position.line >= 2, "{err:?}");
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse(indoc! {"
            a: 1
            a: 2
        "})
        .unwrap_err();
        assert_eq!(err.position.line, 2, "{err:?}");
    }

    #[test]
    fn scalars_keep_their_types() {
        let doc = parse(indoc! {r#"
            i: 10
            s: "10"
            b: true
            f: 1.5
            n: ~
        "#})
        .unwrap();
        assert_eq!(doc.value["i"], 10);
        assert_eq!(doc.value["s"], "10");
        assert_eq!(doc.value["b"], true);
        assert_eq!(doc.value["f"], 1.5);
        assert!(doc.value["n"].is_null());
    }
}
