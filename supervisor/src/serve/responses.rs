//! Response policy per violation kind (policy `violations.responses`): which violations make
//! the daemon kill or quarantine a plugin, possibly only after `count` of them in `seconds`.
//!
//! Deciding is pure and cheap and happens where the violation is recorded
//! ([`super::violations::ViolationLog::record`]), so the record carries the action taken. What
//! the decision needs done (kill, quarantine) is handed to a task over a bounded channel and
//! never awaited there: the broker's channel reader that reported the violation never waits
//! for a response.
//!
//! Counting is per plugin *name* (so across restarts of it) and per rule. Records the
//! per-instance [`super::violations::ViolationBudget`] suppressed are counted too: the next
//! record of that instance says how many (`detail.suppressed_before`), and they are counted
//! with it, as violations of its kind, at its time. Suppressed violations never followed by a
//! record of their instance are not counted.
//!
//! A rule fires once per instance: further matching violations of an instance already being
//! killed (or quarantined) keep the layer's own action and queue nothing. A `quarantine`
//! after a `kill` of the same instance still fires.

use super::daemon::Daemon;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use tokio::sync::mpsc;
use wf_policy::security_policy::{ResponseAction, ResponseRule, ResponseThreshold};
use wf_protocol::control::Violation;

/// Responses waiting for the task; more are dropped (and logged), never waited for.
const QUEUE: usize = 256;

/// The last `count` matching violations of one plugin under one rule, as (time, how many).
#[derive(Debug, Default)]
pub struct ThresholdWindow {
    entries: VecDeque<(u64, u64)>,
    total: u64,
}

impl ThresholdWindow {
    /// Count `weight` violations at `now_ms`; `true` when `threshold` is reached, which starts
    /// the count again. Never holds more than `count` entries.
    pub fn add(&mut self, now_ms: u64, weight: u64, threshold: ResponseThreshold) -> bool {
        let count = u64::from(threshold.count.max(1));
        let window_ms = u64::from(threshold.seconds).saturating_mul(1000);
        let oldest_kept = now_ms.saturating_sub(window_ms);
        // Within the window: newer than `now - seconds`, i.e. at most `seconds` old.
        while self.entries.front().is_some_and(|&(at, _)| at <= oldest_kept && window_ms <= now_ms) {
            if let Some((_, n)) = self.entries.pop_front() {
                self.total -= n;
            }
        }
        match self.entries.back_mut() {
            Some((at, n)) if *at == now_ms => *n = n.saturating_add(weight),
            _ => self.entries.push_back((now_ms, weight)),
        }
        self.total = self.total.saturating_add(weight);
        // Only the newest `count` can matter.
        while self.entries.len() as u64 > count {
            if let Some((_, n)) = self.entries.pop_front() {
                self.total -= n;
            }
        }
        if self.total >= count {
            self.entries.clear();
            self.total = 0;
            return true;
        }
        false
    }
}

/// What the task is asked to do about one violation.
#[derive(Debug, Clone)]
pub struct Response {
    pub action: ResponseAction,
    /// `/violations/responses/N` of the rule that fired.
    pub rule: String,
    pub violation: Violation,
}

/// The per-plugin counting, reset whenever the rules change.
#[derive(Debug, Default)]
struct Counting {
    rules: Vec<ResponseRule>,
    /// (plugin, rule index) → window.
    windows: HashMap<(String, usize), ThresholdWindow>,
    /// plugin → (instance, action) of the last response it was handed.
    fired: HashMap<String, (String, ResponseAction)>,
}

impl Counting {
    /// The action a violation gets under `rules`, if a rule escalates it, with the rule index.
    fn decide(&mut self, rules: &[ResponseRule], violation: &Violation) -> Option<(ResponseAction, usize)> {
        if self.rules != rules {
            *self = Counting { rules: rules.to_vec(), ..Counting::default() };
        }
        let (index, rule) = rules.iter().enumerate().find(|(_, r)| r.matches(&violation.kind, &violation.layer))?;
        if rule.action == ResponseAction::Log {
            return None;
        }
        if let Some(threshold) = rule.threshold {
            let weight = 1 + violation.detail.get("suppressed_before").and_then(|v| v.as_u64()).unwrap_or(0);
            let window = self.windows.entry((violation.plugin.clone(), index)).or_default();
            if !window.add(violation.time_ms, weight, threshold) {
                return None;
            }
        }
        let already = self.fired.get(&violation.plugin).is_some_and(|(instance, action)| {
            *instance == violation.instance && (*action == rule.action || *action == ResponseAction::Quarantine)
        });
        if already {
            return None;
        }
        self.fired.insert(violation.plugin.clone(), (violation.instance.clone(), rule.action));
        Some((rule.action, index))
    }
}

/// Decides responses and hands them to the daemon's response task.
#[derive(Default)]
pub struct Responder {
    counting: Mutex<Counting>,
    link: OnceLock<(Weak<Daemon>, mpsc::Sender<Response>)>,
    /// Plugins a response quarantined and no `release` has released: kept by name, so that a
    /// `start MANIFEST` that replaces the registry entry does not lift the quarantine.
    quarantined: Mutex<HashSet<String>>,
}

impl Responder {
    /// Connect to the daemon and start the response task (once; later calls do nothing).
    /// Until then no violation is escalated. Must run inside the runtime.
    pub fn install(&self, daemon: &Arc<Daemon>) {
        if self.link.get().is_some() {
            return;
        }
        let (tx, mut rx) = mpsc::channel::<Response>(QUEUE);
        if self.link.set((Arc::downgrade(daemon), tx)).is_err() {
            return;
        }
        let weak = Arc::downgrade(daemon);
        tokio::spawn(async move {
            while let Some(response) = rx.recv().await {
                let Some(daemon) = weak.upgrade() else { return };
                // One task each: a quarantine waits for a stop; other plugins' responses do not.
                tokio::spawn(async move { daemon.respond(response).await });
            }
        });
    }

    pub fn mark_quarantined(&self, name: &str) {
        self.quarantined().insert(name.to_owned());
    }

    /// Forget a quarantine (`release`); whether there was one.
    pub fn clear_quarantine(&self, name: &str) -> bool {
        self.quarantined().remove(name)
    }

    pub fn is_quarantined(&self, name: &str) -> bool {
        self.quarantined().contains(name)
    }

    fn quarantined(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.quarantined.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The action `violation` gets: the rule's when one fires (and the response is queued),
    /// else `None` (the layer's own action stays).
    pub fn decide(&self, violation: &Violation) -> Option<ResponseAction> {
        let (daemon, tx) = self.link.get()?;
        let policy = daemon.upgrade()?.policy();
        let rules = &policy.policy.violations.responses;
        if rules.is_empty() {
            return None;
        }
        let (action, index) = self.counting.lock().unwrap_or_else(|p| p.into_inner()).decide(rules, violation)?;
        let response =
            Response { action, rule: format!("/violations/responses/{index}"), violation: violation.clone() };
        if tx.try_send(response).is_err() {
            tracing::error!(plugin = %violation.plugin, "violation response queue full; response dropped");
            return None;
        }
        Some(action)
    }
}

impl Daemon {
    /// Carry out one response (the task's side). Every response is written to the audit log.
    async fn respond(self: Arc<Self>, response: Response) {
        let Response { action, rule, violation } = response;
        let (name, instance) = (violation.plugin.as_str(), violation.instance.as_str());
        let outcome = match action {
            ResponseAction::Log => return,
            ResponseAction::Kill => self.response_kill(name, instance).await,
            ResponseAction::Quarantine => self.response_quarantine(name, instance, &rule).await,
        };
        let (taken, note) = match &outcome {
            Ok(note) => (true, note.clone()),
            Err(e) => (false, e.to_string()),
        };
        let event = serde_json::json!({
            "plugin": name, "instance": instance, "action": action.as_str(), "rule": rule,
            "violation": { "layer": violation.layer, "kind": violation.kind, "time_ms": violation.time_ms },
            "taken": taken, "note": note,
        });
        self.audit.record("violation_response", event);
        tracing::warn!(plugin = %crate::terminal_text::escape(name), action = action.as_str(), %rule, taken, "violation response");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wf_policy::security_policy::ResponseAction::{Kill, Log, Quarantine};

    fn threshold(count: u32, seconds: u32) -> ResponseThreshold {
        ResponseThreshold { count, seconds }
    }

    /// A fake clock: the times are the arguments.
    #[test]
    fn a_threshold_fires_at_count_within_the_window_and_starts_again() {
        let t = threshold(3, 60);
        let mut w = ThresholdWindow::default();
        assert!(!w.add(1_000, 1, t));
        assert!(!w.add(2_000, 1, t));
        assert!(w.add(3_000, 1, t), "third within 60 s");
        assert!(!w.add(3_001, 1, t), "the count starts again after firing");
        assert!(!w.add(3_002, 1, t));
        assert!(w.add(3_003, 1, t));
    }

    #[test]
    fn violations_older_than_the_window_no_longer_count() {
        let t = threshold(3, 10);
        let mut w = ThresholdWindow::default();
        assert!(!w.add(0, 1, t));
        assert!(!w.add(5_000, 1, t));
        assert!(!w.add(10_000, 1, t), "the first is exactly 10 s old: out");
        assert!(w.add(14_999, 1, t), "5 s, 10 s and 14.999 s are within 10 s");
        let mut slow = ThresholdWindow::default();
        for n in 0..100u64 {
            assert!(!slow.add(n * 6_000, 1, t), "one every 6 s never reaches 3 in 10 s ({n})");
        }
    }

    #[test]
    fn weights_count_suppressed_violations_and_same_instant_coalesces() {
        let t = threshold(100, 1);
        let mut w = ThresholdWindow::default();
        assert!(!w.add(500, 60, t));
        assert!(w.add(900, 40, t));
        let mut w = ThresholdWindow::default();
        for _ in 0..99 {
            assert!(!w.add(7, 1, t));
        }
        assert_eq!(w.entries.len(), 1);
        assert!(w.add(7, 1, t));
    }

    #[test]
    fn the_window_holds_at_most_count_entries() {
        let t = threshold(5, 86_400);
        let mut w = ThresholdWindow::default();
        // Fires every 5th; in between it never holds more than 4.
        for n in 0..1_000u64 {
            let fired = w.add(n, 1, t);
            assert_eq!(fired, n % 5 == 4, "{n}");
            assert!(w.entries.len() <= 5);
        }
    }

    #[test]
    fn a_clock_that_went_back_keeps_counting() {
        let t = threshold(2, 5);
        let mut w = ThresholdWindow::default();
        assert!(!w.add(100_000, 1, t));
        assert!(w.add(90_000, 1, t), "an entry 'in the future' is within the window");
    }

    fn violation(plugin: &str, instance: &str, kind: &str, time_ms: u64) -> Violation {
        Violation {
            time_ms,
            plugin: plugin.into(),
            instance: instance.into(),
            layer: "broker".into(),
            kind: kind.into(),
            detail: json!({}),
            rule: "/permissions/events/write".into(),
            action: "deny".into(),
        }
    }

    fn rule(kind: &str, action: ResponseAction, threshold: Option<ResponseThreshold>) -> ResponseRule {
        ResponseRule { kind: kind.into(), layer: None, action, threshold }
    }

    #[test]
    fn the_first_matching_rule_decides_and_log_escalates_nothing() {
        let rules = [rule("forged_sender", Log, None), rule("*", Kill, None)];
        let mut c = Counting::default();
        assert_eq!(c.decide(&rules, &violation("a", "a-1", "forged_sender", 1)), None);
        assert_eq!(c.decide(&rules, &violation("a", "a-1", "topic_denied", 1)), Some((Kill, 1)));
        assert_eq!(c.decide(&rules, &violation("a", "a-1", "topic_denied", 2)), None, "once per instance");
        assert_eq!(c.decide(&rules, &violation("a", "a-2", "topic_denied", 3)), Some((Kill, 1)), "a new run");
        let layered = [ResponseRule { layer: Some("resources".into()), ..rule("*", Quarantine, None) }];
        assert_eq!(Counting::default().decide(&layered, &violation("a", "a-1", "topic_denied", 1)), None);
        assert_eq!(Counting::default().decide(&[], &violation("a", "a-1", "topic_denied", 1)), None);
    }

    #[test]
    fn thresholds_count_per_plugin_across_instances_with_suppressed_records() {
        let rules = [rule("topic_denied", Quarantine, Some(threshold(3, 60)))];
        let mut c = Counting::default();
        assert_eq!(c.decide(&rules, &violation("a", "a-1", "topic_denied", 1_000)), None);
        assert_eq!(c.decide(&rules, &violation("b", "b-1", "topic_denied", 1_000)), None, "b counts apart");
        assert_eq!(c.decide(&rules, &violation("a", "a-2", "topic_denied", 2_000)), None);
        assert_eq!(c.decide(&rules, &violation("a", "a-2", "topic_denied", 3_000)), Some((Quarantine, 0)));
        let mut c = Counting::default();
        let carried =
            Violation { detail: json!({ "suppressed_before": 2 }), ..violation("a", "a-1", "topic_denied", 9) };
        assert_eq!(c.decide(&rules, &carried), Some((Quarantine, 0)), "1 recorded + 2 suppressed");
    }

    #[test]
    fn a_quarantine_after_a_kill_of_the_same_instance_still_fires_and_new_rules_reset_counts() {
        let rules = [rule("oom_kill", Quarantine, None), rule("*", Kill, None)];
        let mut c = Counting::default();
        assert_eq!(c.decide(&rules, &violation("a", "a-1", "topic_denied", 1)), Some((Kill, 1)));
        assert_eq!(c.decide(&rules, &violation("a", "a-1", "oom_kill", 2)), Some((Quarantine, 0)));
        assert_eq!(c.decide(&rules, &violation("a", "a-1", "topic_denied", 3)), None);
        let counted = [rule("*", Kill, Some(threshold(2, 60)))];
        let mut c = Counting::default();
        assert_eq!(c.decide(&counted, &violation("a", "a-1", "x", 1)), None);
        let recounted = [rule("*", Kill, Some(threshold(2, 61)))];
        assert_eq!(
            c.decide(&recounted, &violation("a", "a-1", "x", 2)),
            None,
            "a changed policy starts counting again"
        );
        assert_eq!(c.decide(&recounted, &violation("a", "a-1", "x", 3)), Some((Kill, 0)));
    }
}
