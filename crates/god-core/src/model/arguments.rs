//! Optional arguments of queues, exchanges and bindings, normalised so that equal meanings
//! compare equal whatever type the file or the broker wrote them in.

use std::collections::BTreeMap;

use serde_json::Value;

/// Optional arguments of a queue, exchange or binding, normalised (see [`normalize_arguments`]).
pub type Arguments = BTreeMap<String, Value>;

/// Argument keys whose values are integers, whatever type they were written in.
const INTEGER_ARGUMENTS: [&str; 12] = [
    "x-message-ttl",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-delivery-limit",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-quorum-initial-group-size",
    "x-stream-max-segment-size-bytes",
    "x-queue-version",
    "x-consumer-timeout",
];
/// Argument keys whose values are booleans.
const BOOLEAN_ARGUMENTS: [&str; 1] = ["x-single-active-consumer"];
/// Server defaults: an argument with this value means the same as no argument.
const DEFAULT_ARGUMENTS: [(&str, &str); 3] = [
    ("x-queue-type", "classic"),
    ("x-queue-mode", "default"),
    ("x-overflow", "drop-head"),
];

/// Normalises optional arguments so that equal meanings compare equal: `"10"` and `10` and
/// `10.0` are the integer 10 for numeric keys, `"true"` is `true` for boolean keys, and
/// arguments set to the server's default (`x-queue-type: classic`, ...) are dropped.
pub fn normalize_arguments(arguments: &Arguments) -> Arguments {
    arguments
        .iter()
        .filter(|(k, v)| !is_server_default(k, v))
        .map(|(k, v)| (k.clone(), normalize_value(k, v)))
        .collect()
}

fn is_server_default(key: &str, value: &Value) -> bool {
    DEFAULT_ARGUMENTS
        .iter()
        .any(|(k, d)| *k == key && value.as_str() == Some(d))
}

fn normalize_value(key: &str, value: &Value) -> Value {
    if INTEGER_ARGUMENTS.contains(&key)
        && let Some(i) = as_integer(value)
    {
        return Value::from(i);
    }
    if BOOLEAN_ARGUMENTS.contains(&key) {
        match value {
            Value::String(s) if s == "true" => return Value::Bool(true),
            Value::String(s) if s == "false" => return Value::Bool(false),
            _ => {}
        }
    }
    match value {
        Value::Number(n) if n.is_f64() => as_integer(value)
            .map(Value::from)
            .unwrap_or(Value::Number(n.clone())),
        _ => value.clone(),
    }
}

fn as_integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A short, stable rendering of arguments: `{a=1, b="x"}`.
pub fn format_arguments(arguments: &Arguments) -> String {
    let inner: Vec<String> = arguments.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", inner.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> Arguments {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn numeric_strings_and_floats_become_integers() {
        let a = normalize_arguments(&args(
            json!({"x-max-length": "10", "x-message-ttl": 5000.0}),
        ));
        let b = normalize_arguments(&args(json!({"x-max-length": 10, "x-message-ttl": 5000})));
        assert_eq!(a, b);
    }

    #[test]
    fn server_defaults_compare_equal_to_nothing() {
        assert!(normalize_arguments(&args(json!({"x-queue-type": "classic"}))).is_empty());
        assert_eq!(
            normalize_arguments(&args(json!({"x-queue-type": "quorum"}))),
            args(json!({"x-queue-type": "quorum"}))
        );
    }

    #[test]
    fn booleans_are_normalised_only_for_boolean_keys() {
        let a = normalize_arguments(&args(
            json!({"x-single-active-consumer": "true", "x-custom": "true"}),
        ));
        assert_eq!(
            a,
            args(json!({"x-single-active-consumer": true, "x-custom": "true"}))
        );
    }
}
