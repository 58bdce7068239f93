//! A set of names as the regular expression that matches exactly them, and back: the pattern
//! of god's grouped policies. RabbitMQ compiles each policy's pattern anew every time it
//! matches a queue against it (at every declaration), so the pattern's length is what each
//! queue declared costs: common prefixes are written once (`q(?:|_dlq)`), and characters
//! followed by the same endings are one class (`svc_0[0-4][0-9]` for `svc_000` to `svc_049`).

use std::collections::BTreeMap;
use std::iter::Peekable;
use std::str::Chars;

/// The pattern that matches exactly `names`, anchored: `^(?:…)$`.
pub fn pattern<'a>(names: impl IntoIterator<Item = &'a String>) -> String {
    let mut root = Trie::default();
    for name in names {
        root.insert(name);
    }
    format!("^(?:{})$", root.alternatives().join("|"))
}

/// Every name a pattern of [`pattern`] matches (or of a plain alternation of escaped names, as
/// older gods wrote it); None for any other pattern.
pub fn names(pattern: &str) -> Option<Vec<String>> {
    let inner = pattern.strip_prefix("^(?:")?.strip_suffix(")$")?;
    let mut chars = inner.chars().peekable();
    let names = expand_alternation(&mut chars)?;
    chars.next().is_none().then_some(names)
}

/// The names of a pattern, by their characters.
#[derive(Default)]
struct Trie {
    /// A name ends here.
    end: bool,
    next: BTreeMap<char, Trie>,
}

impl Trie {
    fn insert(&mut self, name: &str) {
        let mut node = self;
        for c in name.chars() {
            node = node.next.entry(c).or_default();
        }
        node.end = true;
    }

    /// What may follow this node, one regular expression per branch ("" where a name ends);
    /// the characters whose branches continue with the same expression share one branch.
    fn alternatives(&self) -> Vec<String> {
        let mut by_tail: Vec<(String, Vec<char>)> = Vec::new();
        for (c, child) in &self.next {
            let tail = child.tail();
            match by_tail.iter_mut().find(|(t, _)| *t == tail) {
                Some((_, chars)) => chars.push(*c),
                None => by_tail.push((tail, vec![*c])),
            }
        }
        let branches = by_tail
            .into_iter()
            .map(|(tail, chars)| format!("{}{tail}", class(&chars)));
        self.end
            .then(String::new)
            .into_iter()
            .chain(branches)
            .collect()
    }

    /// This node's branches as one expression: a group only where they fork.
    fn tail(&self) -> String {
        let alternatives = self.alternatives();
        match alternatives.as_slice() {
            [one] => one.clone(),
            _ => format!("(?:{})", alternatives.join("|")),
        }
    }
}

/// One character, or a class of them (`[0-4_]`), in increasing order: runs of three or more
/// consecutive ASCII letters or digits become ranges.
fn class(chars: &[char]) -> String {
    if let [one] = chars {
        return regex::escape(&one.to_string());
    }
    let mut text = String::from("[");
    let mut rest = chars;
    while let [first, ..] = rest {
        let run = rest
            .iter()
            .zip(*first..)
            .take_while(|(c, expected)| **c == *expected && c.is_ascii_alphanumeric())
            .count();
        if run >= 3 {
            text.push(*first);
            text.push('-');
            text.push(rest[run - 1]);
            rest = &rest[run..];
        } else {
            text.push_str(&regex::escape(&first.to_string()));
            rest = &rest[1..];
        }
    }
    text.push(']');
    text
}

/// Every name an alternation matches, up to the `)` that closes it (left unread).
fn expand_alternation(chars: &mut Peekable<Chars<'_>>) -> Option<Vec<String>> {
    let mut names = Vec::new();
    loop {
        names.extend(expand_sequence(chars)?);
        match chars.peek() {
            Some('|') => {
                chars.next();
            }
            _ => return Some(names),
        }
    }
}

/// Every name one branch matches: its characters, times each group's and class's names.
fn expand_sequence(chars: &mut Peekable<Chars<'_>>) -> Option<Vec<String>> {
    let mut names = vec![String::new()];
    while let Some(&c) = chars.peek() {
        let continuations = match c {
            '|' | ')' => break,
            '(' => {
                chars.next();
                (chars.next()? == '?' && chars.next()? == ':').then_some(())?;
                let group = expand_alternation(chars)?;
                (chars.next()? == ')').then_some(())?;
                group
            }
            '[' => {
                chars.next();
                expand_class(chars)?.into_iter().map(String::from).collect()
            }
            '\\' => {
                chars.next();
                vec![chars.next()?.to_string()]
            }
            other => {
                chars.next();
                vec![other.to_string()]
            }
        };
        names = names
            .iter()
            .flat_map(|n| continuations.iter().map(move |c| format!("{n}{c}")))
            .collect();
    }
    Some(names)
}

/// The characters of a class, its `[` read: escaped characters and ranges, up to its `]`.
fn expand_class(chars: &mut Peekable<Chars<'_>>) -> Option<Vec<char>> {
    let mut members: Vec<char> = Vec::new();
    let mut range_from = None;
    loop {
        let (c, escaped) = match chars.next()? {
            ']' => break,
            '\\' => (chars.next()?, true),
            other => (other, false),
        };
        if c == '-' && !escaped && range_from.is_none() {
            range_from = Some(*members.last()?);
            continue;
        }
        match range_from.take() {
            Some(from) if from < c => members.extend((from..=c).skip(1)),
            Some(_) => return None,
            None => members.push(c),
        }
    }
    range_from.is_none().then_some(members)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Asserts that `pattern` matches every name of `set` and none of `others`, and reads back
    /// as exactly `set`.
    fn assert_exact(set: &BTreeSet<String>, others: &[String]) -> String {
        let written = pattern(set);
        let compiled = regex::Regex::new(&written).unwrap();
        for name in set {
            assert!(compiled.is_match(name), "{name} in {written}");
        }
        for other in others.iter().filter(|o| !set.contains(*o)) {
            assert!(!compiled.is_match(other), "{other} in {written}");
        }
        let back: BTreeSet<String> = names(&written).unwrap().into_iter().collect();
        assert_eq!(&back, set, "{written}");
        written
    }

    #[test]
    fn numbered_names_become_classes_and_read_back() {
        let set: BTreeSet<String> = (0..5000)
            .map(|i| format!("services.bench.svc_{i:05}"))
            .collect();
        let others: Vec<String> = ["services.bench.svc_05000", "services.bench.svc_0499", "x"]
            .map(String::from)
            .into();
        let written = assert_exact(&set, &others);
        assert_eq!(
            written,
            "^(?:services\\.bench\\.svc_0[0-4][0-9][0-9][0-9])$"
        );
    }

    #[test]
    fn characters_followed_alike_share_a_class_and_others_stay_apart() {
        let set: BTreeSet<String> = ["a1", "b1", "c1", "d2", "e-x", "f-x", "g]", "h]", "é1"]
            .map(String::from)
            .into();
        let others: Vec<String> = ["a2", "d1", "e", "-x", "g", "i]", "1"]
            .map(String::from)
            .into();
        let written = assert_exact(&set, &others);
        assert_eq!(written, "^(?:[a-cé]1|d2|[ef]\\-x|[gh]\\])$");
    }

    #[test]
    fn any_set_of_names_is_matched_exactly() {
        // Names over a small alphabet, so that prefixes, endings and classes meet often.
        let alphabet: Vec<char> = "ab1-._é".chars().collect();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |bound: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize % bound
        };
        for _ in 0..200 {
            let mut universe = Vec::new();
            for _ in 0..40 {
                let length = next(5);
                universe.push(
                    (0..length)
                        .map(|_| alphabet[next(alphabet.len())])
                        .collect(),
                );
            }
            let set: BTreeSet<String> = universe.iter().filter(|_| next(2) == 0).cloned().collect();
            if set.is_empty() {
                continue;
            }
            assert_exact(&set, &universe);
        }
    }

    #[test]
    fn other_patterns_are_not_read_as_names() {
        for other in ["^q$", "^(?:a|b", "^(?:[a-)$", "^(?:[c-a])$", "^(?:[a)$"] {
            assert_eq!(names(other), None, "{other}");
        }
    }
}
