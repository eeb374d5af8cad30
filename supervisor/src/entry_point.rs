//! Checking the plugin's entry point on disk before anything is cloned.
//!
//! The manifest check is lexical; this one resolves the entry point beneath the plugin
//! directory with `openat2(RESOLVE_BENEATH)`, so a symlink that leaves the directory is
//! refused, and checks that the sandbox's unprivileged uid will be able to use it.

use crate::host_path::{self, HostPathError, Kind};
use std::path::{Path, PathBuf};
use wf_policy::spec::{EntrySpec, Runtime};

#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("plugin directory {dir}: {source}")]
    PluginDir { dir: PathBuf, source: HostPathError },
    #[error("plugin directory {dir}: not a directory")]
    NotADir { dir: PathBuf },
    #[error("entry point {entry}: cannot be resolved inside the plugin directory: {source}")]
    Resolve { entry: String, source: HostPathError },
    #[error("entry point {entry}: not a regular file")]
    NotAFile { entry: String },
    #[error("{what} {path}: mode {mode:o} does not let the sandbox's unprivileged user {need}")]
    Permission { what: &'static str, path: String, mode: u32, need: &'static str },
}

/// Resolve and check the entry point; returns nothing but refuses on any doubt.
pub fn check(entry: &EntrySpec) -> Result<(), EntryError> {
    let dir = &entry.plugin_dir;
    let dir_fd =
        host_path::open_path_nofollow(dir).map_err(|source| EntryError::PluginDir { dir: dir.clone(), source })?;
    let (kind, dir_mode) =
        host_path::stat_fd(&dir_fd, dir).map_err(|source| EntryError::PluginDir { dir: dir.clone(), source })?;
    if kind != Kind::Dir {
        return Err(EntryError::NotADir { dir: dir.clone() });
    }
    require(dir_mode, 0o005, "plugin directory", dir, "read and search it")?;

    let name = &entry.entry_point.value;
    let file = host_path::open_beneath(&dir_fd, Path::new(name), libc::O_PATH, false)
        .map_err(|source| EntryError::Resolve { entry: name.clone(), source })?;
    let (kind, mode) = host_path::stat_fd(&file, Path::new(name))
        .map_err(|source| EntryError::Resolve { entry: name.clone(), source })?;
    if kind != Kind::File {
        return Err(EntryError::NotAFile { entry: name.clone() });
    }
    match entry.runtime.value {
        Runtime::Native => require(mode, 0o005, "entry point", Path::new(name), "read and execute it"),
        Runtime::Interpreter { .. } => require(mode, 0o004, "entry point", Path::new(name), "read it"),
    }
}

/// The sandbox runs as an unmapped-to-owner uid, so only the "other" bits count.
fn require(mode: u32, other_bits: u32, what: &'static str, path: &Path, need: &'static str) -> Result<(), EntryError> {
    if mode & other_bits == other_bits {
        Ok(())
    } else {
        Err(EntryError::Permission { what, path: path.display().to_string(), mode, need })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use wf_policy::spec::{Origin, Sourced};

    fn spec(dir: &Path, entry: &str, runtime: Runtime) -> EntrySpec {
        EntrySpec {
            plugin_dir: dir.to_owned(),
            entry_point: Sourced::new(entry.to_owned(), Origin::manifest("/entry_point")),
            runtime: Sourced::new(runtime, Origin::manifest("/runtime")),
            plugin_dir_inside: "/plugin".into(),
            cwd_inside: "/plugin".into(),
        }
    }

    fn plugin_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    #[test]
    fn accepts_a_readable_executable_entry_point() {
        let dir = plugin_dir();
        let bin = dir.path().join("plugin");
        std::fs::write(&bin, b"x").unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        check(&spec(dir.path(), "plugin", Runtime::Native)).unwrap();
    }

    #[test]
    fn refuses_symlink_escaping_the_plugin_dir() {
        let dir = plugin_dir();
        std::os::unix::fs::symlink("/bin/sh", dir.path().join("main")).unwrap();
        let err = check(&spec(dir.path(), "main", Runtime::Native)).unwrap_err();
        assert!(matches!(err, EntryError::Resolve { .. }), "{err}");
    }

    #[test]
    fn refuses_entry_point_the_sandbox_user_cannot_read() {
        let dir = plugin_dir();
        let script = dir.path().join("main.py");
        std::fs::write(&script, b"print(1)").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o600)).unwrap();
        let interp = Runtime::Interpreter { name: "python3".into(), path: "/usr/bin/python3".into(), args: vec![] };
        let err = check(&spec(dir.path(), "main.py", interp)).unwrap_err();
        assert!(matches!(err, EntryError::Permission { .. }), "{err}");
    }

    #[test]
    fn refuses_a_directory_as_entry_point() {
        let dir = plugin_dir();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert!(matches!(check(&spec(dir.path(), "sub", Runtime::Native)), Err(EntryError::NotAFile { .. })));
    }
}
