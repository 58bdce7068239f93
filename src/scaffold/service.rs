//! A service added to registry.yaml by `god new service`: an edit of the text in place, so
//! every comment, blank line and the file's layout stay as they were. The new entry goes after
//! the last service, before whatever comment opens the next section, indented as the file
//! indents its services and written in the upstream registry's key order and quoting.

use serde_json::Value;

use crate::inputs::document::{PositionedDocument, escape_pointer};

/// The service to add.
#[derive(Debug, Clone)]
pub struct NewService {
    /// Its id (and `name`).
    pub id: String,
    /// Its queue.
    pub queue: String,
    /// The routing keys its queue is bound with.
    pub keys: Vec<String>,
    /// The prefetch its consumers use.
    pub prefetch: u32,
    /// What it does, in a line.
    pub description: String,
}

impl NewService {
    /// Its entry, the id at `indent` spaces and each level one `indent` deeper.
    fn entry(&self, indent: usize, newline: &str) -> String {
        let pad = |level: usize| " ".repeat(indent * level);
        let quoted = |s: &str| Value::from(s).to_string();
        let mut lines = vec![
            format!("{}{}:", pad(1), yaml_key(&self.id)),
            format!("{}name: {}", pad(2), quoted(&self.id)),
            format!("{}description: {}", pad(2), quoted(&self.description)),
            format!("{}type: \"event-consumer\"", pad(2)),
            format!("{}queue_name: {}", pad(2), quoted(&self.queue)),
            format!("{}routing_keys:", pad(2)),
        ];
        lines.extend(
            self.keys
                .iter()
                .map(|k| format!("{}- {}", pad(3), quoted(k))),
        );
        lines.push(format!("{}status: \"active\"", pad(2)));
        lines.push(format!("{}prefetch: {}", pad(2), self.prefetch));
        lines.join(newline) + newline
    }
}

/// A mapping key, quoted unless YAML reads it back as the same plain string.
fn yaml_key(key: &str) -> String {
    let plain = key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && key.starts_with(|c: char| c.is_ascii_alphabetic());
    match plain {
        true => key.to_string(),
        false => Value::from(key).to_string(),
    }
}

/// `text` (the registry `doc` was parsed from) with `service` added to its `services`; an
/// error says why the file cannot be edited so (a `services` written in flow style).
pub fn added(text: &str, doc: &PositionedDocument, service: &NewService) -> Result<String, String> {
    let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let key_line = doc.key_position_of("/services").line;
    let services = doc.value.get("services").and_then(Value::as_object);
    let first = services.and_then(|s| s.keys().next());
    let header = lines.get(key_line.saturating_sub(1)).copied().unwrap_or("");
    let after_key = header.split_once(':').map_or("", |(_, rest)| rest).trim();
    let indent = match first {
        Some(id) => doc
            .key_position_of(&format!("/services/{}", escape_pointer(id)))
            .col
            .saturating_sub(1),
        None => 2,
    };
    if doc.value.get("services").is_none() {
        let mut out = text.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push_str(newline);
        }
        return Ok(format!(
            "{out}{newline}services:{newline}{}",
            service.entry(2, newline)
        ));
    }
    if first.is_none() && !matches!(after_key, "" | "{}" | "~" | "null") {
        return Err(format!(
            "services (line {key_line}) is written in flow style: add the service by hand, or write services as a block"
        ));
    }
    if first.is_some() && !after_key.is_empty() && !after_key.starts_with('#') {
        return Err(format!(
            "services (line {key_line}) is written in flow style: add the service by hand, or write services as a block"
        ));
    }
    let end = block_end(&lines, key_line);
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i + 1 == key_line && first.is_none() {
            out.push_str(&format!("services:{newline}"));
        } else {
            out.push_str(line);
        }
        if i + 1 == end {
            if !line.ends_with('\n') {
                out.push_str(newline);
            }
            if first.is_some() {
                out.push_str(newline);
            }
            out.push_str(&service.entry(indent.max(1), newline));
        }
    }
    Ok(out)
}

/// The last line (1-based) of the `services` block that starts at `key_line`: the last line
/// before the next top-level key that is neither blank nor only a comment (a comment right
/// before the next section belongs to it).
fn block_end(lines: &[&str], key_line: usize) -> usize {
    let mut end = key_line;
    for (i, line) in lines.iter().enumerate().skip(key_line) {
        let trimmed = line.trim();
        let top_level = !line.starts_with([' ', '\t']) && !trimmed.is_empty();
        if top_level && !trimmed.starts_with('#') {
            break;
        }
        if !trimmed.is_empty() && !trimmed.starts_with('#') {
            end = i + 1;
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use indoc::indoc;

    fn service() -> NewService {
        NewService {
            id: "orders".into(),
            queue: "services.shop.orders".into(),
            keys: vec!["shop.order.created".into(), "shop.order.#".into()],
            prefetch: 10,
            description: "Keeps the orders".into(),
        }
    }

    fn add(text: &str) -> String {
        let doc = crate::inputs::yaml::parse(text).unwrap();
        added(text, &doc, &service()).unwrap()
    }

    #[test]
    fn the_entry_goes_after_the_last_service_and_every_comment_stays() {
        let text = indoc! {r##"
            # The registry
            version: "1.0"

            exchange:
              name: "bus"

            # Service definitions
            services:
              # Layer 0
              store:
                queue_name: "store_q"   # the store
                routing_keys:
                  - "#"

            # Event type to consuming services mapping
            event_subscriptions:
              "#": ["store"]
        "##};
        let out = add(text);
        let expected = indoc! {r##"
            # The registry
            version: "1.0"

            exchange:
              name: "bus"

            # Service definitions
            services:
              # Layer 0
              store:
                queue_name: "store_q"   # the store
                routing_keys:
                  - "#"

              orders:
                name: "orders"
                description: "Keeps the orders"
                type: "event-consumer"
                queue_name: "services.shop.orders"
                routing_keys:
                  - "shop.order.created"
                  - "shop.order.#"
                status: "active"
                prefetch: 10

            # Event type to consuming services mapping
            event_subscriptions:
              "#": ["store"]
        "##};
        assert_eq!(out, expected);
        let reread = crate::inputs::yaml::parse(&out).unwrap().value;
        assert_eq!(
            reread["services"]["orders"]["routing_keys"][1],
            "shop.order.#"
        );
        assert_eq!(reread["services"]["store"]["queue_name"], "store_q");
    }

    #[test]
    fn an_indentation_of_four_is_kept_and_an_empty_services_is_filled() {
        let four = "exchange:\n    name: bus\nservices:\n    a:\n        queue_name: q\n";
        let out = add(four);
        assert!(
            out.contains("\n    orders:\n        name: \"orders\"\n"),
            "{out}"
        );
        assert!(out.contains("\n            - \"shop.order.#\"\n"), "{out}");
        let empty = "exchange: {name: bus}\nservices: {}\n";
        let out = add(empty);
        let reread = crate::inputs::yaml::parse(&out).unwrap().value;
        assert_eq!(
            reread["services"]["orders"]["queue_name"],
            "services.shop.orders"
        );
        let missing = "exchange: {name: bus}\n";
        let reread = crate::inputs::yaml::parse(&add(missing)).unwrap().value;
        assert_eq!(reread["services"]["orders"]["prefetch"], 10);
    }

    #[test]
    fn services_in_flow_style_are_refused() {
        let text = "exchange: {name: bus}\nservices: {a: {queue_name: q}}\n";
        let doc = crate::inputs::yaml::parse(text).unwrap();
        assert!(
            added(text, &doc, &service())
                .unwrap_err()
                .contains("flow style")
        );
    }
}
