//! Creating and removing cgroup directories, and writing control files with a
//! read-back check, shared by the v1 and v2 back-ends.

use super::error::{CgroupError, Step};
use super::fs::CgroupFs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often and how long `rmdir` is retried while the last tasks of a cgroup exit.
const RMDIR_ATTEMPTS: u32 = 100;
const RMDIR_PAUSE: Duration = Duration::from_millis(10);
/// Deepest nesting we walk below an instance (the plugin cannot create any, but a
/// leftover tree from elsewhere must not make us recurse without bound).
const MAX_DEPTH: usize = 16;

/// Creates a cgroup that must not exist yet.
pub(crate) fn create_dir(fs: &dyn CgroupFs, dir: &Path) -> Result<(), CgroupError> {
    match fs.mkdir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(CgroupError::AlreadyExists { path: dir.to_owned() }),
        Err(e) => Err(CgroupError::io(Step::Mkdir, dir)(e)),
    }
}

/// Creates a cgroup unless it exists; returns whether we created it.
pub(crate) fn ensure_dir(fs: &dyn CgroupFs, dir: &Path) -> Result<bool, CgroupError> {
    match fs.mkdir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(CgroupError::io(Step::Mkdir, dir)(e)),
    }
}

/// Writes `value` and checks that the file reads back exactly the same.
pub(crate) fn write_value(fs: &dyn CgroupFs, path: &Path, value: &str) -> Result<(), CgroupError> {
    fs.write(path, value).map_err(CgroupError::io(Step::WriteLimit, path))?;
    verify_value(fs, path, value)
}

/// Checks that a control file holds exactly `value` (ignoring surrounding whitespace).
pub(crate) fn verify_value(fs: &dyn CgroupFs, path: &Path, value: &str) -> Result<(), CgroupError> {
    let held = fs.read(path).map_err(CgroupError::io(Step::ReadBack, path))?;
    if held.trim() == value.trim() {
        return Ok(());
    }
    Err(CgroupError::Mismatch {
        step: Step::ReadBack,
        path: path.to_owned(),
        written: value.to_owned(),
        read: held.trim().to_owned(),
    })
}

/// `dir` and every cgroup below it, deepest first.
pub(crate) fn tree_deepest_first(fs: &dyn CgroupFs, dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let mut out = Vec::new();
    collect_deepest_first(fs, dir, 0, &mut out)?;
    Ok(out)
}

fn collect_deepest_first(
    fs: &dyn CgroupFs,
    dir: &Path,
    depth: usize,
    out: &mut Vec<PathBuf>,
) -> Result<(), CgroupError> {
    if depth < MAX_DEPTH {
        for child in fs.list_dirs(dir).map_err(CgroupError::io(Step::ListDirs, dir))? {
            collect_deepest_first(fs, &child, depth + 1, out)?;
        }
    }
    out.push(dir.to_owned());
    Ok(())
}

/// Removes `dir` and everything below it, deepest first, retrying `EBUSY` while exiting
/// tasks leave. A tree that is already gone counts as removed.
pub(crate) fn remove_tree(fs: &dyn CgroupFs, dir: &Path) -> Result<(), CgroupError> {
    if !fs.exists(dir) {
        return Ok(());
    }
    for path in tree_deepest_first(fs, dir)? {
        remove_one(fs, &path)?;
    }
    Ok(())
}

/// Removes one cgroup directory, retrying briefly on `EBUSY`.
pub(crate) fn remove_one(fs: &dyn CgroupFs, dir: &Path) -> Result<(), CgroupError> {
    let mut attempt = 1;
    loop {
        match fs.rmdir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < RMDIR_ATTEMPTS => {
                attempt += 1;
                std::thread::sleep(RMDIR_PAUSE);
            }
            Err(e) => return Err(CgroupError::io(Step::Rmdir, dir)(e)),
        }
    }
}
