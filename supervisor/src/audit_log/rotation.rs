//! Size-based rotation: `audit.jsonl` → `audit.jsonl.1` → `audit.jsonl.2` …, oldest deleted.

use super::error::AuditLogError;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

/// `path` with `.n` appended to its file name.
pub fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Shifts the rotated files up by one, deleting the one that would become `.keep + 1`, then
/// renames the live file to `.1`. A missing file anywhere in the sequence is not an error.
pub fn shift(path: &Path, keep: u32) -> Result<(), AuditLogError> {
    let oldest = rotated_path(path, keep);
    remove_if_present(&oldest)?;
    for n in (1..keep).rev() {
        rename_if_present(&rotated_path(path, n), &rotated_path(path, n + 1))?;
    }
    rename_if_present(path, &rotated_path(path, 1))
}

fn remove_if_present(path: &Path) -> Result<(), AuditLogError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(AuditLogError::io("deleting the oldest rotated file", path)(e))
        }
        _ => Ok(()),
    }
}

fn rename_if_present(from: &Path, to: &Path) -> Result<(), AuditLogError> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(AuditLogError::io("renaming for rotation", from)(e)),
        _ => Ok(()),
    }
}

/// The log's files that exist, in chain order (oldest rotated file first, the live file last):
/// the argument list `verify` expects.
pub fn chain_files(path: &Path) -> io::Result<Vec<PathBuf>> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let Some(name) = path.file_name() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "the log path has no file name"));
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut numbered = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let entry_name = entry?.file_name();
        let entry_name = entry_name.to_string_lossy();
        let Some(suffix) = entry_name.strip_prefix(&prefix) else { continue };
        // Only canonical numbers: `.01` or `.+1` are not files rotation made.
        if let Ok(n) = suffix.parse::<u32>() {
            if n > 0 && n.to_string() == suffix {
                numbered.push(n);
            }
        }
    }
    numbered.sort_unstable_by(|a, b| b.cmp(a));
    let mut files: Vec<PathBuf> = numbered.into_iter().map(|n| rotated_path(path, n)).collect();
    if std::fs::symlink_metadata(path).is_ok() {
        files.push(path.to_owned());
    }
    Ok(files)
}
