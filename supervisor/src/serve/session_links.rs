//! Which connection holds which session, so that the daemon can close a connection whose
//! session a policy reload revoked (or the idle sweep removed): the next request would be
//! refused anyway, but an open event stream would otherwise keep flowing.

use crate::auth::SessionId;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::oneshot;
use wf_protocol::control::ControlError;

type Link = oneshot::Sender<ControlError>;

#[derive(Default)]
pub struct SessionLinks {
    links: Mutex<HashMap<SessionId, Link>>,
}

impl SessionLinks {
    /// The connection's end: resolves, with what to tell the client, when its session ends.
    pub fn register(&self, id: &SessionId) -> oneshot::Receiver<ControlError> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id.clone(), tx);
        rx
    }

    pub fn remove(&self, id: &SessionId) {
        self.lock().remove(id);
    }

    pub fn revoke(&self, id: &SessionId, why: ControlError) {
        if let Some(tx) = self.lock().remove(id) {
            let _ = tx.send(why);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Link>> {
        self.links.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
