//! The child's setup-failure report and its wire encoding.
//!
//! The child writes at most one report to the error pipe and exits; a successful
//! `execve` closes the pipe (`O_CLOEXEC`) so the parent reads EOF. One report is a
//! single `write` of at most [`MAX_ENCODED_LEN`] bytes (< `PIPE_BUF`, so atomic):
//!
//! | offset | size | field                                   |
//! |--------|------|-----------------------------------------|
//! | 0      | 1    | format version, [`FORMAT_VERSION`]      |
//! | 1      | 1    | [`SetupStep`] code                      |
//! | 2      | 4    | errno, little-endian `i32`              |
//! | 6      | 2    | detail length `n`, little-endian `u16`  |
//! | 8      | n    | detail, UTF-8, `n <= MAX_DETAIL_BYTES`  |

use std::fmt;
use thiserror::Error;

/// Version byte that starts every report.
pub const FORMAT_VERSION: u8 = 1;
/// Longest detail carried (a path, a rule); longer ones are cut at a char boundary.
pub const MAX_DETAIL_BYTES: usize = 200;
const HEADER_LEN: usize = 8;
/// Largest encoded report.
pub const MAX_ENCODED_LEN: usize = HEADER_LEN + MAX_DETAIL_BYTES;

/// The step of the child's setup sequence that failed (DESIGN.md §3 order).
/// The numeric codes are part of the wire format: never renumber (new steps get new
/// codes, whatever their place in the sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SetupStep {
    ParentDeathSignal = 1,
    Dumpable = 2,
    SyncWait = 3,
    JoinCgroups = 4,
    Credentials = 5,
    CgroupNamespace = 6,
    MountPropagation = 7,
    RootTmpfs = 8,
    RootOp = 9,
    PivotRoot = 10,
    RootReadonly = 11,
    Hostname = 12,
    Loopback = 13,
    Rlimits = 14,
    Session = 15,
    Fds = 16,
    Capabilities = 17,
    NoNewPrivs = 18,
    Landlock = 19,
    Cwd = 20,
    Seccomp = 21,
    Exec = 22,
    /// Unblocking every signal and restoring default dispositions (the very first step).
    Signals = 23,
}

impl SetupStep {
    /// Every step, in execution order.
    pub const ALL: [SetupStep; 23] = [
        SetupStep::Signals,
        SetupStep::ParentDeathSignal,
        SetupStep::Dumpable,
        SetupStep::SyncWait,
        SetupStep::JoinCgroups,
        SetupStep::Credentials,
        SetupStep::CgroupNamespace,
        SetupStep::MountPropagation,
        SetupStep::RootTmpfs,
        SetupStep::RootOp,
        SetupStep::PivotRoot,
        SetupStep::RootReadonly,
        SetupStep::Hostname,
        SetupStep::Loopback,
        SetupStep::Rlimits,
        SetupStep::Session,
        SetupStep::Fds,
        SetupStep::Capabilities,
        SetupStep::NoNewPrivs,
        SetupStep::Landlock,
        SetupStep::Cwd,
        SetupStep::Seccomp,
        SetupStep::Exec,
    ];

    /// Stable snake_case name, for reports and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SetupStep::ParentDeathSignal => "parent_death_signal",
            SetupStep::Dumpable => "dumpable",
            SetupStep::SyncWait => "sync_wait",
            SetupStep::JoinCgroups => "join_cgroups",
            SetupStep::Credentials => "credentials",
            SetupStep::CgroupNamespace => "cgroup_namespace",
            SetupStep::MountPropagation => "mount_propagation",
            SetupStep::RootTmpfs => "root_tmpfs",
            SetupStep::RootOp => "root_op",
            SetupStep::PivotRoot => "pivot_root",
            SetupStep::RootReadonly => "root_readonly",
            SetupStep::Hostname => "hostname",
            SetupStep::Loopback => "loopback",
            SetupStep::Rlimits => "rlimits",
            SetupStep::Session => "session",
            SetupStep::Fds => "fds",
            SetupStep::Capabilities => "capabilities",
            SetupStep::NoNewPrivs => "no_new_privs",
            SetupStep::Landlock => "landlock",
            SetupStep::Cwd => "cwd",
            SetupStep::Seccomp => "seccomp",
            SetupStep::Exec => "exec",
            SetupStep::Signals => "signals",
        }
    }

    fn from_code(code: u8) -> Option<SetupStep> {
        SetupStep::ALL.into_iter().find(|s| *s as u8 == code)
    }
}

impl fmt::Display for SetupStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which step failed, with which errno, on what (a path, a resource, a rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupFailure {
    pub step: SetupStep,
    pub errno: i32,
    pub detail: String,
}

impl SetupFailure {
    /// A failure whose detail is cut to [`MAX_DETAIL_BYTES`].
    pub fn new(step: SetupStep, errno: i32, detail: &str) -> Self {
        SetupFailure { step, errno, detail: truncate_detail(detail).to_owned() }
    }
}

impl fmt::Display for SetupFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, std::io::Error::from_raw_os_error(self.errno))?;
        if !self.detail.is_empty() {
            write!(f, " [{}]", self.detail)?;
        }
        Ok(())
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ReportError {
    #[error("setup report truncated: {len} bytes, need {need}")]
    Truncated { len: usize, need: usize },
    #[error("setup report has format version {0}, expected {FORMAT_VERSION}")]
    Version(u8),
    #[error("setup report names unknown step code {0}")]
    UnknownStep(u8),
    #[error("setup report detail is {0} bytes, more than {MAX_DETAIL_BYTES}")]
    DetailTooLong(usize),
    #[error("setup report detail is not UTF-8")]
    DetailNotUtf8,
    #[error("setup report has {0} trailing bytes")]
    Trailing(usize),
}

fn truncate_detail(detail: &str) -> &str {
    if detail.len() <= MAX_DETAIL_BYTES {
        return detail;
    }
    let mut end = MAX_DETAIL_BYTES;
    while !detail.is_char_boundary(end) {
        end -= 1;
    }
    &detail[..end]
}

/// Encode `failure` (its detail cut to [`MAX_DETAIL_BYTES`]).
pub fn encode(failure: &SetupFailure) -> Vec<u8> {
    let detail = truncate_detail(&failure.detail).as_bytes();
    let mut out = Vec::with_capacity(HEADER_LEN + detail.len());
    out.push(FORMAT_VERSION);
    out.push(failure.step as u8);
    out.extend_from_slice(&failure.errno.to_le_bytes());
    // Cannot truncate: detail.len() <= MAX_DETAIL_BYTES < u16::MAX.
    out.extend_from_slice(&(detail.len() as u16).to_le_bytes());
    out.extend_from_slice(detail);
    out
}

/// Decode exactly one report; anything malformed, short or followed by extra bytes is an error.
pub fn decode(bytes: &[u8]) -> Result<SetupFailure, ReportError> {
    let header: &[u8; HEADER_LEN] = bytes
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(ReportError::Truncated { len: bytes.len(), need: HEADER_LEN })?;
    let [version, step, e0, e1, e2, e3, l0, l1] = *header;
    if version != FORMAT_VERSION {
        return Err(ReportError::Version(version));
    }
    let step = SetupStep::from_code(step).ok_or(ReportError::UnknownStep(step))?;
    let errno = i32::from_le_bytes([e0, e1, e2, e3]);
    let detail_len = usize::from(u16::from_le_bytes([l0, l1]));
    if detail_len > MAX_DETAIL_BYTES {
        return Err(ReportError::DetailTooLong(detail_len));
    }
    let need = HEADER_LEN + detail_len;
    let detail = bytes.get(HEADER_LEN..need).ok_or(ReportError::Truncated { len: bytes.len(), need })?;
    if bytes.len() > need {
        return Err(ReportError::Trailing(bytes.len() - need));
    }
    let detail = std::str::from_utf8(detail).map_err(|_| ReportError::DetailNotUtf8)?;
    Ok(SetupFailure { step, errno, detail: detail.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SetupFailure {
        SetupFailure::new(SetupStep::RootOp, libc::ENOENT, "bind /usr/lib")
    }

    #[test]
    fn round_trip_every_step() {
        for step in SetupStep::ALL {
            let f = SetupFailure::new(step, -7, "détail");
            assert_eq!(decode(&encode(&f)), Ok(f));
        }
    }

    #[test]
    fn step_codes_are_stable_and_cover_1_to_23() {
        assert_eq!(SetupStep::ParentDeathSignal as u8, 1);
        assert_eq!(SetupStep::Exec as u8, 22);
        assert_eq!(SetupStep::Signals as u8, 23);
        let mut codes: Vec<u8> = SetupStep::ALL.iter().map(|s| *s as u8).collect();
        codes.sort_unstable();
        assert_eq!(codes, (1..=23).collect::<Vec<u8>>());
        assert_eq!(SetupStep::ALL[0], SetupStep::Signals, "ALL is in execution order");
    }

    #[test]
    fn layout_is_as_documented() {
        let bytes = encode(&SetupFailure::new(SetupStep::Seccomp, 0x0102_0304, "ab"));
        assert_eq!(bytes, vec![1, 21, 4, 3, 2, 1, 2, 0, b'a', b'b']);
    }

    #[test]
    fn every_truncation_is_rejected() {
        let bytes = encode(&sample());
        for len in 0..bytes.len() {
            let err = decode(&bytes[..len]).unwrap_err();
            assert!(matches!(err, ReportError::Truncated { .. }), "len {len}: {err}");
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = encode(&sample());
        bytes.push(0);
        assert_eq!(decode(&bytes), Err(ReportError::Trailing(1)));
    }

    #[test]
    fn bad_version_step_length_and_utf8_are_rejected() {
        let good = encode(&sample());
        let mut v = good.clone();
        v[0] = 9;
        assert_eq!(decode(&v), Err(ReportError::Version(9)));
        let mut s = good.clone();
        s[1] = 0;
        assert_eq!(decode(&s), Err(ReportError::UnknownStep(0)));
        s[1] = 24;
        assert_eq!(decode(&s), Err(ReportError::UnknownStep(24)));
        let mut l = good.clone();
        l[6..8].copy_from_slice(&201u16.to_le_bytes());
        assert_eq!(decode(&l), Err(ReportError::DetailTooLong(201)));
        let mut u = good;
        u[8] = 0xff;
        assert_eq!(decode(&u), Err(ReportError::DetailNotUtf8));
    }

    #[test]
    fn long_detail_is_cut_at_a_char_boundary() {
        let long = "é".repeat(150); // 300 bytes, 2 per char
        let f = SetupFailure::new(SetupStep::Exec, 2, &long);
        assert_eq!(f.detail.len(), MAX_DETAIL_BYTES);
        let unchecked = SetupFailure { step: SetupStep::Exec, errno: 2, detail: long.clone() };
        let bytes = encode(&unchecked);
        assert!(bytes.len() <= MAX_ENCODED_LEN);
        assert_eq!(decode(&bytes).unwrap().detail, f.detail);
        let odd = format!("a{long}");
        assert_eq!(SetupFailure::new(SetupStep::Exec, 2, &odd).detail.len(), MAX_DETAIL_BYTES - 1);
    }

    #[test]
    fn arbitrary_bytes_decode_only_to_canonical_reports() {
        let mut x: u32 = 0x1234_5678;
        for len in 0..64 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            for version_fixed in [false, true] {
                let mut b = bytes.clone();
                if version_fixed && b.len() >= HEADER_LEN {
                    b[0] = FORMAT_VERSION;
                    b[1] = (b[1] % 23) + 1;
                    let detail_len = (b.len() - HEADER_LEN) as u16;
                    b[6..8].copy_from_slice(&detail_len.to_le_bytes());
                }
                if let Ok(f) = decode(&b) {
                    assert_eq!(encode(&f), b, "decode accepted a non-canonical report");
                }
            }
        }
    }
}
