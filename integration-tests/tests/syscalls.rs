//! The seccomp allowlist: each forbidden call fails with the filter's errno (EPERM), and
//! the process is visibly under a filter. Each attempt's target exists on the host
//! (these calls work outside the sandbox as root), so "blocked" means blocked here.

use wf_integration_tests::{assert_denied, probe};

#[test]
fn the_plugin_runs_under_a_seccomp_filter() {
    let line = probe(&["status"]).probe();
    assert_eq!(line["status"]["Seccomp"], "2", "{line}");
    assert_eq!(line["status"]["Seccomp_filters"], "1", "{line}");
}

#[test]
fn mount_is_refused() {
    assert_denied(&probe(&["mount-tmpfs"]), libc::EPERM);
    assert_denied(&probe(&["mount-proc"]), libc::EPERM);
}

#[test]
fn new_mount_api_is_refused() {
    assert_denied(&probe(&["open-tree"]), libc::EPERM);
    assert_denied(&probe(&["fsopen"]), libc::EPERM);
}

#[test]
fn ptrace_is_refused() {
    assert_denied(&probe(&["ptrace-traceme"]), libc::EPERM);
}

#[test]
fn new_user_namespaces_are_refused() {
    assert_denied(&probe(&["unshare-user"]), libc::EPERM);
    assert_denied(&probe(&["clone-newuser"]), libc::EPERM);
}

#[test]
fn clone3_says_enosys_so_libc_falls_back_to_filtered_clone() {
    assert_denied(&probe(&["clone3"]), libc::ENOSYS);
}

#[test]
fn x32_syscall_numbers_are_refused() {
    assert_denied(&probe(&["x32-getpid"]), libc::EPERM);
}

#[test]
fn no_socket_can_be_created_not_even_unix() {
    // A read-only grant may hold a host Unix socket file; with socket() refused there is
    // nothing to connect() it with.
    for family in ["unix", "inet", "inet6", "packet", "netlink", "vsock", "alg"] {
        assert_denied(&probe(&["socket", family]), libc::EPERM);
    }
}

#[test]
fn only_stream_and_seqpacket_socketpairs_can_be_created() {
    for kind in ["stream", "seqpacket"] {
        let pair = probe(&["socketpair", kind]);
        assert_eq!(pair.probe()["ok"], true, "socketpair {kind} must stay available: {}", pair.stderr);
    }
    // A datagram socket could sendto() a socket path.
    assert_denied(&probe(&["socketpair", "dgram"]), libc::EPERM);
}

#[test]
fn the_parent_death_signal_cannot_be_changed_or_disarmed() {
    assert_denied(&probe(&["set-pdeathsig", "0"]), libc::EPERM);
    assert_denied(&probe(&["set-pdeathsig", "15"]), libc::EPERM);
    // Reading it is harmless and still works (see privileges.rs for its value).
    assert_eq!(probe(&["pdeathsig"]).probe()["ok"], true);
}

#[test]
fn tiocsti_is_refused_even_with_high_bits_set_in_the_command() {
    let line = probe(&["ioctl-tiocsti"]).probe();
    let attempts = line["attempts"].as_array().cloned().unwrap_or_default();
    assert!(!attempts.is_empty(), "{line}");
    for attempt in attempts {
        assert_eq!(attempt["errno"], libc::EPERM, "{attempt}");
    }
}

#[test]
fn io_uring_bpf_perf_and_keyctl_are_refused() {
    for call in ["io-uring-setup", "bpf", "perf-event-open", "keyctl"] {
        assert_denied(&probe(&[call]), libc::EPERM);
    }
}

#[test]
fn socket_ioctls_on_the_channel_cannot_reach_the_hosts_network_stack() {
    // Positive control: on the host, SIOCGIFCONF on a socket answers.
    let host_sock = std::os::unix::net::UnixDatagram::unbound().unwrap();
    let mut conf = [0u8; 16];
    // SAFETY: struct ifconf with a zero-length buffer only asks for the needed size.
    let rc = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&host_sock), 0x8912, conf.as_mut_ptr()) };
    assert_eq!(rc, 0, "SIOCGIFCONF should work on the host");
    // Inside, fd 3 is the channel: its socket ioctls are refused by the filter.
    assert_denied(&probe(&["ioctl", "3", "8912"]), libc::EPERM); // SIOCGIFCONF
    assert_denied(&probe(&["ioctl", "3", "8946"]), libc::EPERM); // SIOCETHTOOL
                                                                 // The terminal queries runtimes make still get the kernel's own answer.
    assert_denied(&probe(&["ioctl", "0", "5401"]), libc::ENOTTY); // TCGETS on /dev/null
}

#[test]
fn set_id_files_cannot_be_created_or_made() {
    let line = probe(&["set-id-file", "/tmp/tool"]).probe();
    assert_eq!(line["create_setuid_errno"], libc::EPERM, "{line}");
    assert_eq!(line["fchmod_setgid_errno"], libc::EPERM, "{line}");
    let plain = probe(&["write-file", "/tmp/plain"]);
    assert_eq!(plain.probe()["ok"], true, "plain files still work: {}", plain.stderr);
}
