//! The one error type of the cgroup manager: every variant says which step failed,
//! on which path, and (for I/O) with which errno.

use super::layout::LayoutError;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// What the manager was doing when something failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Mkdir,
    Rmdir,
    ListDirs,
    WriteLimit,
    ReadBack,
    EnableControllers,
    ReadControllers,
    MoveSelf,
    AddProcess,
    ListProcesses,
    Freeze,
    Thaw,
    KillCgroup,
    Signal,
    ReadStats,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Step::Mkdir => "create cgroup",
            Step::Rmdir => "remove cgroup",
            Step::ListDirs => "list child cgroups",
            Step::WriteLimit => "write limit",
            Step::ReadBack => "read back limit",
            Step::EnableControllers => "enable controllers in subtree_control",
            Step::ReadControllers => "read available controllers",
            Step::MoveSelf => "move the supervisor into its leaf cgroup",
            Step::AddProcess => "add process",
            Step::ListProcesses => "list processes",
            Step::Freeze => "freeze",
            Step::Thaw => "thaw",
            Step::KillCgroup => "kill cgroup",
            Step::Signal => "send SIGKILL",
            Step::ReadStats => "read statistics",
        };
        f.write_str(name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup: {step}: {path}: {source}")]
    Io { step: Step, path: PathBuf, source: io::Error },
    #[error("cgroup: the host lacks the `{controller}` controller: {detail}")]
    ControllerMissing { controller: String, detail: String },
    #[error("cgroup: limit {name} = {value} refused: {reason}")]
    InvalidLimit { name: &'static str, value: u64, reason: &'static str },
    #[error("cgroup: invalid cgroup name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("cgroup: {path} already exists (a leftover? run cleanup_orphans)")]
    AlreadyExists { path: PathBuf },
    #[error("cgroup: {step}: {path}: wrote {written:?} but the kernel holds {read:?}")]
    Mismatch { step: Step, path: PathBuf, written: String, read: String },
    #[error("cgroup: {path} cannot be parsed as {what}: {content:?}")]
    Parse { path: PathBuf, what: &'static str, content: String },
    #[error(
        "cgroup: our own cgroup {path} also holds processes {pids:?} that are not ours; \
         controllers cannot be enabled below it without moving them, which we never do"
    )]
    OwnCgroupShared { path: PathBuf, pids: Vec<u32> },
    #[error("cgroup: refusing to signal pid {pid} listed in {path}: {reason}")]
    UnsafePid { pid: u32, path: PathBuf, reason: &'static str },
    #[error("cgroup: {path} still holds processes {pids:?} after {rounds} kill rounds")]
    KillIncomplete { path: PathBuf, pids: Vec<u32>, rounds: u32 },
    #[error("cgroup: {path} still holds processes {pids:?}; kill it before removing")]
    StillPopulated { path: PathBuf, pids: Vec<u32> },
    #[error("cgroup: {0}")]
    Layout(#[from] LayoutError),
    #[error("cgroup: {} failures: {}", .0.len(), join_errors(.0))]
    Several(Vec<CgroupError>),
}

impl CgroupError {
    pub(crate) fn io(step: Step, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> CgroupError {
        let path = path.into();
        move |source| CgroupError::Io { step, path, source }
    }

    /// The errno of an I/O failure, if this is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            CgroupError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// Folds a list of failures into one error (`None` when the list is empty).
    pub(crate) fn from_list(mut errors: Vec<CgroupError>) -> Option<CgroupError> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(CgroupError::Several(errors)),
        }
    }
}

fn join_errors(errors: &[CgroupError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_name_step_path_and_errno() {
        let err = CgroupError::io(Step::Rmdir, "/cg/x")(io::Error::from_raw_os_error(libc::EBUSY));
        assert_eq!(err.errno(), Some(libc::EBUSY));
        let text = err.to_string();
        assert!(text.contains("remove cgroup"), "{text}");
        assert!(text.contains("/cg/x"), "{text}");
        assert!(text.contains("os error 16"), "{text}");
    }

    #[test]
    fn from_list_folds_zero_one_and_many() {
        assert!(CgroupError::from_list(Vec::new()).is_none());
        let one = CgroupError::from_list(vec![CgroupError::AlreadyExists { path: "/a".into() }]);
        assert!(matches!(one, Some(CgroupError::AlreadyExists { .. })));
        let many = CgroupError::from_list(vec![
            CgroupError::AlreadyExists { path: "/a".into() },
            CgroupError::AlreadyExists { path: "/b".into() },
        ])
        .unwrap();
        let text = many.to_string();
        assert!(text.starts_with("cgroup: 2 failures"), "{text}");
        assert!(text.contains("/a") && text.contains("/b"), "{text}");
    }
}
