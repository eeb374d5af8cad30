//! The messages between the daemon and its launcher: one JSON object per SEQPACKET
//! datagram, at most [`MAX_MESSAGE_BYTES`], unknown fields refused.
//!
//! Every [`Request`] gets exactly one reply carrying its `request_id`:
//! `Launch` → [`Reply::Launched`] or [`Reply::Refused`]; `Signal`, `Kill`, `Forget` →
//! [`Reply::Done`]; `Stats` → [`Reply::StatsReply`]; any of them → [`Reply::Error`] when
//! the request itself is wrong. [`Reply::Exited`] is unsolicited: it comes once per
//! launched instance, always after that instance's `Launched`.
//!
//! `Launched` carries four fds (SCM_RIGHTS) in the order of the `FD_*` indices:
//! the init's pidfd, the daemon's end of the event channel, and the read ends of the
//! plugin's stdout and stderr. No other message carries fds.

use crate::cgroup::CgroupStats;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Largest datagram either side sends or accepts (the policy's JSON travels in `Launch`).
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;
/// Fds attached to a `Launched` reply.
pub const LAUNCHED_FD_COUNT: usize = 4;
/// Index of the plugin init's pidfd in a `Launched` reply's fds.
pub const FD_PIDFD: usize = 0;
/// Index of the daemon's end of the plugin's event channel (a stream socket).
pub const FD_CHANNEL: usize = 1;
/// Index of the read end of the plugin's stdout pipe.
pub const FD_STDOUT: usize = 2;
/// Index of the read end of the plugin's stderr pipe.
pub const FD_STDERR: usize = 3;

/// Daemon → launcher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Load the policy (`policy_json`, or the built-in default when absent) and the
    /// manifest, derive the spec, prepare every layer, clone and release the plugin.
    /// `instance` names its cgroup: `<plugin>-<launcher pid>-<8 hex digits>`
    /// (see [`super::instance_name`]), unique among the launcher's instances.
    ///
    /// The manifest travels as the bytes the daemon validated, so both sides derive the
    /// spec from the same input whatever happens to the file afterwards.
    Launch {
        request_id: u64,
        instance: String,
        manifest_json: String,
        /// The plugin directory: absolute and canonical (no symlink anywhere in it).
        plugin_dir: PathBuf,
        policy_json: Option<String>,
        args: Vec<String>,
    },
    /// Send `signal` to the plugin's init through its pidfd (SIGTERM to ask it to stop).
    Signal { request_id: u64, instance: String, signal: i32 },
    /// Kill every process in the instance's cgroup, and its init.
    Kill { request_id: u64, instance: String },
    /// The instance's current cgroup statistics.
    Stats { request_id: u64, instance: String },
    /// Remove an exited instance's cgroup and everything the launcher holds for it.
    Forget { request_id: u64, instance: String },
}

impl Request {
    pub fn request_id(&self) -> u64 {
        match self {
            Request::Launch { request_id, .. }
            | Request::Signal { request_id, .. }
            | Request::Kill { request_id, .. }
            | Request::Stats { request_id, .. }
            | Request::Forget { request_id, .. } => *request_id,
        }
    }

    pub fn instance(&self) -> &str {
        match self {
            Request::Launch { instance, .. }
            | Request::Signal { instance, .. }
            | Request::Kill { instance, .. }
            | Request::Stats { instance, .. }
            | Request::Forget { instance, .. } => instance,
        }
    }
}

/// Launcher → daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reply {
    /// The plugin runs; fds `[pidfd, channel, stdout, stderr]` are attached.
    Launched {
        request_id: u64,
        instance: String,
        /// The init's pid in the launcher's (and daemon's) pid namespace.
        pid: i32,
        plugin: String,
        version: String,
        /// SHA-256 of the effective spec's JSON, to check the daemon brokers events with
        /// the same spec the launcher enforced.
        spec_sha256: String,
        /// What is enforced, layer by layer (the run report's `enforced` object).
        enforcement: serde_json::Value,
        warnings: Vec<String>,
    },
    /// The plugin was not started: refused by the policy or the host, or set-up failed.
    /// Nothing of it is left (no process, no cgroup).
    Refused {
        request_id: u64,
        instance: String,
        /// `refused` or `setup_failed`.
        cause: String,
        step: String,
        errno: Option<i32>,
        message: String,
    },
    /// A `Signal`, `Kill` or `Forget` was carried out.
    Done { request_id: u64, instance: String },
    StatsReply {
        request_id: u64,
        instance: String,
        /// Whether the init is still running.
        running: bool,
        /// `None` when the instance runs without a cgroup (degraded) or it was unreadable.
        stats: Option<UsageStats>,
    },
    /// The plugin's init was reaped; what is left of its cgroup was killed. The cgroup
    /// stays (for `Stats`) until `Forget`.
    Exited {
        instance: String,
        status: WaitOutcome,
        /// The OOM killer acted in the cgroup and init died of SIGKILL.
        oom_killed: bool,
        stats: Option<UsageStats>,
    },
    /// The request was not carried out. `request_id`/`instance` are absent when the
    /// datagram could not be parsed.
    Error { request_id: Option<u64>, instance: Option<String>, code: ErrorCode, message: String },
}

/// How the init ended: `{"code": N}` or `{"signal": N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum WaitOutcome {
    Code(i32),
    Signal(i32),
}

/// Stable error codes of [`Reply::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not a request: bad JSON, unknown type or field, or an empty datagram.
    Malformed,
    /// Larger than [`MAX_MESSAGE_BYTES`].
    TooLarge,
    /// The request carried fds; they were closed.
    UnexpectedFds,
    UnknownInstance,
    /// An instance of that name is already held (running or not yet forgotten).
    DuplicateInstance,
    /// The name is not `<plugin>-<launcher pid>-<8 hex digits>` or not a valid cgroup name.
    InvalidInstance,
    InvalidRequest,
    /// `Forget` of an instance whose init has not been reaped yet.
    StillRunning,
    /// `Signal` to an instance whose init was already reaped.
    NotRunning,
    /// The launcher holds its maximum number of instances; forget some first.
    TooManyInstances,
    /// An operating system call failed (message says which).
    Os,
}

/// Cgroup statistics of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageStats {
    pub memory_current_bytes: u64,
    pub memory_peak_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub oom_kills: u64,
    pub memory_limit_hits: u64,
    pub cpu_usage_usec: u64,
    pub cpu_periods: u64,
    pub cpu_throttled_periods: u64,
    pub cpu_throttled_usec: u64,
    pub pids_current: u64,
    pub pids_limit: Option<u64>,
    pub pids_limit_hits: u64,
}

impl From<CgroupStats> for UsageStats {
    fn from(s: CgroupStats) -> Self {
        UsageStats {
            memory_current_bytes: s.memory.current,
            memory_peak_bytes: s.memory.peak,
            memory_limit_bytes: s.memory.limit,
            oom_kills: s.memory.oom_kills,
            memory_limit_hits: s.memory.limit_hits,
            cpu_usage_usec: s.cpu.usage_usec,
            cpu_periods: s.cpu.nr_periods,
            cpu_throttled_periods: s.cpu.nr_throttled,
            cpu_throttled_usec: s.cpu.throttled_usec,
            pids_current: s.pids.current,
            pids_limit: s.pids.max,
            pids_limit_hits: s.pids.max_events,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_unknown_fields_are_refused() {
        let launch = Request::Launch {
            request_id: 7,
            instance: "p-1-0000000a".into(),
            manifest_json: "{}".into(),
            plugin_dir: "/plugins/p".into(),
            policy_json: None,
            args: vec!["x".into()],
        };
        let text = serde_json::to_string(&launch).unwrap();
        assert!(text.contains("\"type\":\"launch\""), "{text}");
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), launch);
        let extra = r#"{"type":"kill","request_id":1,"instance":"a","force":true}"#;
        assert!(serde_json::from_str::<Request>(extra).is_err());
        let unknown = r#"{"type":"exec","request_id":1,"instance":"a"}"#;
        assert!(serde_json::from_str::<Request>(unknown).is_err());
        let missing = r#"{"type":"signal","request_id":1,"instance":"a"}"#;
        assert!(serde_json::from_str::<Request>(missing).is_err());
    }

    #[test]
    fn wait_outcomes_are_code_or_signal_objects() {
        let exited =
            Reply::Exited { instance: "a".into(), status: WaitOutcome::Signal(9), oom_killed: false, stats: None };
        let value = serde_json::to_value(&exited).unwrap();
        assert_eq!(value["status"], serde_json::json!({ "signal": 9 }));
        assert_eq!(serde_json::to_value(WaitOutcome::Code(3)).unwrap(), serde_json::json!({ "code": 3 }));
        assert_eq!(serde_json::from_value::<Reply>(value).unwrap(), exited);
    }

    #[test]
    fn error_codes_are_snake_case_strings() {
        assert_eq!(serde_json::to_value(ErrorCode::TooManyInstances).unwrap(), "too_many_instances");
        assert_eq!(serde_json::to_value(ErrorCode::UnknownInstance).unwrap(), "unknown_instance");
    }
}
