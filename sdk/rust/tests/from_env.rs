//! `Channel::from_env` adopts only an AF_UNIX stream socket. The only test in this binary,
//! because it changes the process environment.

use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use wf_protocol::{write_message, SupervisorMessage, CHANNEL_FD_ENV, MAX_FRAME_BYTES_ENV};
use wf_sdk::{Channel, SdkError};

fn set_channel_fd(fd: i32) {
    std::env::set_var(CHANNEL_FD_ENV, fd.to_string());
}

fn clear_cloexec(fd: i32) {
    // SAFETY: plain fcntl on an fd this test owns.
    let rc = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    assert_eq!(rc, 0);
}

fn has_cloexec(fd: i32) -> bool {
    // SAFETY: plain fcntl on an fd the channel owns.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    flags >= 0 && flags & libc::FD_CLOEXEC != 0
}

#[test]
fn from_env_checks_the_fd_and_the_environment() {
    std::env::remove_var(CHANNEL_FD_ENV);
    std::env::remove_var(MAX_FRAME_BYTES_ENV);
    assert!(matches!(Channel::from_env(), Err(SdkError::NoChannel { .. })));

    let not_a_socket = std::fs::File::open("/dev/null").expect("open /dev/null");
    set_channel_fd(not_a_socket.as_raw_fd());
    assert!(matches!(Channel::from_env(), Err(SdkError::NotAStreamSocket { .. })));

    let (datagram, _peer) = UnixDatagram::pair().expect("dgram pair");
    set_channel_fd(datagram.as_raw_fd());
    assert!(matches!(Channel::from_env(), Err(SdkError::NotAStreamSocket { .. })));

    set_channel_fd(1_000_000);
    assert!(matches!(Channel::from_env(), Err(SdkError::BadFd { fd: 1_000_000, .. })));

    let (mut supervisor, plugin) = UnixStream::pair().expect("socketpair");
    let hello = SupervisorMessage::Hello { protocol: 1, plugin: "p".into(), instance: "i".into() };
    write_message(&mut supervisor, &hello).expect("hello");
    let fd = plugin.into_raw_fd();
    clear_cloexec(fd);
    set_channel_fd(fd);
    std::env::set_var(MAX_FRAME_BYTES_ENV, "1000");
    let channel = Channel::from_env().expect("adopt");
    assert_eq!(channel.hello().plugin, "p");
    assert_eq!(channel.max_frame_bytes(), 1000);
    assert!(has_cloexec(fd), "the channel must not leak into programs the plugin runs");

    std::env::set_var(MAX_FRAME_BYTES_ENV, "0");
    assert!(matches!(Channel::from_env(), Err(SdkError::BadEnv { .. })));
}
