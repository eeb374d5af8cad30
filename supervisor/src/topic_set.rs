//! A set of topics and `prefix.*` patterns that answers "does it match this topic?" in
//! constant time: a topic matches when the set holds it, or holds the `.*` pattern of its
//! parent (a wildcard matches exactly one more segment). Grants, subscriptions and control
//! subscriptions are all checked on every event, so none of them may cost a scan of its
//! patterns, let alone re-validating each one.

use std::collections::HashSet;
use wf_policy::topic::grant_is_valid;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicSet {
    exact: HashSet<String>,
    /// Wildcard patterns, keyed by their prefix (without the trailing `.*`).
    wildcard: HashSet<String>,
}

impl TopicSet {
    /// The valid patterns among `patterns` (invalid ones can match nothing and are left out).
    pub fn from_patterns<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Self {
        let mut set = Self::default();
        for pattern in patterns {
            set.insert(pattern);
        }
        set
    }

    /// Adds a valid pattern; `false` if it is invalid or already there.
    pub fn insert(&mut self, pattern: &str) -> bool {
        if !grant_is_valid(pattern) {
            return false;
        }
        match pattern.strip_suffix(".*") {
            Some(prefix) => self.wildcard.insert(prefix.to_owned()),
            None => self.exact.insert(pattern.to_owned()),
        }
    }

    pub fn remove(&mut self, pattern: &str) -> bool {
        match pattern.strip_suffix(".*") {
            Some(prefix) => self.wildcard.remove(prefix),
            None => self.exact.remove(pattern),
        }
    }

    /// Holds this very pattern (compared literally).
    pub fn contains_pattern(&self, pattern: &str) -> bool {
        match pattern.strip_suffix(".*") {
            Some(prefix) => self.wildcard.contains(prefix),
            None => self.exact.contains(pattern),
        }
    }

    /// Does some pattern match the (valid) `topic`?
    pub fn matches(&self, topic: &str) -> bool {
        self.exact.contains(topic) || topic.rsplit_once('.').is_some_and(|(parent, _)| self.wildcard.contains(parent))
    }

    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every pattern, sorted.
    pub fn sorted(&self) -> Vec<String> {
        let mut all: Vec<String> =
            self.exact.iter().cloned().chain(self.wildcard.iter().map(|prefix| format!("{prefix}.*"))).collect();
        all.sort_unstable();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wf_policy::topic::topic_matches;

    #[test]
    fn matching_is_the_grant_rule_exact_or_one_segment_below_a_wildcard() {
        let set = TopicSet::from_patterns(["energy.update", "sensor.*", "Bad", "a.*.*"]);
        assert_eq!(set.len(), 2, "invalid patterns are left out");
        for (topic, expected) in [
            ("energy.update", true),
            ("energy.updates", false),
            ("sensor.temp", true),
            ("sensor", false),
            ("sensor.temp.raw", false),
            ("other.temp", false),
        ] {
            assert_eq!(set.matches(topic), expected, "{topic}");
        }
    }

    #[test]
    fn it_agrees_with_topic_matches_on_every_pair_of_a_sample() {
        let patterns = ["a", "a.b", "a.*", "a.b.*", "b.*", "a.b.c"];
        let topics = ["a", "b", "a.b", "a.c", "a.b.c", "a.b.d", "b.a", "b.a.c", "c"];
        for pattern in patterns {
            let set = TopicSet::from_patterns([pattern]);
            for topic in topics {
                assert_eq!(set.matches(topic), topic_matches(pattern, topic), "{pattern} vs {topic}");
            }
        }
    }

    #[test]
    fn insert_remove_and_sorted_keep_patterns_literal() {
        let mut set = TopicSet::default();
        assert!(set.insert("t.*") && set.insert("t.a") && !set.insert("t.a"));
        assert!(set.contains_pattern("t.*") && !set.contains_pattern("t.b"));
        assert_eq!(set.sorted(), ["t.*", "t.a"]);
        assert!(set.remove("t.*") && !set.matches("t.b") && set.matches("t.a"));
        assert!(!set.remove("t.*"));
    }
}
