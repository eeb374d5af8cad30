//! The daemon's end of the launcher socket, driven by the async runtime.
//!
//! Requests are sent from any task and matched to their reply by `request_id`. One task runs
//! [`LauncherLink::read_loop`] and hands every reply, in the order the launcher sent them, to
//! one callback before waking the requester: so a plugin's `Launched` is always processed
//! before its `Exited`, whichever task asked for the launch.
//!
//! The reader never waits for a send. The launcher stops reading requests while its reply
//! queue is long; a reader blocked on sending would never drain that queue.

use crate::launch_service::transport::{self, InboundReply, WireError};
use crate::launch_service::{instance_name, Request};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::oneshot;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the launcher is gone")]
    Gone,
    #[error("launcher socket: {0}")]
    Wire(#[from] WireError),
    #[error("launcher socket: {step}: {source}")]
    Io { step: &'static str, source: io::Error },
}

pub struct LauncherLink {
    sock: AsyncFd<OwnedFd>,
    pid: Pid,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<InboundReply>>>,
}

impl LauncherLink {
    /// Adopt the daemon's end of the launcher socket. Must run inside the runtime.
    pub fn new(sock: OwnedFd, pid: Pid) -> Result<Self, LinkError> {
        set_nonblocking(&sock).map_err(|source| LinkError::Io { step: "set non-blocking", source })?;
        // SAFETY: an OwnedFd stays open and names the same file description until it is
        // dropped, which happens only with the AsyncFd.
        let sock =
            unsafe { AsyncFd::register_with_interest(sock, Interest::READABLE | Interest::WRITABLE) }.map_err(|e| {
                LinkError::Io { step: "register with the runtime", source: io::Error::other(e.to_string()) }
            })?;
        Ok(Self { sock, pid, next_id: AtomicU64::new(1), pending: Mutex::new(HashMap::new()) })
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// A fresh instance name the launcher accepts for `plugin`.
    pub fn instance_name(&self, plugin: &str) -> String {
        let nonce = self.next_id.fetch_add(1, Ordering::Relaxed);
        instance_name(plugin, self.pid, nonce as u32)
    }

    /// Send the request `build` makes with a fresh id, and wait for its reply.
    pub async fn call(&self, build: impl FnOnce(u64) -> Request) -> Result<InboundReply, LinkError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.lock_pending().insert(id, tx);
        if let Err(e) = self.send(&build(id)).await {
            self.lock_pending().remove(&id);
            return Err(e);
        }
        rx.await.map_err(|_| LinkError::Gone)
    }

    async fn send(&self, request: &Request) -> Result<(), LinkError> {
        let bytes = transport::encode(request)?;
        loop {
            let mut ready =
                self.sock.writable().await.map_err(|source| LinkError::Io { step: "wait writable", source })?;
            match ready.try_io(|fd| transport::send_datagram(fd.get_ref().as_fd(), &bytes, &[]).map_err(into_io)) {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(source)) => return Err(from_io("sendmsg", source)),
                Err(_would_block) => continue,
            }
        }
    }

    /// Receive replies until the launcher goes. Replies to a pending request go to
    /// `on_reply` first, then to their requester; unsolicited ones (`Exited`, and errors
    /// without an id) only to `on_reply`.
    pub async fn read_loop(&self, mut on_reply: impl FnMut(&mut InboundReply)) -> LinkError {
        loop {
            let mut inbound = match self.recv().await {
                Ok(Some(inbound)) => inbound,
                Ok(None) => break,
                Err(e) => {
                    self.fail_pending();
                    return e;
                }
            };
            on_reply(&mut inbound);
            let waiter = reply_id(&inbound).and_then(|id| self.lock_pending().remove(&id));
            if let Some(waiter) = waiter {
                let _ = waiter.send(inbound);
            }
        }
        self.fail_pending();
        LinkError::Gone
    }

    async fn recv(&self) -> Result<Option<InboundReply>, LinkError> {
        loop {
            let mut ready =
                self.sock.readable().await.map_err(|source| LinkError::Io { step: "wait readable", source })?;
            match ready.try_io(|fd| transport::recv_reply(fd.get_ref().as_fd()).map_err(into_io)) {
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(source)) => return Err(from_io("recvmsg", source)),
                Err(_would_block) => continue,
            }
        }
    }

    /// Requesters whose reply can no longer come see [`LinkError::Gone`].
    fn fail_pending(&self) {
        self.lock_pending().clear();
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<InboundReply>>> {
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn reply_id(inbound: &InboundReply) -> Option<u64> {
    use crate::launch_service::Reply;
    match &inbound.reply {
        Reply::Launched { request_id, .. }
        | Reply::Refused { request_id, .. }
        | Reply::Done { request_id, .. }
        | Reply::StatsReply { request_id, .. } => Some(*request_id),
        Reply::Error { request_id, .. } => *request_id,
        Reply::Exited { .. } => None,
    }
}

/// `WouldBlock` must reach `try_io` as an `io::Error` to clear the readiness.
fn into_io(e: WireError) -> io::Error {
    match e {
        WireError::Io { source, .. } => source,
        other => io::Error::other(other),
    }
}

fn from_io(step: &'static str, source: io::Error) -> LinkError {
    if !source.get_ref().is_some_and(|inner| inner.is::<WireError>()) {
        return LinkError::Io { step, source };
    }
    match source.into_inner().map(|inner| inner.downcast::<WireError>()) {
        Some(Ok(wire)) => LinkError::Wire(*wire),
        _ => LinkError::Io { step, source: io::Error::other("unreadable error") },
    }
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
    Ok(())
}
