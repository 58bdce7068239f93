//! god's one YAML writer, for what it writes for people to read and edit: `god import`'s
//! registry and topology files and `god render`. Block style, keys in the order given, lists
//! indented under their key as the upstream writes them, strings double-quoted (a JSON string
//! is a YAML double-quoted scalar, so nothing can be misread).

use serde_json::Value;

/// A YAML document of `value` (an object), in block style.
pub fn document(value: &Value) -> String {
    block(value, 0)
}

/// `value` in YAML block style at `indent` spaces: strings double-quoted (a JSON string is a
/// YAML double-quoted scalar), lists indented under their key as the upstream writes them.
pub fn block(value: &Value, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    let Value::Object(map) = value else {
        return format!("{pad}{}\n", scalar(value));
    };
    for (key, v) in map {
        let key = yaml_key(key);
        match v {
            Value::Object(m) if !m.is_empty() => {
                out.push_str(&format!("{pad}{key}:\n{}", block(v, indent + 2)));
            }
            Value::Array(items) if !items.is_empty() => {
                out.push_str(&format!("{pad}{key}:\n"));
                for item in items {
                    out.push_str(&list_item(item, indent + 2));
                }
            }
            _ => out.push_str(&format!("{pad}{key}: {}\n", scalar(v))),
        }
    }
    out
}

/// One list item: a scalar after its dash, or an object whose first key follows the dash.
fn list_item(item: &Value, indent: usize) -> String {
    let pad = " ".repeat(indent);
    match item {
        Value::Object(m) if !m.is_empty() => {
            let inner = block(item, indent + 2);
            format!("{pad}- {}", &inner[indent + 2..])
        }
        _ => format!("{pad}- {}\n", scalar(item)),
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => quoted(s),
        Value::Object(m) if m.is_empty() => "{}".to_string(),
        Value::Array(a) if a.is_empty() => "[]".to_string(),
        other => other.to_string(),
    }
}

pub fn quoted(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// A key plain when YAML reads it back as the same string, else double-quoted.
fn yaml_key(key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !matches!(
            key.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
        );
    if plain { key.to_string() } else { quoted(key) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn written_yaml_reads_back_as_the_same_document() {
        let value = json!({
            "plain": "x",
            "needs quotes": "a \"b\" \\ c",
            "#": [{"k": 1, "m": {"n": true}}, "s"],
            "yes": null,
            "empty": {},
            "none": [],
        });
        let text = document(&value);
        let parsed = crate::inputs::yaml::parse(&text).unwrap().value;
        assert_eq!(parsed, value, "{text}");
    }
}
