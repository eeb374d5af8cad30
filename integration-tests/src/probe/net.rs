//! Network probes: socket families and visible interfaces.

use super::args::{Args, UsageError};
use super::fs::close_if_fd;
use super::outcome::Outcome;

/// (family, type, protocol) for each family name the `socket` probe accepts.
fn socket_params(name: &str) -> Option<(libc::c_int, libc::c_int, libc::c_int)> {
    Some(match name {
        "unix" => (libc::AF_UNIX, libc::SOCK_STREAM, 0),
        "inet" => (libc::AF_INET, libc::SOCK_STREAM, 0),
        "inet6" => (libc::AF_INET6, libc::SOCK_STREAM, 0),
        "packet" => (libc::AF_PACKET, libc::SOCK_RAW, i32::from((libc::ETH_P_ALL as u16).to_be())),
        "netlink" => (libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE),
        "vsock" => (libc::AF_VSOCK, libc::SOCK_STREAM, 0),
        "alg" => (libc::AF_ALG, libc::SOCK_SEQPACKET, 0),
        _ => return None,
    })
}

pub fn socket(args: &mut Args) -> Result<Outcome, UsageError> {
    let family = args.required("FAMILY")?;
    let (domain, kind, protocol) =
        socket_params(family).ok_or_else(|| UsageError::Invalid { what: "FAMILY", value: family.to_owned() })?;
    // SAFETY: socket takes no pointers; the fd is closed by close_if_fd.
    let fd = unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, protocol) };
    Ok(close_if_fd(libc::c_long::from(fd)).with("family", family))
}

/// The `socketpair` types the `socketpair` probe accepts (always `AF_UNIX`).
fn socketpair_type(name: &str) -> Option<libc::c_int> {
    Some(match name {
        "stream" => libc::SOCK_STREAM,
        "seqpacket" => libc::SOCK_SEQPACKET,
        "dgram" => libc::SOCK_DGRAM,
        _ => return None,
    })
}

/// `socketpair(AF_UNIX, TYPE | SOCK_CLOEXEC)`; both ends are closed again.
pub fn socketpair(args: &mut Args) -> Result<Outcome, UsageError> {
    let name = args.required("TYPE")?;
    let kind = socketpair_type(name).ok_or_else(|| UsageError::Invalid { what: "TYPE", value: name.to_owned() })?;
    let mut fds = [-1; 2];
    // SAFETY: `fds` has room for the two fds socketpair writes.
    let rc = unsafe { libc::socketpair(libc::AF_UNIX, kind | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) };
    let outcome = Outcome::from_rc(i64::from(rc)).with("type", name);
    if rc == 0 {
        for fd in fds {
            // SAFETY: closing the fds created above.
            unsafe { libc::close(fd) };
        }
    }
    Ok(outcome)
}

/// Interface names from /proc/self/net/dev.
pub fn net_devs(_args: &mut Args) -> Result<Outcome, UsageError> {
    let table = std::fs::read_to_string("/proc/self/net/dev");
    let outcome = Outcome::from_io(&table);
    Ok(match table {
        Ok(text) => outcome.with("devs", parse_net_dev(&text)),
        Err(_) => outcome,
    })
}

fn parse_net_dev(text: &str) -> Vec<String> {
    text.lines().skip(2).filter_map(|line| line.split_once(':')).map(|(name, _)| name.trim().to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_dev() {
        let text = "Inter-|   Receive\n face |bytes\n    lo: 1 2 3\n  eth0: 4 5 6\n";
        assert_eq!(parse_net_dev(text), vec!["lo", "eth0"]);
    }

    #[test]
    fn unix_sockets_work_and_unknown_families_are_usage_errors() {
        let argv = vec!["unix".to_owned()];
        assert!(socket(&mut Args::new(&argv)).expect("args").ok);
        let argv = vec!["carrier-pigeon".to_owned()];
        assert!(socket(&mut Args::new(&argv)).is_err());
        for name in ["unix", "inet", "inet6", "packet", "netlink", "vsock", "alg"] {
            assert!(socket_params(name).is_some(), "{name}");
        }
    }

    #[test]
    fn socketpairs_of_every_type_work_outside_and_unknown_types_are_usage_errors() {
        for name in ["stream", "seqpacket", "dgram"] {
            let argv = vec![name.to_owned()];
            assert!(socketpair(&mut Args::new(&argv)).expect("args").ok, "{name}");
        }
        let argv = vec!["raw".to_owned()];
        assert!(socketpair(&mut Args::new(&argv)).is_err());
    }
}
