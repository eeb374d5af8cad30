//! What every task of the daemon shares: the policy in force, the plugin table, the launcher,
//! the broker, the violation record, the audit trail and the shutdown signal.
//!
//! Locks are `std` mutexes held for short, non-`await`ing sections only. Lifecycle operations
//! on one plugin are serialised by that plugin's own async lock (see [`super::plugins`]).

use super::audit::AuditTrail;
use super::broker::Broker;
use super::control_socket::SocketPermissions;
use super::launcher_link::LauncherLink;
use super::plugins::PluginTable;
use super::session_links::SessionLinks;
use super::violations::ViolationLog;
use crate::auth::Authenticator;
use crate::clock::{Clock, SystemClock};
use crate::terminal_text::{escape, json_line};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use tokio::sync::watch;
use wf_policy::SecurityPolicy;
use wf_protocol::control::Violation;

/// The security policy in force, with the text the launcher is given and where it came from.
#[derive(Debug, Clone)]
pub struct ActivePolicy {
    pub policy: SecurityPolicy,
    /// `None` for the built-in default policy.
    pub json: Option<String>,
    pub path: Option<PathBuf>,
}

pub struct Daemon {
    pub clock: SystemClock,
    policy: RwLock<Arc<ActivePolicy>>,
    pub auth: Authenticator,
    pub launcher: LauncherLink,
    pub broker: Broker,
    pub violations: ViolationLog,
    pub audit: Arc<AuditTrail>,
    pub sessions: SessionLinks,
    pub socket_permissions: Option<SocketPermissions>,
    pub(super) table: Mutex<PluginTable>,
    shutdown: watch::Sender<bool>,
}

impl Daemon {
    pub fn new(
        policy: ActivePolicy,
        auth: Authenticator,
        launcher: LauncherLink,
        audit: Arc<AuditTrail>,
        socket_permissions: Option<SocketPermissions>,
        clock: SystemClock,
    ) -> Self {
        Self {
            clock,
            sessions: SessionLinks::default(),
            socket_permissions,
            table: Mutex::new(PluginTable::new(clock)),
            policy: RwLock::new(Arc::new(policy)),
            auth,
            launcher,
            broker: Broker::new(),
            violations: ViolationLog::new(super::violations::DEFAULT_CAPACITY),
            audit,
            shutdown: watch::channel(false).0,
        }
    }

    pub fn policy(&self) -> Arc<ActivePolicy> {
        Arc::clone(&self.policy.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    pub fn set_policy(&self, policy: ActivePolicy) {
        *self.policy.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(policy);
    }

    pub(super) fn table(&self) -> MutexGuard<'_, PluginTable> {
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.unix_ms()
    }

    /// Start shutting down: no new work is taken; every waiter on [`Self::shutdown_signal`] wakes.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Record a violation: kept for `list_violations`, written to the audit log and the log.
    /// Plugin-influenced text reaches the daemon's log escaped (no terminal or bidi controls).
    pub fn violation(&self, violation: Violation) {
        // Recorded first: the response policy sets the action that the log and the audit show.
        let violation = self.violations.record(violation);
        tracing::warn!(
            plugin = %escape(&violation.plugin),
            instance = %escape(&violation.instance),
            layer = %escape(&violation.layer),
            kind = %escape(&violation.kind),
            rule = %escape(&violation.rule),
            action = %escape(&violation.action),
            detail = %json_line(&violation.detail),
            "violation"
        );
        self.audit.record("violation", serde_json::to_value(&violation).unwrap_or_default());
    }
}

/// Resolves when the daemon starts shutting down.
pub async fn shutting_down(mut signal: watch::Receiver<bool>) {
    let _ = signal.wait_for(|down| *down).await;
}
