//! Topic patterns, matched with the rules of RabbitMQ's topic exchange: words separated by
//! dots, `*` matches exactly one word, `#` zero or more.

/// Whether `routing_key` matches `pattern`.
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

#[cfg(test)]
mod tests {
    use super::matches;

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
