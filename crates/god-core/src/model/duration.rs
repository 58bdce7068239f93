//! Durations as every god file writes them (registry.yaml, topology/, components.toml, the
//! compose importer, `god dlq --filter older-than=`): one grammar, so `1m30s` means the same
//! everywhere and `5 s` is refused everywhere. A duration is one or more `<integer><unit>` with
//! no space, the units `ms`, `s`, `m`, `h` and `d`; where a file takes a number instead, the
//! number is milliseconds.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The JSON Schema pattern of a duration string, for the schemas of god's files.
pub const PATTERN: &str = "^([0-9]+(ms|s|m|h|d))+$";

/// What a duration looks like, for error messages.
pub const EXAMPLES: &str = "500ms, 5s, 2m, 1m30s, 24h or 7d";

const UNITS: [(&str, u64); 5] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// Parses a duration string (`1m30s`) into milliseconds.
pub fn parse_millis(text: &str) -> Result<u64, String> {
    let refuse = || format!("{text:?} is not a duration: write {EXAMPLES}");
    if text.is_empty() {
        return Err(refuse());
    }
    let mut rest = text;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let letters = rest[digits..]
            .find(|c: char| !c.is_ascii_alphabetic())
            .map_or(rest.len(), |n| digits + n);
        let (number, unit) = (&rest[..digits], &rest[digits..letters]);
        let factor = UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, f)| *f)
            .filter(|_| !number.is_empty())
            .ok_or_else(refuse)?;
        let value: u64 = number.parse().map_err(|_| refuse())?;
        total = value
            .checked_mul(factor)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{text:?} is too long a duration"))?;
        rest = &rest[letters..];
    }
    Ok(total)
}

/// A duration of a file's value: an integer is milliseconds, a string is parsed.
pub fn millis_of(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => parse_millis(s).ok(),
        _ => None,
    }
}

/// Writes milliseconds the way a person would (`1m30s`, `500ms`, `2h`): the inverse of
/// [`parse_millis`].
pub fn format_millis(millis: u64) -> String {
    if millis == 0 {
        return "0s".to_string();
    }
    let mut rest = millis;
    let mut text = String::new();
    for (unit, factor) in UNITS.iter().rev() {
        let whole = rest / factor;
        if whole > 0 {
            text.push_str(&format!("{whole}{unit}"));
            rest -= whole * factor;
        }
    }
    text
}

/// A delay as a file writes it (milliseconds, or `5s`), held in milliseconds: read once when
/// the file is read, so no later code interprets the text again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "u64")]
pub struct Millis(pub u64);

impl TryFrom<Value> for Millis {
    type Error = String;

    fn try_from(value: Value) -> Result<Self, String> {
        match &value {
            Value::String(s) => parse_millis(s).map(Millis),
            _ => millis_of(&value)
                .map(Millis)
                .ok_or_else(|| format!("{value} is not a duration: write {EXAMPLES}")),
        }
    }
}

impl From<Millis> for u64 {
    fn from(millis: Millis) -> u64 {
        millis.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_grammar_with_compound_durations_and_no_spaces() {
        let cases = [
            ("500ms", Some(500)),
            ("5s", Some(5_000)),
            ("2m", Some(120_000)),
            ("1m30s", Some(90_000)),
            ("24h", Some(86_400_000)),
            ("7d", Some(604_800_000)),
            ("1h1m1s1ms", Some(3_661_001)),
            ("5 s", None),
            (" 5s", None),
            ("5", None),
            ("s", None),
            ("5sec", None),
            ("1.5h", None),
            ("", None),
            ("-5s", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_millis(text).ok(), expected, "{text:?}");
        }
    }

    #[test]
    fn the_schema_pattern_accepts_exactly_what_the_parser_does() {
        let pattern = regex::Regex::new(PATTERN).unwrap();
        for text in [
            "500ms", "1m30s", "7d", "5 s", "5", "5sec", "1.5h", "", "ms5",
        ] {
            assert_eq!(
                pattern.is_match(text),
                parse_millis(text).is_ok(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn formatting_is_the_inverse_of_parsing() {
        for millis in [500, 5_000, 90_000, 120_000, 86_400_000, 3_661_001, 0] {
            assert_eq!(parse_millis(&format_millis(millis)), Ok(millis));
        }
        assert_eq!(format_millis(90_000), "1m30s");
    }

    #[test]
    fn numbers_are_milliseconds_and_strings_are_parsed() {
        use serde_json::json;
        assert_eq!(millis_of(&json!(86400000)), Some(86_400_000));
        assert_eq!(millis_of(&json!("24h")), Some(86_400_000));
        assert_eq!(millis_of(&json!("5 s")), None);
        let delays: Vec<Millis> = serde_json::from_value(json!(["5s", 30000, "2m"])).unwrap();
        assert_eq!(delays, vec![Millis(5_000), Millis(30_000), Millis(120_000)]);
        assert!(serde_json::from_value::<Millis>(json!("5 s")).is_err());
    }
}
