//! One message per SOCK_SEQPACKET datagram, fds attached with SCM_RIGHTS.
//!
//! Works on blocking and non-blocking sockets alike: on a non-blocking one `send` and
//! `recv` return `WouldBlock`, so the daemon's async side can drive them from its
//! reactor. Received fds are close-on-exec and owned at once, so none can leak, even
//! from a datagram that is then refused.

use super::wire::{Reply, MAX_MESSAGE_BYTES};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// The kernel passes at most this many fds in one message (`SCM_MAX_FD`); a control
/// buffer this large can never be truncated, so every fd sent is received and owned.
const SCM_MAX_FD: usize = 253;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{step}: {source}")]
    Io { step: &'static str, source: io::Error },
    #[error("message of {bytes} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge { bytes: usize },
    #[error("malformed message: {0}")]
    Malformed(serde_json::Error),
    #[error("empty datagram")]
    Empty,
    #[error("{got} fds attached where {expected} were expected")]
    FdCount { expected: usize, got: usize },
}

impl WireError {
    /// The socket has nothing to read, or no room to write, right now.
    pub fn is_would_block(&self) -> bool {
        matches!(self, WireError::Io { source, .. } if source.kind() == io::ErrorKind::WouldBlock)
    }
}

/// One received datagram.
#[derive(Debug)]
pub enum Received {
    Datagram {
        bytes: Vec<u8>,
        fds: Vec<OwnedFd>,
    },
    /// The peer closed its end (zero bytes read after it hung up).
    Closed,
}

/// Serialize `msg` within the size cap.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, WireError> {
    let bytes = serde_json::to_vec(msg).map_err(WireError::Malformed)?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge { bytes: bytes.len() });
    }
    Ok(bytes)
}

/// Parse one datagram's bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    if bytes.is_empty() {
        return Err(WireError::Empty);
    }
    serde_json::from_slice(bytes).map_err(WireError::Malformed)
}

/// Send one datagram with `fds` attached (the kernel duplicates them; the caller keeps its own).
pub fn send_datagram(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[RawFd]) -> Result<(), WireError> {
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
    let iov = [IoSlice::new(bytes)];
    let sent = sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)
        .map_err(|e| WireError::Io { step: "sendmsg", source: io::Error::from(e) })?;
    if sent != bytes.len() {
        return Err(WireError::Io { step: "sendmsg", source: io::Error::other("datagram sent only in part") });
    }
    Ok(())
}

/// Encode and send one message.
pub fn send<T: Serialize>(sock: BorrowedFd<'_>, msg: &T, fds: &[RawFd]) -> Result<(), WireError> {
    send_datagram(sock, &encode(msg)?, fds)
}

/// Receive one datagram. A datagram over the cap is consumed and reported as
/// [`WireError::TooLarge`] (its fds, if any, closed).
pub fn recv_datagram(sock: BorrowedFd<'_>) -> Result<Received, WireError> {
    let mut buf = vec![0u8; MAX_MESSAGE_BYTES + 1];
    let mut cmsg = nix::cmsg_space!([RawFd; SCM_MAX_FD]);
    let (bytes, flags, fds) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let flags_in = MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_TRUNC;
        let msg = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg), flags_in)
            .map_err(|e| WireError::Io { step: "recvmsg", source: io::Error::from(e) })?;
        let fds = owned_fds(&msg)?;
        (msg.bytes, msg.flags, fds)
    };
    if bytes > MAX_MESSAGE_BYTES || flags.contains(MsgFlags::MSG_TRUNC) {
        return Err(WireError::TooLarge { bytes });
    }
    if bytes == 0 && fds.is_empty() && peer_hung_up(sock) {
        return Ok(Received::Closed);
    }
    buf.truncate(bytes);
    Ok(Received::Datagram { bytes: buf, fds })
}

fn owned_fds(msg: &nix::sys::socket::RecvMsg<'_, '_, ()>) -> Result<Vec<OwnedFd>, WireError> {
    let cmsgs = msg.cmsgs().map_err(|e| WireError::Io { step: "recvmsg control data", source: io::Error::from(e) })?;
    let mut fds = Vec::new();
    for cmsg in cmsgs {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            // SAFETY: the kernel just installed these fds in our table; nothing else owns them.
            fds.extend(raw.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    Ok(fds)
}

/// A zero-byte read is EOF only once the peer has gone; otherwise it was an empty datagram.
fn peer_hung_up(sock: BorrowedFd<'_>) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(sock, PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(_) => fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLHUP)),
        Err(_) => false,
    }
}

/// A reply as the daemon receives it, with its fds checked against its type.
#[derive(Debug)]
pub struct InboundReply {
    pub reply: Reply,
    /// For `Launched`: exactly [`super::wire::LAUNCHED_FD_COUNT`] fds in `FD_*` order;
    /// empty for every other reply.
    pub fds: Vec<OwnedFd>,
}

/// Receive and decode one reply from the launcher; `None` when the launcher is gone.
pub fn recv_reply(sock: BorrowedFd<'_>) -> Result<Option<InboundReply>, WireError> {
    let (bytes, fds) = match recv_datagram(sock)? {
        Received::Closed => return Ok(None),
        Received::Datagram { bytes, fds } => (bytes, fds),
    };
    let reply: Reply = decode(&bytes)?;
    let expected = if matches!(reply, Reply::Launched { .. }) { super::wire::LAUNCHED_FD_COUNT } else { 0 };
    if fds.len() != expected {
        return Err(WireError::FdCount { expected, got: fds.len() });
    }
    Ok(Some(InboundReply { reply, fds }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch_service::wire::Request;
    use std::os::fd::AsFd;

    fn pair() -> (OwnedFd, OwnedFd) {
        super::super::seqpacket_pair().unwrap()
    }

    #[test]
    fn a_message_and_its_fds_arrive_together() {
        let (a, b) = pair();
        let (pipe_r, _pipe_w) = nix::unistd::pipe().unwrap();
        let req = Request::Kill { request_id: 3, instance: "x".into() };
        send(a.as_fd(), &req, &[pipe_r.as_raw_fd()]).unwrap();
        let Received::Datagram { bytes, fds } = recv_datagram(b.as_fd()).unwrap() else { panic!("closed") };
        assert_eq!(decode::<Request>(&bytes).unwrap(), req);
        assert_eq!(fds.len(), 1);
        assert_ne!(fds[0].as_raw_fd(), pipe_r.as_raw_fd(), "a new fd in our table");
    }

    #[test]
    fn oversized_datagrams_are_consumed_and_refused() {
        let (a, b) = pair();
        let big = vec![b'x'; MAX_MESSAGE_BYTES + 10];
        send_datagram(a.as_fd(), &big, &[]).unwrap();
        send_datagram(a.as_fd(), b"{}", &[]).unwrap();
        assert!(matches!(recv_datagram(b.as_fd()), Err(WireError::TooLarge { bytes }) if bytes > MAX_MESSAGE_BYTES));
        let Received::Datagram { bytes, .. } = recv_datagram(b.as_fd()).unwrap() else { panic!("closed") };
        assert_eq!(bytes, b"{}");
    }

    #[test]
    fn an_empty_datagram_is_not_eof_but_a_closed_peer_is() {
        let (a, b) = pair();
        send_datagram(a.as_fd(), b"", &[]).unwrap();
        let Received::Datagram { bytes, .. } = recv_datagram(b.as_fd()).unwrap() else { panic!("closed") };
        assert!(bytes.is_empty());
        drop(a);
        assert!(matches!(recv_datagram(b.as_fd()).unwrap(), Received::Closed));
    }

    #[test]
    fn encode_refuses_what_the_peer_would_refuse() {
        let req = Request::Launch {
            request_id: 1,
            instance: "x".into(),
            manifest_json: "{}".into(),
            plugin_dir: "/p".into(),
            policy_json: Some("x".repeat(MAX_MESSAGE_BYTES)),
            args: Vec::new(),
        };
        assert!(matches!(encode(&req), Err(WireError::TooLarge { .. })));
    }

    #[test]
    fn a_reply_with_the_wrong_number_of_fds_is_refused() {
        let (a, b) = pair();
        let (pipe_r, _pipe_w) = nix::unistd::pipe().unwrap();
        let done = Reply::Done { request_id: 1, instance: "x".into() };
        send(a.as_fd(), &done, &[pipe_r.as_raw_fd()]).unwrap();
        assert!(matches!(recv_reply(b.as_fd()), Err(WireError::FdCount { expected: 0, got: 1 })));
        send(a.as_fd(), &done, &[]).unwrap();
        assert_eq!(recv_reply(b.as_fd()).unwrap().map(|r| r.reply), Some(done));
        drop(a);
        assert!(recv_reply(b.as_fd()).unwrap().is_none());
    }
}
