//! Filesystem probes: reading, writing and listing paths, and the mount/chroot family.

use super::args::{Args, UsageError};
use super::outcome::{last_errno, Outcome};
use std::ffi::CString;
use std::io::{Read, Write};

/// Bytes of a file shown in the `head` field.
const HEAD_BYTES: usize = 256;
/// Bytes read at most, so a huge or endless file cannot stall the probe.
const READ_LIMIT: u64 = 1 << 20;
/// Directory entries listed at most.
const LIST_LIMIT: usize = 1000;

pub fn read_file(args: &mut Args) -> Result<Outcome, UsageError> {
    let path = args.required("PATH")?;
    let mut content = Vec::new();
    let result = std::fs::File::open(path).and_then(|file| file.take(READ_LIMIT).read_to_end(&mut content));
    let outcome = Outcome::from_io(&result).with("path", path);
    if !outcome.ok {
        return Ok(outcome);
    }
    let head = String::from_utf8_lossy(&content[..content.len().min(HEAD_BYTES)]).into_owned();
    Ok(outcome.with("bytes", content.len()).with("head", head))
}

pub fn write_file(args: &mut Args) -> Result<Outcome, UsageError> {
    let path = args.required("PATH")?;
    let data = b"written by wf-probe\n";
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .and_then(|mut file| file.write_all(data));
    Ok(Outcome::from_io(&result).with("path", path).with("bytes", if result.is_ok() { data.len() } else { 0 }))
}

/// `set-id-file PATH`: create PATH with mode 04755 (set-uid), and separately fchmod a
/// plain file to 02755 (set-gid); reports each attempt's errno.
pub fn set_id_file(args: &mut Args) -> Result<Outcome, UsageError> {
    let path = args.required("PATH")?;
    let Some(created) = cstring(path) else { return Err(UsageError::Invalid { what: "PATH", value: path.to_owned() }) };
    // SAFETY: valid C string; the fd (if any) is closed below.
    let fd = unsafe { libc::open(created.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, 0o4755) };
    let create_errno = (fd < 0).then(last_errno);
    if fd >= 0 {
        // SAFETY: closing the fd just opened.
        unsafe { libc::close(fd) };
    }
    let plain = cstring(&format!("{path}.plain")).unwrap_or_default();
    // SAFETY: valid C string.
    let fd = unsafe { libc::open(plain.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, 0o644) };
    let chmod_errno = if fd < 0 {
        Some(last_errno())
    } else {
        // SAFETY: fchmod on the fd just opened, then close it.
        let rc = unsafe { libc::fchmod(fd, 0o2755) };
        let errno = (rc < 0).then(last_errno);
        unsafe { libc::close(fd) };
        errno
    };
    let ok = create_errno.is_none() || chmod_errno.is_none();
    Ok(Outcome::new(ok, create_errno.or(chmod_errno))
        .with("create_setuid_errno", create_errno)
        .with("fchmod_setgid_errno", chmod_errno))
}

pub fn list_dir(args: &mut Args) -> Result<Outcome, UsageError> {
    let path = args.required("PATH")?;
    let entries = std::fs::read_dir(path).and_then(|dir| {
        dir.take(LIST_LIMIT)
            .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<Vec<String>>>()
    });
    let outcome = Outcome::from_io(&entries).with("path", path);
    Ok(match entries {
        Ok(mut names) => {
            names.sort();
            outcome.with("count", names.len()).with("entries", names)
        }
        Err(_) => outcome,
    })
}

/// Mounts a tmpfs on TARGET (default /tmp) and, if that worked, detaches it again at once.
pub fn mount_tmpfs(args: &mut Args) -> Result<Outcome, UsageError> {
    let target = args.optional().unwrap_or("/tmp");
    Ok(mount_then_detach("tmpfs", "tmpfs", target))
}

/// Mounts a new procfs on TARGET (default /tmp) and, if that worked, detaches it again.
pub fn mount_proc(args: &mut Args) -> Result<Outcome, UsageError> {
    let target = args.optional().unwrap_or("/tmp");
    Ok(mount_then_detach("proc", "proc", target))
}

fn mount_then_detach(source: &str, fstype: &str, target: &str) -> Outcome {
    let (Some(c_source), Some(c_fstype), Some(c_target)) = (cstring(source), cstring(fstype), cstring(target)) else {
        return Outcome::failure(libc::EINVAL).with("target", target);
    };
    // SAFETY: all pointers are valid NUL-terminated strings; data is NULL.
    let rc = unsafe { libc::mount(c_source.as_ptr(), c_target.as_ptr(), c_fstype.as_ptr(), 0, std::ptr::null()) };
    let outcome = Outcome::from_rc(i64::from(rc)).with("target", target).with("fstype", fstype);
    if outcome.ok {
        // SAFETY: valid path; undoes the mount this probe just made.
        let detached = unsafe { libc::umount2(c_target.as_ptr(), libc::MNT_DETACH) } == 0;
        return outcome.with("detached", detached);
    }
    outcome
}

/// open_tree(PATH, OPEN_TREE_CLONE | AT_RECURSIVE): a detached copy of a mount, the new mount API's bind.
pub fn open_tree(args: &mut Args) -> Result<Outcome, UsageError> {
    let path = args.optional().unwrap_or("/");
    let Some(c_path) = cstring(path) else {
        return Ok(Outcome::failure(libc::EINVAL));
    };
    const OPEN_TREE_CLONE: libc::c_long = 1;
    // Recursive, so that locked child mounts do not turn the clone into EINVAL.
    let flags = OPEN_TREE_CLONE | libc::c_long::from(libc::AT_RECURSIVE) | libc::c_long::from(libc::O_CLOEXEC);
    // SAFETY: raw syscall with a valid path; the returned fd is closed below.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c_path.as_ptr(), flags) };
    Ok(close_if_fd(fd).with("path", path))
}

/// fsopen(FSTYPE): the first step of creating a new filesystem with the new mount API.
pub fn fsopen(args: &mut Args) -> Result<Outcome, UsageError> {
    let fstype = args.optional().unwrap_or("tmpfs");
    let Some(c_fstype) = cstring(fstype) else {
        return Ok(Outcome::failure(libc::EINVAL));
    };
    const FSOPEN_CLOEXEC: libc::c_long = 1;
    // SAFETY: raw syscall with a valid string; the returned fd is closed below.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, c_fstype.as_ptr(), FSOPEN_CLOEXEC) };
    Ok(close_if_fd(fd).with("fstype", fstype))
}

/// chroot(PATH), default "/" so that success changes nothing.
pub fn chroot(args: &mut Args) -> Result<Outcome, UsageError> {
    let path = args.optional().unwrap_or("/");
    let Some(c_path) = cstring(path) else {
        return Ok(Outcome::failure(libc::EINVAL));
    };
    // SAFETY: valid path.
    let rc = unsafe { libc::chroot(c_path.as_ptr()) };
    Ok(Outcome::from_rc(i64::from(rc)).with("path", path))
}

/// Success if `rc` is an fd (which is then closed), failure with errno otherwise.
pub fn close_if_fd(rc: libc::c_long) -> Outcome {
    if rc < 0 {
        return Outcome::failure(last_errno());
    }
    if let Ok(fd) = libc::c_int::try_from(rc) {
        // SAFETY: the fd was just returned to this process and is not used elsewhere.
        unsafe { libc::close(fd) };
    }
    Outcome::success()
}

pub fn cstring(text: &str) -> Option<CString> {
    CString::new(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn write_then_read_then_list() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f.txt");
        let file = file.to_str().expect("utf-8");
        let written = write_file(&mut Args::new(&argv(&[file]))).expect("args");
        assert!(written.ok);
        let read = read_file(&mut Args::new(&argv(&[file]))).expect("args");
        assert_eq!(read.extra["head"], "written by wf-probe\n");
        let listed = list_dir(&mut Args::new(&argv(&[dir.path().to_str().expect("utf-8")]))).expect("args");
        assert_eq!(listed.extra["entries"], serde_json::json!(["f.txt"]));
    }

    #[test]
    fn failures_carry_errno() {
        let missing = read_file(&mut Args::new(&argv(&["/nonexistent/wf-probe"]))).expect("args");
        assert_eq!((missing.ok, missing.errno), (false, Some(libc::ENOENT)));
        let not_dir = list_dir(&mut Args::new(&argv(&["/proc/self/status"]))).expect("args");
        assert_eq!(not_dir.errno, Some(libc::ENOTDIR));
        let nul = mount_then_detach("tmpfs", "tmpfs", "a\0b");
        assert_eq!(nul.errno, Some(libc::EINVAL));
    }
}
