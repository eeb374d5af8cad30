//! Client-side topic checks, so that an obviously invalid name fails at the call that made it
//! instead of coming back later as a `denied` frame.
//!
//! The rule is the broker's (docs/manifest.md, "Topics"; `wf_policy::topic`): a topic is one or
//! more `.`-separated segments, each a lowercase ASCII letter followed by lowercase letters,
//! digits or `_`, at most [`MAX_TOPIC_BYTES`] in all. A subscription may also be a pattern,
//! a topic followed by `.*` (exactly one more segment). The SDK does not depend on
//! `wf-policy`; `tests/topic_rule.rs` checks that both agree.

use crate::error::SdkError;

/// Longest topic or pattern the broker accepts, in bytes.
pub(crate) const MAX_TOPIC_BYTES: usize = 128;

/// Longest excerpt of a refused name kept in the error.
const MAX_SHOWN_CHARS: usize = 64;

/// A concrete topic, as `publish` needs.
pub(crate) fn check_topic(topic: &str) -> Result<(), SdkError> {
    match topic_problem(topic) {
        None => Ok(()),
        Some(_) if topic.ends_with(".*") && topic_problem(&topic[..topic.len() - 2]).is_none() => {
            Err(invalid(topic, "a `.*` pattern can be subscribed to, not published on"))
        }
        Some(reason) => Err(invalid(topic, reason)),
    }
}

/// A topic or a `prefix.*` pattern, as `subscribe` and `unsubscribe` take.
pub(crate) fn check_pattern(pattern: &str) -> Result<(), SdkError> {
    if pattern.len() > MAX_TOPIC_BYTES {
        return Err(invalid(pattern, "longer than 128 bytes"));
    }
    let concrete = pattern.strip_suffix(".*").unwrap_or(pattern);
    match topic_problem(concrete) {
        None => Ok(()),
        Some(reason) => Err(invalid(pattern, reason)),
    }
}

fn topic_problem(topic: &str) -> Option<&'static str> {
    if topic.is_empty() {
        return Some("empty");
    }
    if topic.len() > MAX_TOPIC_BYTES {
        return Some("longer than 128 bytes");
    }
    if !topic.split('.').all(segment_is_valid) {
        return Some("every `.`-separated segment must be a lowercase letter followed by a-z, 0-9 or `_`");
    }
    None
}

fn segment_is_valid(segment: &str) -> bool {
    let mut bytes = segment.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn invalid(topic: &str, reason: &'static str) -> SdkError {
    let mut shown: String = topic.chars().take(MAX_SHOWN_CHARS).collect();
    if shown.len() < topic.len() {
        shown.push('…');
    }
    SdkError::InvalidTopic { topic: shown, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Valid under the documented rule: `^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`, ≤ 128 bytes.
    const VALID: &[&str] = &["energy", "energy.update", "ui.render", "a1_b.c_2", "a.b.c.d", "z9", "a_"];

    const INVALID: &[&str] =
        &["", ".", "a.", ".a", "a..b", "A", "a.B", "1a", "a.1b", "_a", "a-b", "a b", "*", "a/b", "é", "a\0", " a"];

    #[test]
    fn documented_topics_are_accepted() {
        let longest = "a".repeat(MAX_TOPIC_BYTES);
        for topic in VALID.iter().copied().chain([longest.as_str()]) {
            assert!(check_topic(topic).is_ok(), "{topic}");
            assert!(check_pattern(topic).is_ok(), "{topic}");
        }
    }

    #[test]
    fn everything_else_is_refused_naming_the_topic() {
        let too_long = "a".repeat(MAX_TOPIC_BYTES + 1);
        for topic in INVALID.iter().copied().chain([too_long.as_str()]) {
            for result in [check_topic(topic), check_pattern(topic)] {
                match result {
                    Err(SdkError::InvalidTopic { topic: shown, .. }) => {
                        assert!(topic.starts_with(shown.trim_end_matches('…')), "{shown:?}");
                        assert!(shown.chars().count() <= MAX_SHOWN_CHARS + 1);
                    }
                    other => panic!("{topic:?}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn a_final_wildcard_is_a_pattern_not_a_topic() {
        for pattern in ["energy.*", "a.b.*"] {
            assert!(check_pattern(pattern).is_ok(), "{pattern}");
            let refused = check_topic(pattern);
            assert!(matches!(refused, Err(SdkError::InvalidTopic { reason, .. }) if reason.contains("pattern")));
        }
        for bad in ["*", ".*", "*.a", "a.*.b", "a.**", "a*", "a.*.*", "A.*"] {
            assert!(check_pattern(bad).is_err(), "{bad}");
            assert!(check_topic(bad).is_err(), "{bad}");
        }
        // The length limit counts the wildcard.
        let at_limit = format!("{}.*", "a".repeat(MAX_TOPIC_BYTES - 2));
        assert!(check_pattern(&at_limit).is_ok());
        assert!(check_pattern(&format!("a{at_limit}")).is_err());
    }
}
