//! Who is on the other end of a Unix socket, as the kernel recorded it.
//!
//! `SO_PEERCRED` returns the credentials the peer had when it called `connect()` (or
//! `socketpair()`); the peer cannot forge them and later `setuid()` calls do not change them.
//! The pid is informational only (it can be reused after the peer exits, and reads 0 when the
//! peer lives in a pid namespace we cannot see); decisions use uid and primary gid.

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use serde::{Deserialize, Serialize};
use std::io;
use std::os::fd::AsFd;

/// The kernel-reported identity of a socket peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerCred {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// Reads `SO_PEERCRED` of a connected Unix socket (std, tokio or raw fd alike).
pub fn peer_cred<F: AsFd>(socket: &F) -> io::Result<PeerCred> {
    let cred = getsockopt(socket, PeerCredentials).map_err(io::Error::from)?;
    Ok(PeerCred { pid: cred.pid(), uid: cred.uid(), gid: cred.gid() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::{UnixListener, UnixStream};

    #[test]
    fn socketpair_peer_is_this_process() {
        let (a, b) = UnixStream::pair().expect("socketpair");
        let expected = PeerCred {
            pid: i32::try_from(std::process::id()).expect("pid fits"),
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        };
        assert_eq!(peer_cred(&a).expect("peer of a"), expected);
        assert_eq!(peer_cred(&b).expect("peer of b"), expected);
    }

    #[test]
    fn accepted_connection_reports_the_connecting_process() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let _client = UnixStream::connect(&path).expect("connect");
        let (server_side, _) = listener.accept().expect("accept");
        let cred = peer_cred(&server_side).expect("peer");
        assert_eq!(cred.pid, i32::try_from(std::process::id()).expect("pid fits"));
        assert_eq!(cred.uid, nix::unistd::getuid().as_raw());
    }

    #[test]
    fn a_file_is_not_a_socket() {
        let file = tempfile::tempfile().expect("tempfile");
        let err = peer_cred(&file).expect_err("not a socket");
        assert_eq!(err.raw_os_error(), Some(libc::ENOTSOCK));
    }
}
