//! The daemon's in-memory record of recent violations, for `list_violations`. Bounded: the
//! oldest records go first; the audit log keeps every one.

use std::collections::VecDeque;
use std::sync::Mutex;
use wf_protocol::control::Violation;

/// Violations kept in memory across all plugins.
pub const DEFAULT_CAPACITY: usize = 10_000;

pub struct ViolationLog {
    capacity: usize,
    ring: Mutex<VecDeque<Violation>>,
}

impl ViolationLog {
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), ring: Mutex::new(VecDeque::new()) }
    }

    pub fn record(&self, violation: Violation) {
        let mut ring = self.lock();
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(violation);
    }

    /// Newest first, at most `limit`, of one plugin or of all; `true` when more matched.
    pub fn list(&self, plugin: Option<&str>, limit: usize) -> (Vec<Violation>, bool) {
        let ring = self.lock();
        let mut matching = ring.iter().rev().filter(|v| plugin.is_none_or(|name| v.plugin == name));
        let listed: Vec<Violation> = matching.by_ref().take(limit).cloned().collect();
        let truncated = matching.next().is_some();
        (listed, truncated)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Violation>> {
        self.ring.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violation(plugin: &str, n: u64) -> Violation {
        Violation {
            time_ms: n,
            plugin: plugin.into(),
            instance: format!("{plugin}-1"),
            layer: "broker".into(),
            kind: "topic_denied".into(),
            detail: serde_json::json!({ "n": n }),
            rule: "/permissions/events/write".into(),
            action: "deny".into(),
        }
    }

    #[test]
    fn newest_first_filtered_by_plugin_with_truncation_said() {
        let log = ViolationLog::new(100);
        for n in 0..5 {
            log.record(violation(if n % 2 == 0 { "a" } else { "b" }, n));
        }
        let (a, truncated) = log.list(Some("a"), 2);
        assert_eq!(a.iter().map(|v| v.time_ms).collect::<Vec<_>>(), [4, 2]);
        assert!(truncated);
        let (all, truncated) = log.list(None, 10);
        assert_eq!(all.iter().map(|v| v.time_ms).collect::<Vec<_>>(), [4, 3, 2, 1, 0]);
        assert!(!truncated);
    }

    #[test]
    fn the_oldest_are_dropped_at_capacity() {
        let log = ViolationLog::new(3);
        for n in 0..10 {
            log.record(violation("a", n));
        }
        let (kept, _) = log.list(None, 10);
        assert_eq!(kept.iter().map(|v| v.time_ms).collect::<Vec<_>>(), [9, 8, 7]);
    }
}
