//! The rules of names and routing keys, in one place for every reader: what RabbitMQ accepts
//! as a queue name or a topic binding key, and how a topic exchange matches a routing key
//! against a binding key (words separated by dots, `*` exactly one word, `#` zero or more).
//! The validator, the planner, doctor, `god dlq` and the relay's client filters all use these.

/// The longest name (or routing key) RabbitMQ accepts, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// Whether `routing_key` matches the binding key `pattern`.
pub fn matches(pattern: &str, routing_key: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = routing_key.split('.').collect();
    match_words(&pattern, &key)
}

fn match_words(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|skip| match_words(rest, &key[skip..])),
        Some((&"*", rest)) => !key.is_empty() && match_words(rest, &key[1..]),
        Some((word, rest)) => key.first() == Some(word) && match_words(rest, &key[1..]),
    }
}

/// Checks a queue name against what RabbitMQ accepts from a client.
pub fn check_queue_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an empty name asks the broker to invent one".to_string());
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "{} bytes long; RabbitMQ accepts at most {MAX_NAME_BYTES}",
            name.len()
        ));
    }
    if name.starts_with("amq.") {
        return Err("names starting with \"amq.\" are reserved: RabbitMQ refuses to declare them (403 ACCESS_REFUSED)".to_string());
    }
    if name.chars().any(char::is_control) {
        return Err("contains a control character".to_string());
    }
    Ok(())
}

/// Checks a topic binding key: dot-separated non-empty words, wildcards only as whole words.
pub fn check_binding_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err(
            "empty (it would only match events published with an empty routing key)".to_string(),
        );
    }
    if key.len() > MAX_NAME_BYTES {
        return Err(format!(
            "{} bytes long; RabbitMQ accepts at most {MAX_NAME_BYTES}",
            key.len()
        ));
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace".to_string());
    }
    for word in key.split('.') {
        if word.is_empty() {
            return Err("has an empty word (a leading, trailing or doubled dot)".to_string());
        }
        if word.len() > 1 && (word.contains('*') || word.contains('#')) {
            return Err(format!(
                "the word {word:?} mixes a wildcard with text; RabbitMQ would match it literally"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_is_one_word_and_hash_is_zero_or_more() {
        let cases = [
            ("#", "a.b.c", true),
            ("#", "a", true),
            ("agent.#", "agent", true),
            ("agent.#", "agent.x.y", true),
            ("agent.#", "agents.x", false),
            ("agent.*", "agent.x", true),
            ("agent.*", "agent", false),
            ("agent.*", "agent.x.y", false),
            ("agent.*.message.*", "agent.tonny.message.sent", true),
            ("agent.*.message.*", "agent.message.sent", false),
            ("*.b.#", "a.b", true),
            ("a.#.z", "a.z", true),
            ("a.#.z", "a.b.c.z", true),
            ("a.#.z", "a.b.c", false),
            ("a.b", "a.b", true),
            ("a.b", "a.bc", false),
        ];
        for (pattern, key, expected) in cases {
            assert_eq!(matches(pattern, key), expected, "{pattern} vs {key}");
        }
    }
}
