//! TOML with positions: parses with the `toml` crate's spanned parser into the same
//! [`PositionedDocument`] as YAML, so components.toml problems carry `file:line:col` too.

use serde_json::{Map, Number, Value};
use toml::de::{DeTable, DeValue};

use super::document::{Position, PositionedDocument, escape_pointer};
use super::yaml::SyntaxError;

/// Parses a TOML document.
pub fn parse(text: &str) -> Result<PositionedDocument, SyntaxError> {
    let table = DeTable::parse(text).map_err(|e| SyntaxError {
        position: Position::of_offset(text, e.span().map(|s| s.start).unwrap_or(0)),
        message: e.message().trim().to_string(),
    })?;
    let mut doc = PositionedDocument::default();
    doc.record_value("", Position { line: 1, col: 1 });
    doc.value = convert_table(text, table.get_ref(), "", &mut doc);
    Ok(doc)
}

fn convert_table(
    text: &str,
    table: &DeTable<'_>,
    pointer: &str,
    doc: &mut PositionedDocument,
) -> Value {
    let mut out = Map::new();
    for (key, value) in table {
        let child = format!("{pointer}/{}", escape_pointer(key.get_ref()));
        doc.record_key(&child, Position::of_offset(text, key.span().start));
        doc.record_value(&child, Position::of_offset(text, value.span().start));
        out.insert(
            key.get_ref().to_string(),
            convert(text, value.get_ref(), &child, doc),
        );
    }
    Value::Object(out)
}

fn convert(text: &str, value: &DeValue<'_>, pointer: &str, doc: &mut PositionedDocument) -> Value {
    match value {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(i) => i64::from_str_radix(&i.as_str().replace('_', ""), i.radix())
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(i.as_str().to_string())),
        DeValue::Float(f) => f
            .as_str()
            .replace('_', "")
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.as_str().to_string())),
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(d) => Value::String(d.to_string()),
        DeValue::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let child = format!("{pointer}/{i}");
                    doc.record_value(&child, Position::of_offset(text, item.span().start));
                    convert(text, item.get_ref(), &child, doc)
                })
                .collect(),
        ),
        DeValue::Table(t) => convert_table(text, t, pointer, doc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_positions_are_kept() {
        let doc = parse("[components]\nweb = { path = \"web\", enabled = true }\n\n[components.api]\nimage = \"x:1\"\nports = [\"8080:80\"]\n").unwrap();
        assert_eq!(doc.value["components"]["web"]["enabled"], true);
        assert_eq!(doc.value["components"]["api"]["ports"][0], "8080:80");
        assert_eq!(
            doc.position_of("/components/web/path"),
            Position { line: 2, col: 16 }
        );
        assert_eq!(
            doc.position_of("/components/api/ports/0"),
            Position { line: 6, col: 10 }
        );
    }

    #[test]
    fn syntax_errors_carry_their_line() {
        let err = parse("[components]\nweb = { path = \"web\"\n").unwrap_err();
        assert_eq!(err.position.line, 2, "{err:?}");
    }
}
