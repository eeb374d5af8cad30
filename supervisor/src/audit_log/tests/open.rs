//! What `AuditLog::open` promises: a new log is private, a file or directory someone else could
//! have prepared or could redirect is refused with the path and the reason, a second writer is
//! locked out, and a reopened log continues its chain.

use super::*;
use crate::audit_log::{AuditLogError, GENESIS_PREV};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

const OTHER_UID: u32 = 4321;

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).expect("stat").mode() & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), None).expect("chown (the tests run as root)");
}

fn refusal(path: &Path) -> AuditLogError {
    match AuditLog::open(path, NO_ROTATION, 5, clock()) {
        Ok(_) => panic!("opening {} should have been refused", path.display()),
        Err(e) => e,
    }
}

fn assert_names(err: &AuditLogError, path: &Path, reason: &str) {
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "the error names {}: {text}", path.display());
    assert!(text.contains(reason), "the error says {reason:?}: {text}");
}

fn hash_of(line: &str) -> String {
    serde_json::from_str::<Value>(line).expect("json")["hash"].as_str().expect("hash").to_owned()
}

#[test]
fn a_new_log_is_created_0600_inside_new_0700_directories() {
    let dir = tempdir();
    let outer = dir.path().join("var");
    let inner = outer.join("wfsandbox");
    let path = inner.join("audit.jsonl");
    let log = open(&path);
    assert_eq!(mode_of(&path), 0o600);
    assert_eq!((mode_of(&outer), mode_of(&inner)), (0o700, 0o700));
    assert_eq!(std::fs::metadata(&path).expect("stat").len(), 0);
    assert_eq!((log.last_seq(), log.last_hash()), (0, GENESIS_PREV.to_owned()));
    assert!(log.recovery().is_none());
    assert_eq!(log.append("spawn", event(1)).expect("append"), 1);
    assert_eq!(mode_of(&path), 0o600, "appending does not change the mode");
}

#[test]
fn a_symlink_as_the_log_is_refused_and_its_target_left_alone() {
    let dir = tempdir();
    let target = dir.path().join("elsewhere.jsonl");
    write_records(&target, 2);
    let before = std::fs::read(&target).expect("read");
    let path = log_path(&dir);
    std::os::unix::fs::symlink(&target, &path).expect("symlink");
    let err = refusal(&path);
    assert!(matches!(&err, AuditLogError::Symlink { path: p } if p == &path), "{err:?}");
    assert_names(&err, &path, "symbolic link");
    assert_eq!(std::fs::read(&target).expect("read"), before);
}

#[test]
fn a_dangling_symlink_is_refused_without_creating_its_target() {
    let dir = tempdir();
    let target = dir.path().join("planted.jsonl");
    let path = log_path(&dir);
    std::os::unix::fs::symlink(&target, &path).expect("symlink");
    let err = refusal(&path);
    assert!(matches!(err, AuditLogError::Symlink { .. }), "{err:?}");
    assert!(!target.exists(), "O_CREAT did not follow the link");
}

#[test]
fn a_log_writable_by_group_or_others_is_refused() {
    let dir = tempdir();
    let path = log_path(&dir);
    write_records(&path, 1);
    let before = std::fs::read(&path).expect("read");
    for mode in [0o620, 0o602, 0o660, 0o666, 0o622] {
        chmod(&path, mode);
        let err = refusal(&path);
        assert!(matches!(err, AuditLogError::UnsafeMode { mode: m, .. } if m == mode), "{mode:o}: {err:?}");
        assert_names(&err, &path, &format!("mode {mode:04o} lets group or others write it"));
    }
    assert_eq!(std::fs::read(&path).expect("read"), before, "a refused open writes nothing");
    // Only write permission matters: a log others may read is the admin's choice.
    chmod(&path, 0o644);
    assert_eq!(open(&path).last_seq(), 1);
}

#[test]
fn a_parent_directory_writable_by_group_or_others_is_refused() {
    let dir = tempdir();
    let parent = dir.path().join("logs");
    std::fs::create_dir(&parent).expect("mkdir");
    let path = parent.join("audit.jsonl");
    for mode in [0o770, 0o707, 0o1777, 0o720] {
        chmod(&parent, mode);
        let err = refusal(&path);
        let expected =
            matches!(&err, AuditLogError::UnsafeDirectory { path: p, mode: m, .. } if p == &parent && *m == mode);
        assert!(expected, "{mode:o}: {err:?}");
        assert_names(&err, &parent, "not be writable by group or others");
        assert!(!path.exists(), "nothing is created in an unsafe directory");
    }
    chmod(&parent, 0o755);
    drop(open(&path));
    assert!(path.exists());
}

#[test]
fn a_parent_directory_owned_by_another_uid_is_refused() {
    let dir = tempdir();
    let parent = dir.path().join("logs");
    std::fs::create_dir(&parent).expect("mkdir");
    chmod(&parent, 0o700);
    chown(&parent, OTHER_UID);
    let path = parent.join("audit.jsonl");
    let err = refusal(&path);
    assert!(matches!(err, AuditLogError::UnsafeDirectory { owner: OTHER_UID, mode: 0o700, .. }), "{err:?}");
    assert_names(&err, &parent, &format!("owned by uid {OTHER_UID}"));
    assert!(!path.exists());
}

#[test]
fn an_ancestor_owned_by_another_uid_is_refused_for_a_root_writer() {
    let dir = tempdir();
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).expect("mkdir");
    let parent = theirs.join("logs");
    std::fs::create_dir(&parent).expect("mkdir");
    chmod(&parent, 0o700);
    // The parent itself is root's and private; the directory above it is not.
    chown(&theirs, OTHER_UID);
    let path = parent.join("audit.jsonl");
    let err = refusal(&path);
    assert!(matches!(err, AuditLogError::UntrustedAncestor { .. }), "{err:?}");
    assert_names(&err, &parent, &format!("owned by uid {OTHER_UID}"));
    assert!(!path.exists());
}

#[test]
fn a_log_owned_by_another_uid_is_refused() {
    let dir = tempdir();
    let path = log_path(&dir);
    write_records(&path, 3);
    let before = std::fs::read(&path).expect("read");
    chown(&path, OTHER_UID);
    let err = refusal(&path);
    let euid = nix::unistd::geteuid().as_raw();
    assert!(matches!(err, AuditLogError::WrongOwner { owner: OTHER_UID, euid: e, .. } if e == euid), "{err:?}");
    assert_names(&err, &path, &format!("owned by uid {OTHER_UID}, not by this process"));
    assert_eq!(std::fs::read(&path).expect("read"), before);
}

#[test]
fn a_second_open_is_refused_while_the_first_holds_the_lock() {
    let dir = tempdir();
    let path = log_path(&dir);
    let first = open(&path);
    assert_eq!(first.append("spawn", event(1)).expect("append"), 1);
    let err = refusal(&path);
    assert!(matches!(&err, AuditLogError::InUse { path: p } if p == &path), "{err:?}");
    assert_names(&err, &path, "holds its lock");
    assert_eq!(first.append("spawn", event(2)).expect("the first writer is unaffected"), 2);
    drop(first);

    let second = open(&path);
    assert_eq!(second.append("stop", event(3)).expect("append"), 3);
    drop(second);
    let report = verify_one(&path);
    assert_intact(&report);
    assert_eq!(report.records, 3);
}

#[test]
fn reopening_continues_seq_and_prev_from_the_last_record() {
    let dir = tempdir();
    let path = log_path(&dir);
    write_records(&path, 4);
    let before = std::fs::read(&path).expect("read");
    let last_hash = hash_of(&read_lines(&path)[3]);

    let log = open(&path);
    assert!(log.recovery().is_none());
    assert_eq!((log.last_seq(), log.last_hash()), (4, last_hash.clone()));
    assert_eq!(log.append("stop", event(5)).expect("append"), 5);
    drop(log);

    let after = std::fs::read(&path).expect("read");
    assert_eq!(&after[..before.len()], before.as_slice(), "earlier records are untouched");
    let fifth: Value = serde_json::from_str(&read_lines(&path)[4]).expect("json");
    assert_eq!((fifth["seq"].clone(), fifth["prev"].clone()), (json!(5), json!(last_hash)));
    assert_intact(&verify_one(&path));
}

#[test]
fn a_fifo_at_the_path_is_refused_without_hanging() {
    let dir = tempdir();
    let path = log_path(&dir);
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let err = refusal(&path);
    assert!(matches!(err, AuditLogError::NotRegularFile { found: "a FIFO", .. }), "{err:?}");
    assert_names(&err, &path, "not a regular file");
}

#[test]
fn a_directory_at_the_path_is_refused_with_the_errno() {
    let dir = tempdir();
    let path = log_path(&dir);
    std::fs::create_dir(&path).expect("mkdir");
    let err = refusal(&path);
    let is_dir =
        matches!(&err, AuditLogError::Io { step: "open", source, .. } if source.raw_os_error() == Some(libc::EISDIR));
    assert!(is_dir, "{err:?}");
    assert_names(&err, &path, "open failed");
}
