//! The daemon's audit trail: every security-relevant event goes to the hash-chained audit log
//! (policy `audit`), or nowhere when the policy turns auditing off.
//!
//! Hellos refused because the peer is backing off are not written one by one (a spammer would
//! cost one record per attempt): the denial that started the back-off is recorded (with its
//! `retry_after_ms`), the refusals during it are counted per uid, and the peer's next auth
//! record carries the count as `refused_during_backoff`. A back-off period costs O(1) records.

use crate::audit_log::{AuditLog, AuditLogError};
use crate::auth::{AuditSink, AuthEvent, Reason};
use crate::clock::Clock;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use wf_policy::SecurityPolicy;

/// `rotate_size_mb` counts mebibytes.
const BYTES_PER_MB: u64 = 1024 * 1024;
/// Uids whose back-off refusals are counted at once; refusals of further uids are written.
const MAX_TALLIED_PEERS: usize = 4096;

pub struct AuditTrail {
    log: Option<AuditLog>,
    warned: AtomicBool,
    backoff_refusals: Mutex<BackoffTally>,
}

/// Back-off refusals not yet written, per peer uid.
#[derive(Debug, Default)]
pub struct BackoffTally {
    refused: HashMap<u32, u64>,
}

impl BackoffTally {
    /// Whether `event` is written: a back-off refusal is only counted (`None`); any other event
    /// is returned as JSON, with the peer's count of refusals since its last record.
    pub fn admit(&mut self, event: &AuthEvent) -> Option<serde_json::Value> {
        let uid = event.peer.uid;
        let room = self.refused.len() < MAX_TALLIED_PEERS || self.refused.contains_key(&uid);
        if event.reason == Reason::Backoff && room {
            let count = self.refused.entry(uid).or_default();
            *count = count.saturating_add(1);
            return None;
        }
        let mut value = serde_json::to_value(event).ok()?;
        if let Some(count) = self.refused.remove(&uid) {
            value["refused_during_backoff"] = serde_json::json!(count);
        }
        Some(value)
    }
}

impl AuditTrail {
    /// Open the log the policy names, or a trail that records nothing when auditing is off.
    pub fn from_policy(policy: &SecurityPolicy, clock: impl Clock + 'static) -> Result<Self, AuditLogError> {
        let audit = &policy.audit;
        let log = if audit.enabled {
            let size = audit.rotate_size_mb.saturating_mul(BYTES_PER_MB);
            Some(AuditLog::open(Path::new(&audit.path), size, audit.rotate_keep, Arc::new(clock))?)
        } else {
            None
        };
        Ok(Self { log, warned: AtomicBool::new(false), backoff_refusals: Mutex::default() })
    }

    /// Append one record. A failing log is reported once on the daemon's log; the event itself
    /// is never held back (the daemon keeps working, and the failure is visible to admins).
    pub fn record(&self, kind: &str, event: serde_json::Value) {
        let Some(log) = &self.log else { return };
        if let Err(e) = log.append(kind, event) {
            self.report_failure(&e);
        }
    }

    fn report_failure(&self, error: &dyn std::error::Error) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::error!(%error, "writing the audit log failed; further failures are not reported");
        }
    }
}

impl AuditSink for AuditTrail {
    fn record(&self, event: AuthEvent) {
        let admitted = self.backoff_refusals.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).admit(&event);
        if let Some(value) = admitted {
            self.record("auth", value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit_log::{chain_files, rotated_path, verify, Status};
    use crate::auth::{Outcome, PeerCred, Reason, Stage};
    use crate::clock::FakeClock;
    use serde_json::{json, Value};

    fn policy(path: &Path, enabled: bool) -> SecurityPolicy {
        let mut policy = wf_policy::default_policy();
        policy.audit.enabled = enabled;
        policy.audit.path = path.to_string_lossy().into_owned();
        policy
    }

    fn trail(policy: &SecurityPolicy) -> AuditTrail {
        AuditTrail::from_policy(policy, FakeClock::starting_at_unix_ms(1_700_000_000_000)).expect("open")
    }

    fn denied_stranger() -> AuthEvent {
        AuthEvent {
            time_unix_ms: 1_700_000_000_000,
            peer: PeerCred { pid: 7, uid: 4321, gid: 4321 },
            stage: Stage::Hello,
            session: None,
            verb: None,
            decision: Outcome::Denied,
            rights: None,
            reason: Reason::PeerNotListed,
            retry_after_ms: None,
        }
    }

    fn records(path: &Path) -> Vec<Value> {
        let text = std::fs::read_to_string(path).expect("read the log");
        text.lines().map(|line| serde_json::from_str(line).expect("json")).collect()
    }

    #[test]
    fn an_enabled_trail_writes_a_chain_that_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit/audit.jsonl");
        let trail = trail(&policy(&path, true));
        trail.record("daemon_start", json!({ "pid": 1 }));
        AuditSink::record(&trail, denied_stranger());
        trail.record("daemon_stop", json!({ "error": null }));
        drop(trail);

        let records = records(&path);
        let kinds: Vec<&Value> = records.iter().map(|r| &r["kind"]).collect();
        assert_eq!(kinds, [&json!("daemon_start"), &json!("auth"), &json!("daemon_stop")]);
        assert_eq!(
            (&records[1]["event"]["peer"]["uid"], &records[1]["event"]["decision"]),
            (&json!(4321), &json!("denied"))
        );
        let report = verify(std::slice::from_ref(&path));
        assert_eq!((report.status, report.records, report.last_seq), (Status::Intact, 3, Some(3)), "{report}");
    }

    #[test]
    fn back_off_refusals_are_counted_into_the_peers_next_record() {
        let mut tally = BackoffTally::default();
        let backing_off = AuthEvent { reason: Reason::Backoff, retry_after_ms: Some(100), ..denied_stranger() };
        for _ in 0..30_000 {
            assert_eq!(tally.admit(&backing_off), None, "not one record per refused attempt");
        }
        let other_peer = AuthEvent { peer: PeerCred { pid: 8, uid: 99, gid: 99 }, ..denied_stranger() };
        assert_eq!(tally.admit(&other_peer).map(|v| v.get("refused_during_backoff").is_some()), Some(false));
        let next = tally.admit(&denied_stranger()).expect("written");
        assert_eq!(next["refused_during_backoff"], json!(30_000));
        assert_eq!(tally.admit(&denied_stranger()).map(|v| v.get("refused_during_backoff").is_some()), Some(false));
    }

    #[test]
    fn the_tally_is_bounded_and_then_writes_refusals_out() {
        let mut tally = BackoffTally::default();
        let refusal =
            |uid| AuthEvent { peer: PeerCred { pid: 1, uid, gid: uid }, reason: Reason::Backoff, ..denied_stranger() };
        for uid in 0..MAX_TALLIED_PEERS as u32 {
            assert_eq!(tally.admit(&refusal(uid)), None);
        }
        assert!(tally.admit(&refusal(u32::MAX)).is_some(), "a full tally records instead of growing");
        assert_eq!(tally.refused.len(), MAX_TALLIED_PEERS);
    }

    #[test]
    fn a_disabled_trail_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit/audit.jsonl");
        let trail = trail(&policy(&path, false));
        trail.record("daemon_start", json!({ "pid": 1 }));
        AuditSink::record(&trail, denied_stranger());
        drop(trail);
        assert!(!path.parent().expect("parent").exists(), "not even the directory is created");
    }

    #[test]
    fn rotate_size_mb_counts_mebibytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let mut policy = policy(&path, true);
        (policy.audit.rotate_size_mb, policy.audit.rotate_keep) = (1, 2);
        let trail = trail(&policy);
        for n in 0..1100 {
            trail.record("violation", json!({ "n": n, "detail": "d".repeat(1000) }));
        }
        drop(trail);
        let rotated = std::fs::metadata(rotated_path(&path, 1)).expect("one rotation").len();
        assert!(rotated <= BYTES_PER_MB && rotated > BYTES_PER_MB - 2048, "{rotated} bytes in .1");
        assert!(!rotated_path(&path, 2).exists(), "only one rotation for 1.1 MB of records");
        let report = verify(&chain_files(&path).expect("list"));
        assert_eq!((report.status, report.records), (Status::Intact, 1100), "{report}");
    }

    #[test]
    fn a_log_the_policy_points_at_through_a_symlink_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &path).expect("symlink");
        let refused = AuditTrail::from_policy(&policy(&path, true), FakeClock::default());
        assert!(matches!(refused, Err(AuditLogError::Symlink { .. })), "the daemon does not start on it");
    }
}
