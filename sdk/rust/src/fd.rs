//! Adopting the inherited channel fd: the only unsafe code in the SDK.

use crate::error::SdkError;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Takes ownership of `fd` after checking that it is an open AF_UNIX stream socket, and
/// marks it close-on-exec so programs the plugin runs do not inherit the channel.
pub(crate) fn adopt_channel_fd(fd: RawFd) -> Result<OwnedFd, SdkError> {
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFD) }, fd, "fcntl(F_GETFD)")?;
    if socket_option(fd, libc::SO_DOMAIN)? != libc::AF_UNIX || socket_option(fd, libc::SO_TYPE)? != libc::SOCK_STREAM {
        return Err(SdkError::NotAStreamSocket { fd });
    }
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) }, fd, "fcntl(F_SETFD)")?;
    // SAFETY: the fd is open (F_GETFD succeeded) and, by the sandbox's contract, handed to
    // this process for the channel alone; nothing else in the process owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn socket_option(fd: RawFd, option: libc::c_int) -> Result<libc::c_int, SdkError> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value/len point to a c_int and its size, as getsockopt requires.
    let rc =
        unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, option, (&mut value as *mut libc::c_int).cast(), &mut len) };
    match rc {
        0 => Ok(value),
        _ => match io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::ENOTSOCK) => Err(SdkError::NotAStreamSocket { fd }),
            source => Err(SdkError::BadFd { fd, step: "getsockopt", source }),
        },
    }
}

fn check(rc: libc::c_int, fd: RawFd, step: &'static str) -> Result<libc::c_int, SdkError> {
    if rc < 0 {
        return Err(SdkError::BadFd { fd, step, source: io::Error::last_os_error() });
    }
    Ok(rc)
}
