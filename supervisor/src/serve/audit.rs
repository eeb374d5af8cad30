//! The daemon's audit trail: every security-relevant event goes to the hash-chained audit log
//! (policy `audit`), or nowhere when the policy turns auditing off.
//!
//! What is only counted rather than written one by one, and why, is in [`super::audit_tally`].

use super::audit_tally::AuthTally;
use crate::audit_log::{AuditLog, AuditLogError};
use crate::auth::{AuditSink, AuthEvent};
use crate::clock::Clock;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use wf_policy::SecurityPolicy;

/// `rotate_size_mb` counts mebibytes.
const BYTES_PER_MB: u64 = 1024 * 1024;

pub struct AuditTrail {
    log: Option<AuditLog>,
    warned: AtomicBool,
    tally: Mutex<AuthTally>,
}

/// Back-off refusals not yet written, per peer uid.
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
        Ok(Self { log, warned: AtomicBool::new(false), tally: Mutex::default() })
    }

    /// Append one record. A failing log is reported once on the daemon's log; the event itself
    /// is never held back (the daemon keeps working, and the failure is visible to admins).
    pub fn record(&self, kind: &str, event: serde_json::Value) {
        let Some(log) = &self.log else { return };
        if let Err(e) = log.append(kind, event) {
            self.report_failure(&e);
        }
    }

    /// Writes the counts of refusals not yet on record (periodically, and before
    /// `daemon_stop`), so a peer that never comes back is still accounted for.
    pub fn flush_tallies(&self) {
        let pending = self.tally().drain();
        for event in pending {
            self.record("auth_tally", event);
        }
    }

    fn tally(&self) -> std::sync::MutexGuard<'_, AuthTally> {
        self.tally.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn report_failure(&self, error: &dyn std::error::Error) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::error!(%error, "writing the audit log failed; further failures are not reported");
        }
    }
}

impl AuditSink for AuditTrail {
    fn record(&self, event: AuthEvent) {
        let admitted = self.tally().admit(&event);
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
