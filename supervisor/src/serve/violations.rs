//! The daemon's in-memory record of recent violations, for `list_violations`. Bounded: the
//! oldest records go first; the audit log keeps every one.
//!
//! Each record is also offered to live followers (`list_violations` with `follow`) through a
//! broadcast of [`LIVE_CAPACITY`] records: recording never waits for a follower, and a follower
//! that falls that far behind is told it lagged instead of being buffered for.
//!
//! Each record is first offered to the [`Responder`] (policy `violations.responses`): when a
//! rule fires, the record carries the action taken (`kill`, `quarantine`) instead of the layer's
//! own, and the response is carried out by a task ([`super::responses`]).
//!
//! Also the bounds on what a plugin can make the daemon write about it: every string the
//! plugin chose is cut to [`MAX_RECORDED_TEXT`] bytes ([`bounded_text`]), and a plugin
//! instance's violations are admitted by a [`ViolationBudget`] of records *and* bytes a second.

use super::responses::Responder;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use wf_protocol::control::{Violation, ViolationsResult, MAX_RESPONSE_BYTES};

/// Violations kept in memory across all plugins.
pub const DEFAULT_CAPACITY: usize = 10_000;
/// Bytes of a plugin-chosen string kept in a violation, audit or log record. Valid topics are
/// far shorter; a longer string is cut here and its length recorded.
pub const MAX_RECORDED_TEXT: usize = 256;
/// Violations recorded per plugin instance and second; the rest are counted.
pub const VIOLATIONS_PER_SECOND: u32 = 20;
/// Bytes of violation details recorded per plugin instance and second; the rest are counted.
pub const VIOLATION_BYTES_PER_SECOND: usize = 16 * 1024;
/// Records a live follower may be behind the newest before it has lagged. The broadcast holds
/// this many records (shared by every follower) whatever the number of followers.
pub const LIVE_CAPACITY: usize = 1024;
/// Room kept in a `list_violations` response for everything but the records themselves.
const RESPONSE_ENVELOPE_BYTES: usize = 4096;

/// `text` cut to at most [`MAX_RECORDED_TEXT`] bytes (at a character boundary).
pub fn truncate_text(text: &str) -> &str {
    if text.len() <= MAX_RECORDED_TEXT {
        return text;
    }
    let mut end = MAX_RECORDED_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A plugin-chosen string for a record: itself when short, else
/// `{"truncated": <first 256 bytes>, "bytes": <original length>}`.
pub fn bounded_text(text: &str) -> Value {
    if text.len() <= MAX_RECORDED_TEXT {
        return json!(text);
    }
    json!({ "truncated": truncate_text(text), "bytes": text.len() })
}

/// What [`ViolationBudget::admit`] decided for one violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Record it, saying how many were suppressed since the last record (0: none).
    Record {
        suppressed_before: u64,
    },
    Suppress,
}

/// At most [`VIOLATIONS_PER_SECOND`] records and [`VIOLATION_BYTES_PER_SECOND`] bytes of
/// detail per one-second window; what does not fit is counted into the next record.
#[derive(Debug)]
pub struct ViolationBudget {
    window_start: Instant,
    records: u32,
    bytes: usize,
    suppressed: u64,
}

impl ViolationBudget {
    pub fn new(now: Instant) -> Self {
        Self { window_start: now, records: 0, bytes: 0, suppressed: 0 }
    }

    /// Admit one violation whose detail is `bytes` long. The first record of a window is
    /// admitted whatever its size (details are bounded by [`MAX_RECORDED_TEXT`] per string).
    pub fn admit(&mut self, bytes: usize, now: Instant) -> Admission {
        if now.saturating_duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            (self.records, self.bytes) = (0, 0);
        }
        let over_bytes = self.records > 0 && self.bytes.saturating_add(bytes) > VIOLATION_BYTES_PER_SECOND;
        if self.records >= VIOLATIONS_PER_SECOND || over_bytes {
            self.suppressed = self.suppressed.saturating_add(1);
            return Admission::Suppress;
        }
        self.force(bytes)
    }

    /// Admit one violation regardless of the budget (the last word on a channel), still
    /// counting it against the window.
    pub fn force(&mut self, bytes: usize) -> Admission {
        self.records = self.records.saturating_add(1);
        self.bytes = self.bytes.saturating_add(bytes);
        Admission::Record { suppressed_before: std::mem::take(&mut self.suppressed) }
    }
}

pub struct ViolationLog {
    capacity: usize,
    ring: Mutex<VecDeque<Violation>>,
    /// Every record as it is made, for live followers. Sent under the ring's lock, so that a
    /// follower's snapshot and its subscription meet without a gap or an overlap.
    live: broadcast::Sender<Arc<Violation>>,
    /// Decides the response policy's action for each record (escalates nothing until installed).
    pub responder: Responder,
}

/// The recorded violations a follower starts from, and the records made after them.
pub struct Following {
    pub recorded: ViolationsResult,
    pub live: broadcast::Receiver<Arc<Violation>>,
}

impl ViolationLog {
    pub fn new(capacity: usize) -> Self {
        let (live, _) = broadcast::channel(LIVE_CAPACITY);
        Self { capacity: capacity.max(1), ring: Mutex::new(VecDeque::new()), live, responder: Responder::default() }
    }

    /// Keep `violation`, with the action the response policy took on it, if any (decided
    /// here without waiting; carried out by the response task).
    /// Records `violation` with the action the response policy decided, and returns it as
    /// recorded (for the audit log).
    pub fn record(&self, mut violation: Violation) -> Violation {
        if let Some(action) = self.responder.decide(&violation) {
            violation.action = action.as_str().to_owned();
        }
        let mut ring = self.lock();
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        if self.live.receiver_count() > 0 {
            // Fails only when nobody follows; a slow follower is overwritten, never waited for.
            let _ = self.live.send(Arc::new(violation.clone()));
        }
        ring.push_back(violation.clone());
        violation
    }

    /// Newest first, at most `limit`, of one plugin or of all; `true` when more matched.
    pub fn list(&self, plugin: Option<&str>, limit: usize) -> (Vec<Violation>, bool) {
        Self::list_in(&self.lock(), plugin, limit)
    }

    /// The `list_violations` result: [`Self::list`] cut further, if need be, so that the
    /// response fits [`MAX_RESPONSE_BYTES`] (`truncated` then says so).
    pub fn result(&self, plugin: Option<&str>, limit: usize) -> ViolationsResult {
        let (violations, truncated) = self.list(plugin, limit);
        fit_response(violations, truncated)
    }

    /// [`Self::result`], and a subscription to every violation recorded after it.
    pub fn follow(&self, plugin: Option<&str>, limit: usize) -> Following {
        let ring = self.lock();
        let live = self.live.subscribe();
        let (violations, truncated) = Self::list_in(&ring, plugin, limit);
        drop(ring);
        Following { recorded: fit_response(violations, truncated), live }
    }

    fn list_in(ring: &VecDeque<Violation>, plugin: Option<&str>, limit: usize) -> (Vec<Violation>, bool) {
        let mut matching = ring.iter().rev().filter(|v| plugin.is_none_or(|name| v.plugin == name));
        let listed: Vec<Violation> = matching.by_ref().take(limit).cloned().collect();
        let truncated = matching.next().is_some();
        (listed, truncated)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Violation>> {
        self.ring.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The newest of `violations` (newest first) whose encoding fits a response.
fn fit_response(mut violations: Vec<Violation>, mut truncated: bool) -> ViolationsResult {
    let room = (MAX_RESPONSE_BYTES as usize).saturating_sub(RESPONSE_ENVELOPE_BYTES);
    let mut used = 0usize;
    let fitting = violations
        .iter()
        .position(|v| {
            // A comma between records; a record that cannot be encoded at all counts as too big.
            used = used.saturating_add(serde_json::to_vec(v).map_or(usize::MAX, |b| b.len()).saturating_add(1));
            used > room
        })
        .unwrap_or(violations.len());
    if fitting < violations.len() {
        violations.truncate(fitting);
        truncated = true;
    }
    ViolationsResult { violations, truncated }
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
    fn plugin_text_is_cut_to_the_bound_at_a_character_boundary_with_its_length() {
        assert_eq!(bounded_text("energy.update"), json!("energy.update"));
        let long = "é".repeat(40_000);
        let value = bounded_text(&long);
        let kept = value["truncated"].as_str().unwrap_or_default();
        assert!(kept.len() <= MAX_RECORDED_TEXT && kept.len() >= MAX_RECORDED_TEXT - 1, "{}", kept.len());
        assert!(long.starts_with(kept));
        assert_eq!(value["bytes"], json!(80_000));
        assert_eq!(truncate_text(&"a".repeat(MAX_RECORDED_TEXT)).len(), MAX_RECORDED_TEXT);
    }

    fn admitted(budget: &mut ViolationBudget, bytes: usize, at: Instant, n: usize) -> usize {
        (0..n).filter(|_| matches!(budget.admit(bytes, at), Admission::Record { .. })).count()
    }

    #[test]
    fn the_budget_counts_records_a_second() {
        let t0 = Instant::now();
        let mut budget = ViolationBudget::new(t0);
        assert_eq!(admitted(&mut budget, 10, t0, 100), VIOLATIONS_PER_SECOND as usize);
        let next = budget.admit(10, t0 + Duration::from_secs(1));
        assert_eq!(next, Admission::Record { suppressed_before: 80 });
    }

    #[test]
    fn the_budget_counts_bytes_a_second_too() {
        let t0 = Instant::now();
        let mut budget = ViolationBudget::new(t0);
        let big = VIOLATION_BYTES_PER_SECOND / 4;
        assert_eq!(admitted(&mut budget, big, t0, 20), 4, "bytes, not records, run out first");
        assert_eq!(budget.admit(big, t0 + Duration::from_secs(1)), Admission::Record { suppressed_before: 16 });
        let mut fresh = ViolationBudget::new(t0);
        assert!(matches!(fresh.admit(VIOLATION_BYTES_PER_SECOND * 2, t0), Admission::Record { .. }));
        assert_eq!(fresh.admit(1, t0), Admission::Suppress);
        assert_eq!(fresh.force(1), Admission::Record { suppressed_before: 1 });
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
    fn a_result_is_cut_to_the_response_cap_newest_kept() {
        let big = |n: u64| Violation { detail: json!({ "text": "x".repeat(200_000) }), ..violation("a", n) };
        let log = ViolationLog::new(100);
        for n in 0..10 {
            log.record(big(n));
        }
        let result = log.result(None, 100);
        assert!(result.truncated);
        assert!(!result.violations.is_empty() && result.violations.len() < 10, "{}", result.violations.len());
        assert_eq!(result.violations[0].time_ms, 9, "newest first, newest kept");
        let encoded = serde_json::to_vec(&result).expect("encodable").len();
        assert!(encoded < MAX_RESPONSE_BYTES as usize, "{encoded}");
        let small = ViolationLog::new(10);
        small.record(violation("a", 1));
        assert!(!small.result(None, 10).truncated);
    }

    #[test]
    fn a_follower_gets_exactly_the_records_made_after_its_snapshot() {
        let log = ViolationLog::new(100);
        log.record(violation("a", 0));
        let mut following = log.follow(None, 10);
        assert_eq!(following.recorded.violations.iter().map(|v| v.time_ms).collect::<Vec<_>>(), [0]);
        log.record(violation("b", 1));
        log.record(violation("a", 2));
        let live: Vec<u64> = std::iter::from_fn(|| following.live.try_recv().ok()).map(|v| v.time_ms).collect();
        assert_eq!(live, [1, 2]);
        assert_eq!(log.list(None, 10).0.len(), 3, "followed records are still recorded");
    }

    #[test]
    fn a_follower_that_falls_behind_is_told_so_and_recording_goes_on() {
        let log = ViolationLog::new(10);
        let mut slow = log.follow(None, 1).live;
        for n in 0..(LIVE_CAPACITY as u64 + 5) {
            log.record(violation("a", n));
        }
        assert!(matches!(slow.try_recv(), Err(broadcast::error::TryRecvError::Lagged(5))));
        assert_eq!(log.list(None, 1).0[0].time_ms, LIVE_CAPACITY as u64 + 4);
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
