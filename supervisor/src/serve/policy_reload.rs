//! `reload_policy` (and SIGHUP): read and check the new policy, then switch every part of the
//! daemon to it at once. An invalid policy changes nothing.
//!
//! What a reload cannot change while the daemon runs is refused with a clear problem: the
//! cgroup parent (the launcher's cgroups were prepared for it before the fork). Running
//! plugins keep the sandbox they were started with; the new policy applies from their next
//! start. Sessions are decided again: those the new policy refuses are closed.
//!
//! Trust: every policy the daemon reads must pass [`crate::trusted_path`] (root-owned, written
//! by nobody else, no symlink, no ancestor another user could swap), and only uid 0 may name a
//! new file: any other control peer may only have the configured file read again. Otherwise a
//! control uid could hand root its own rules, and the kept path would make SIGHUP re-read them.

use super::daemon::{ActivePolicy, Daemon};
use crate::commands::{self, LoadError};
use std::path::{Path, PathBuf};
use wf_protocol::control::{ControlError, Problem, ReloadPolicyResult};

impl Daemon {
    /// `reload_policy` from a control peer with `peer_uid`.
    pub fn reload_policy_as(&self, peer_uid: u32, path: Option<&str>) -> Result<ReloadPolicyResult, ControlError> {
        if let Some(named) = path {
            let configured = self.policy().path.as_deref().is_some_and(|p| p == Path::new(named));
            if peer_uid != 0 && !configured {
                return Err(ControlError::not_authorised(
                    "only root may name a new policy file; other peers may only reload the configured one",
                ));
            }
        }
        self.reload_policy(path)
    }

    /// SIGHUP (and root): reload the configured file, or read `path` instead.
    pub fn reload_policy(&self, path: Option<&str>) -> Result<ReloadPolicyResult, ControlError> {
        let current = self.policy();
        let path = match (path, &current.path) {
            (Some(path), _) => PathBuf::from(path),
            (None, Some(path)) => path.clone(),
            (None, None) => {
                return Err(ControlError::bad_request("the daemon runs with the built-in policy; name a policy file"))
            }
        };
        if !path.is_absolute() {
            return Err(ControlError::bad_request("path must be absolute"));
        }
        let (json, policy) = commands::read_policy_file(&path).map_err(|e| policy_error(&path, &e))?;
        if policy.sandbox.cgroup_parent != current.policy.sandbox.cgroup_parent {
            let problem = Problem {
                pointer: "/sandbox/cgroup_parent".into(),
                reason: "cannot change while the daemon runs; restart the daemon to move its cgroups".into(),
            };
            return Err(ControlError::InvalidPolicy { message: "1 problem".into(), problems: vec![problem] });
        }
        if let Some(socket) = &self.socket_permissions {
            socket.apply(&policy.authentication).map_err(|e| ControlError::internal(e.to_string()))?;
        }
        let revoked = self.auth.reload_policy(&policy.authentication);
        for session in &revoked {
            let why = ControlError::not_authorised("the reloaded policy no longer allows this session");
            self.sessions.revoke(&session.id, why);
        }
        self.audit.record(
            "policy_load",
            serde_json::json!({ "path": path, "reload": true, "sessions_revoked": revoked.len() }),
        );
        tracing::info!(path = %path.display(), sessions_revoked = revoked.len(), "policy reloaded");
        self.set_policy(ActivePolicy { policy, json: Some(json), path: Some(path.clone()) });
        Ok(ReloadPolicyResult { path: path.display().to_string(), warnings: Vec::new() })
    }
}

fn policy_error(path: &Path, error: &LoadError) -> ControlError {
    match error {
        LoadError::Policy { problems, .. } => {
            let problems: Vec<Problem> =
                problems.iter().map(|p| Problem { pointer: p.pointer.clone(), reason: p.reason.clone() }).collect();
            ControlError::InvalidPolicy {
                message: format!("{}: {} problem(s)", path.display(), problems.len()),
                problems,
            }
        }
        other => ControlError::InvalidPolicy {
            message: other.to_string(),
            problems: vec![Problem { pointer: String::new(), reason: other.to_string() }],
        },
    }
}
