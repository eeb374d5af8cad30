//! The responses of the violation policy that act on a plugin (`kill`, `quarantine`) and the
//! admin's `release`.

use super::super::daemon::Daemon;
use super::lifecycle::kill;
use super::wire_view::registry_error;
use crate::daemon::PluginState;
use crate::launch_service::transport::InboundReply;
use crate::launch_service::wire::Reply;
use std::sync::Arc;
use std::time::Duration;
use wf_protocol::control::{ControlError, PluginSummary};

impl Daemon {
    /// `release`: a quarantined plugin becomes `stopped` (and may be started); `conflict` in
    /// any other state.
    pub async fn release(self: &Arc<Self>, name: &str) -> Result<PluginSummary, ControlError> {
        let lock = self.op_lock(name)?;
        let _op = lock.lock().await;
        let mut table = self.table();
        if self.violations.responder.is_quarantined(name) {
            let _ = table.registry.quarantine(name); // in case a manifest replaced the entry
        }
        table.registry.release(name).map_err(|e| registry_error(&e))?;
        self.violations.responder.clear_quarantine(name);
        self.audit.record("release", serde_json::json!({ "plugin": name }));
        table.summary(name)
    }

    /// A `kill` response: the instance that caused it is killed at once (its whole cgroup),
    /// without a stop request, so its end counts as a crash (`last_exit.cause = signaled`,
    /// signal 9) and its restart policy applies. A newer instance is left alone.
    pub(in crate::serve) async fn response_kill(&self, name: &str, instance: &str) -> Result<String, ControlError> {
        let live = self.table().record(name)?.live.as_ref().is_some_and(|l| l.instance == instance);
        if !live {
            return Ok("the instance had already ended".to_owned());
        }
        match self.launcher.call(|request_id| kill(request_id, instance)).await {
            Ok(InboundReply { reply: Reply::Done { .. }, .. }) => Ok("killed".to_owned()),
            Ok(other) => Err(ControlError::internal(format!("the launcher answered {:?}", other.reply))),
            Err(e) => Err(ControlError::internal(e.to_string())),
        }
    }

    /// A `quarantine` response: stopped as `stop` with grace 0 stops it (a pending restart is
    /// cancelled), then `quarantined` until `release`.
    pub(in crate::serve) async fn response_quarantine(
        self: &Arc<Self>,
        name: &str,
        instance: &str,
        rule: &str,
    ) -> Result<String, ControlError> {
        let lock = self.op_lock(name)?;
        let _op = lock.lock().await;
        let state = self.table().registry.get(name).map_err(|e| registry_error(&e))?.state();
        if state == PluginState::Quarantined {
            return Ok("already quarantined".to_owned());
        }
        let pending = self.table().record(name)?.next_restart_ms.is_some();
        if state.is_active() || pending || matches!(state, PluginState::Exited | PluginState::Crashed) {
            self.stop_locked(name, Some(Duration::ZERO)).await?;
        }
        let mut table = self.table();
        table.registry.quarantine(name).map_err(|e| registry_error(&e))?;
        table.record_mut(name)?.next_restart_ms = None;
        drop(table);
        self.violations.responder.mark_quarantined(name);
        self.audit.record("quarantine", serde_json::json!({ "plugin": name, "instance": instance, "rule": rule }));
        Ok("quarantined".to_owned())
    }
}
