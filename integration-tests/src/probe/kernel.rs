//! Probes of kernel interfaces a plugin must not reach: x32 syscalls, terminal injection
//! ioctls, io_uring, bpf, perf events and keyrings.

use super::args::{Args, UsageError};
use super::fs::close_if_fd;
use super::outcome::{last_errno, Outcome};
use serde_json::json;

const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;
/// Terminal ioctl numbers (asm-generic, as on x86_64).
const TIOCSTI: u64 = 0x5412;
const TIOCLINUX: u64 = 0x541c;

/// getpid through its x32 number (39 | 0x40000000).
pub fn x32_getpid(_args: &mut Args) -> Result<Outcome, UsageError> {
    let number = libc::SYS_getpid | X32_SYSCALL_BIT;
    // SAFETY: getpid takes no arguments whatever its number.
    let rc = unsafe { libc::syscall(number) };
    let outcome = Outcome::from_rc(rc).with("number", number);
    Ok(if outcome.ok { outcome.with("pid", rc) } else { outcome })
}

/// TIOCSTI on fds 0, 1 and 2, with the plain command and with the high 32 bits set (the
/// kernel truncates the command to 32 bits, so a filter comparing 64 bits would miss it).
/// The character pointer is NULL: where the ioctl is allowed the kernel answers EFAULT
/// (a terminal) or ENOTTY (anything else), and nothing is ever injected.
pub fn ioctl_tiocsti(_args: &mut Args) -> Result<Outcome, UsageError> {
    Ok(ioctl_attempts(TIOCSTI))
}

/// TIOCLINUX on fds 0, 1 and 2 (same variants and NULL argument as TIOCSTI).
pub fn ioctl_tioclinux(_args: &mut Args) -> Result<Outcome, UsageError> {
    Ok(ioctl_attempts(TIOCLINUX))
}

fn ioctl_attempts(command: u64) -> Outcome {
    let mut attempts = Vec::new();
    let mut first_errno = None;
    let mut any_succeeded = false;
    for fd in 0..=2 {
        for cmd in [command, command | 0xffff_ffff_0000_0000] {
            // SAFETY: the argument is NULL; the kernel reads nothing through it and fails.
            let rc = unsafe { libc::syscall(libc::SYS_ioctl, fd, cmd, 0usize) };
            let errno = (rc < 0).then(last_errno);
            any_succeeded |= rc >= 0;
            first_errno = first_errno.or(errno);
            attempts.push(json!({"fd": fd, "cmd": format!("{cmd:#x}"), "rc": rc, "errno": errno}));
        }
    }
    Outcome::new(any_succeeded, first_errno).with("attempts", attempts)
}

/// `ioctl FD CMD` (CMD in hex): one ioctl with a zeroed 64-byte argument buffer.
pub fn ioctl(args: &mut Args) -> Result<Outcome, UsageError> {
    let fd: i32 = args.required_parsed("FD")?;
    let raw = args.required("CMD")?;
    let cmd = u64::from_str_radix(raw.trim_start_matches("0x"), 16)
        .map_err(|_| UsageError::Invalid { what: "CMD", value: raw.to_owned() })?;
    let mut buf = [0u8; 64];
    // SAFETY: the argument points at a zeroed buffer large enough for the queried commands.
    let rc = unsafe { libc::syscall(libc::SYS_ioctl, fd, cmd, buf.as_mut_ptr()) };
    Ok(Outcome::from_rc(rc).with("fd", fd).with("cmd", format!("{cmd:#x}")))
}

/// io_uring_setup with one entry.
pub fn io_uring_setup(_args: &mut Args) -> Result<Outcome, UsageError> {
    let mut params = [0u8; 120]; // struct io_uring_params
                                 // SAFETY: params is a zeroed io_uring_params of the right size.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    Ok(close_if_fd(fd))
}

/// bpf(BPF_MAP_CREATE) of a one-entry array map.
pub fn bpf(_args: &mut Args) -> Result<Outcome, UsageError> {
    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_MAP_TYPE_ARRAY: u32 = 2;
    // union bpf_attr, map-create member: map_type, key_size, value_size, max_entries, ...
    let mut attr = [0u32; 32];
    attr[..4].copy_from_slice(&[BPF_MAP_TYPE_ARRAY, 4, 4, 1]);
    // SAFETY: attr is a zero-padded bpf_attr of the size passed.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, BPF_MAP_CREATE, attr.as_ptr(), std::mem::size_of_val(&attr)) };
    Ok(close_if_fd(fd))
}

/// perf_event_open of a software CPU clock counter on this process.
pub fn perf_event_open(_args: &mut Args) -> Result<Outcome, UsageError> {
    const PERF_TYPE_SOFTWARE: u64 = 1;
    const ATTR_SIZE: u64 = 128;
    const DISABLED: u64 = 1;
    const EXCLUDE_KERNEL: u64 = 1 << 5;
    const EXCLUDE_HV: u64 = 1 << 6;
    // struct perf_event_attr: type (u32) + size (u32), config, sample_period, sample_type,
    // read_format, then the flag bits; config 0 = PERF_COUNT_SW_CPU_CLOCK.
    let mut attr = [0u64; (ATTR_SIZE / 8) as usize];
    attr[0] = PERF_TYPE_SOFTWARE | (ATTR_SIZE << 32);
    attr[5] = DISABLED | EXCLUDE_KERNEL | EXCLUDE_HV;
    // SAFETY: attr is a zero-padded perf_event_attr of the size it declares.
    let fd = unsafe { libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), 0, -1, -1, 0) };
    Ok(close_if_fd(fd))
}

/// keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, create=0).
pub fn keyctl(_args: &mut Args) -> Result<Outcome, UsageError> {
    const KEYCTL_GET_KEYRING_ID: libc::c_long = 0;
    const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;
    // SAFETY: raw syscall without pointers.
    let rc = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0) };
    let outcome = Outcome::from_rc(rc);
    Ok(if outcome.ok { outcome.with("keyring", rc) } else { outcome })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_libc() {
        assert_eq!(TIOCSTI, libc::TIOCSTI);
        assert_eq!(TIOCLINUX, libc::TIOCLINUX);
    }

    #[test]
    fn x32_is_disabled_in_this_kernel() {
        // The machine's kernel has x32 off: even unsandboxed the call must fail.
        let outcome = x32_getpid(&mut Args::new(&[])).expect("args");
        assert!(!outcome.ok);
        assert_eq!(outcome.errno, Some(libc::ENOSYS));
    }

    #[test]
    fn tiocsti_tries_six_variants_without_injecting() {
        let outcome = ioctl_tiocsti(&mut Args::new(&[])).expect("args");
        let attempts = outcome.extra["attempts"].as_array().expect("attempts");
        assert_eq!(attempts.len(), 6);
        assert_eq!(attempts[1]["cmd"], "0xffffffff00005412");
        // With a NULL argument no attempt can succeed, sandbox or not.
        assert!(!outcome.ok);
    }
}
