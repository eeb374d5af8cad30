//! Event topic names and grants.
//!
//! A topic is one or more segments joined by `.`; each segment is a lowercase letter
//! followed by lowercase letters, digits or `_` (`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`),
//! and the whole name is at most [`MAX_TOPIC_BYTES`].
//!
//! A grant is a topic, or a topic followed by `.*`: the wildcard matches **exactly one
//! more segment**, so `energy.*` matches `energy.update` but neither `energy` nor
//! `energy.update.raw`. A bare `*` is not a grant.

/// Longest topic or grant accepted, in bytes.
pub const MAX_TOPIC_BYTES: usize = 128;

/// True if `topic` is a concrete topic name (no wildcard).
pub fn topic_is_valid(topic: &str) -> bool {
    topic.len() <= MAX_TOPIC_BYTES && topic.split('.').all(segment_is_valid)
}

/// True if `grant` is a concrete topic or a `prefix.*` wildcard grant.
pub fn grant_is_valid(grant: &str) -> bool {
    if grant.len() > MAX_TOPIC_BYTES {
        return false;
    }
    match grant.strip_suffix(".*") {
        Some(prefix) => topic_is_valid(prefix),
        None => topic_is_valid(grant),
    }
}

/// True if the (valid) `grant` allows the (valid) `topic`. Invalid input never matches.
pub fn topic_matches(grant: &str, topic: &str) -> bool {
    if !grant_is_valid(grant) || !topic_is_valid(topic) {
        return false;
    }
    match grant.strip_suffix(".*") {
        Some(prefix) => {
            topic.strip_prefix(prefix).and_then(|rest| rest.strip_prefix('.')).is_some_and(|last| !last.contains('.'))
        }
        None => grant == topic,
    }
}

/// Plain reason a grant is invalid, for validation messages.
pub fn grant_problem(grant: &str) -> Option<String> {
    if grant_is_valid(grant) {
        return None;
    }
    if grant.len() > MAX_TOPIC_BYTES {
        return Some(format!("topic is longer than {MAX_TOPIC_BYTES} bytes"));
    }
    Some(
        "topic must be dot-separated segments of a lowercase letter followed by a-z, 0-9 or '_' \
         (e.g. energy.update), optionally ending in '.*' for exactly one more segment"
            .to_owned(),
    )
}

/// Bytes of a `subscribed` frame body (the plugin channel's listing of a subscription set)
/// around its list of topics.
pub const SUBSCRIBED_OVERHEAD: usize = r#"{"type":"subscribed","topics":[]}"#.len();

/// The bytes one (valid) pattern adds to a `subscribed` listing, separator included: patterns
/// need no JSON escapes.
pub fn listed_len(pattern: &str) -> usize {
    pattern.len() + 3
}

/// An upper bound on the `subscribed` frame body that lists `patterns` (one separator too many).
pub fn listing_bytes<'a>(patterns: impl IntoIterator<Item = &'a str>) -> usize {
    SUBSCRIBED_OVERHEAD + patterns.into_iter().filter(|p| grant_is_valid(p)).map(listed_len).sum::<usize>()
}

fn segment_is_valid(segment: &str) -> bool {
    let mut bytes = segment.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_topics() {
        for topic in ["energy", "energy.update", "ui.render", "a1_b.c_2", &"a".repeat(MAX_TOPIC_BYTES)] {
            assert!(topic_is_valid(topic), "{topic}");
        }
    }

    #[test]
    fn invalid_topics() {
        for topic in [
            "",
            ".",
            "a.",
            ".a",
            "a..b",
            "A",
            "a.B",
            "1a",
            "a.1b",
            "_a",
            "a-b",
            "a b",
            "a.*",
            "*",
            "a/b",
            "é",
            &"a".repeat(MAX_TOPIC_BYTES + 1),
        ] {
            assert!(!topic_is_valid(topic), "{topic:?}");
        }
    }

    #[test]
    fn grants_allow_a_final_wildcard_only() {
        assert!(grant_is_valid("energy.*"));
        assert!(grant_is_valid("energy.update"));
        for bad in ["*", ".*", "*.a", "a.*.b", "a.**", "a*", "a.*.*"] {
            assert!(!grant_is_valid(bad), "{bad}");
            assert!(grant_problem(bad).is_some());
        }
        assert!(grant_problem("ok.topic").is_none());
    }

    #[test]
    fn wildcard_matches_exactly_one_more_segment() {
        assert!(topic_matches("energy.*", "energy.update"));
        assert!(!topic_matches("energy.*", "energy"));
        assert!(!topic_matches("energy.*", "energy.update.raw"));
        assert!(!topic_matches("energy.*", "energyx.update"));
        assert!(!topic_matches("energy.*", "other.update"));
    }

    #[test]
    fn exact_grants_match_only_themselves() {
        assert!(topic_matches("energy.update", "energy.update"));
        assert!(!topic_matches("energy.update", "energy.update2"));
        assert!(!topic_matches("energy", "energy.update"));
    }

    #[test]
    fn invalid_input_never_matches() {
        assert!(!topic_matches("Energy.*", "Energy.x"));
        assert!(!topic_matches("*", "anything"));
        assert!(!topic_matches("a.*", "a.*"));
        assert!(!topic_matches("a..b", "a..b"));
    }
}
