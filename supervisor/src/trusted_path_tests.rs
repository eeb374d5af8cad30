use super::*;
use std::os::unix::fs::{chown, symlink, PermissionsExt};

const OTHER: u32 = 4321;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A root-owned 0700 temp dir (in sticky /tmp) holding a root-owned 0644 `policy.json`.
fn fixture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.json");
    std::fs::write(&file, b"{}").unwrap();
    chmod(&file, 0o644);
    (dir, file)
}

#[test]
fn a_root_file_in_a_root_tempdir_inside_sticky_tmp_is_trusted() {
    if !is_root() {
        return;
    }
    let (dir, file) = fixture();
    assert!(open_trusted_file(&file).is_ok(), "{:?}", open_trusted_file(&file));
    assert!(check_trusted_dir(dir.path()).is_ok());
}

#[test]
fn a_file_owned_by_another_user_or_writable_by_others_is_refused() {
    if !is_root() {
        return;
    }
    let (_dir, file) = fixture();
    chown(&file, Some(OTHER), None).unwrap();
    assert!(matches!(open_trusted_file(&file), Err(TrustError::NotRootOwned { uid: OTHER, .. })));
    chown(&file, Some(0), None).unwrap();
    chmod(&file, 0o664);
    assert!(matches!(open_trusted_file(&file), Err(TrustError::Writable { .. })));
}

#[test]
fn an_ancestor_owned_by_another_user_is_refused_even_if_the_file_is_roots() {
    if !is_root() {
        return;
    }
    let (dir, _) = fixture();
    let sub = dir.path().join("user");
    std::fs::create_dir(&sub).unwrap();
    let file = sub.join("policy.json");
    std::fs::write(&file, b"{}").unwrap();
    chown(&sub, Some(OTHER), None).unwrap();
    let refused = open_trusted_file(&file);
    assert!(matches!(&refused, Err(TrustError::NotRootOwned { path, .. }) if *path == sub), "{refused:?}");
    let refused = check_trusted_dir(&sub);
    assert!(matches!(refused, Err(TrustError::NotRootOwned { .. })), "{refused:?}");
}

#[test]
fn a_group_writable_ancestor_is_refused_and_sticky_only_helps_root_entries() {
    if !is_root() {
        return;
    }
    let (dir, _) = fixture();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let inner = shared.join("inner");
    std::fs::create_dir(&inner).unwrap();
    chmod(&shared, 0o777);
    assert!(matches!(check_trusted_dir(&inner), Err(TrustError::Writable { .. })));
    chmod(&shared, 0o1777);
    assert!(check_trusted_dir(&inner).is_ok(), "a root entry of a sticky dir cannot be swapped");
    chown(&inner, Some(OTHER), None).unwrap();
    assert!(check_trusted_dir(&inner).is_err(), "a user's entry of a sticky dir can be swapped by the user");
}

#[test]
fn a_symlink_in_any_component_is_refused() {
    if !is_root() {
        return;
    }
    let (dir, file) = fixture();
    let link_dir = dir.path().join("link");
    symlink(dir.path(), &link_dir).unwrap();
    let refused = open_trusted_file(&link_dir.join("policy.json"));
    assert!(matches!(refused, Err(TrustError::Symlink { .. })), "{refused:?}");
    let link_file = dir.path().join("link.json");
    symlink(&file, &link_file).unwrap();
    let refused = open_trusted_file(&link_file);
    assert!(matches!(refused, Err(TrustError::Symlink { .. })), "{refused:?}");
}

#[test]
fn a_fifo_is_refused_without_opening_it_and_dotdot_or_relative_paths_too() {
    if !is_root() {
        return;
    }
    let (dir, _) = fixture();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // Opening a FIFO for reading with no writer would block: the check never does.
    assert!(matches!(open_trusted_file(&fifo), Err(TrustError::WrongType { found: "a FIFO", .. })));
    let dotted = dir.path().join("x/../policy.json");
    assert!(matches!(open_trusted_file(&dotted), Err(TrustError::NotAbsolute { .. })));
    assert!(matches!(open_trusted_file(Path::new("policy.json")), Err(TrustError::NotAbsolute { .. })));
}

#[test]
fn a_peer_could_read_only_its_own_or_world_readable_files_along_searchable_dirs() {
    if !is_root() {
        return;
    }
    let (dir, file) = fixture();
    chmod(dir.path(), 0o700);
    assert!(!peer_could_read(&file, OTHER), "a 0700 root directory closes the file whatever its mode");
    chmod(dir.path(), 0o711);
    assert!(peer_could_read(&file, OTHER), "0644 in a searchable directory");
    chmod(&file, 0o600);
    assert!(!peer_could_read(&file, OTHER));
    chown(&file, Some(OTHER), None).unwrap();
    assert!(peer_could_read(&file, OTHER), "its own file");
    assert!(!peer_could_read(&dir.path().join("missing"), OTHER));
}

#[test]
fn a_walk_reads_and_names_the_checked_inodes_even_if_the_path_is_swapped_after_it() {
    if !is_root() {
        return;
    }
    let (dir, _) = fixture();
    chmod(dir.path(), 0o711);
    let secret = dir.path().join("secret");
    std::fs::create_dir(&secret).unwrap();
    chmod(&secret, 0o700);
    std::fs::write(secret.join("manifest.json"), b"SECRET").unwrap();
    let mine = dir.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("manifest.json"), b"MINE").unwrap();
    chmod(&mine.join("manifest.json"), 0o644);
    chown(&mine, Some(OTHER), None).unwrap();

    let walked = walk_as(&mine.join("manifest.json"), Some(OTHER), Expect::File).unwrap();
    // The peer swaps its directory for a symlink to the root-only one after the check.
    let moved = dir.path().join("moved");
    std::fs::rename(&mine, &moved).unwrap();
    symlink(&secret, &mine).unwrap();

    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut reopen_for_reading(&walked.target, &mine).unwrap(), &mut bytes).unwrap();
    assert_eq!(bytes, b"MINE", "the bytes come from the inode the walk checked");
    let parent = walked.parent.as_ref().unwrap();
    assert_eq!(path_of_fd(parent).unwrap(), moved, "the plugin dir is the walked directory, wherever it is now");
    let again = walk_as(&mine.join("manifest.json"), Some(OTHER), Expect::File);
    assert!(matches!(again, Err(TrustError::Symlink { .. })), "{again:?}");
    let as_root = walk_as(&mine.join("manifest.json"), None, Expect::File);
    assert!(matches!(as_root, Err(TrustError::Symlink { .. })), "root's walk follows no symlink either: {as_root:?}");
    assert!(walk_as(&secret.join("manifest.json"), None, Expect::File).is_ok(), "root reads what root can");
}

#[test]
fn group_bits_count_for_a_peer_that_does_not_own_the_object() {
    if !is_root() {
        return;
    }
    let (dir, file) = fixture();
    chmod(dir.path(), 0o711);
    chmod(&file, 0o604);
    assert!(!peer_could_read(&file, OTHER), "0604: a member of the file's group could not read it");
    chmod(&file, 0o644);
    assert!(peer_could_read(&file, OTHER));
    chmod(dir.path(), 0o701);
    assert!(!peer_could_read(&file, OTHER), "0701: a member of the directory's group could not search it");
    chmod(dir.path(), 0o711);
    chown(&file, Some(OTHER), None).unwrap();
    chmod(&file, 0o044);
    assert!(!peer_could_read(&file, OTHER), "the owner class decides for the owner");
}

#[test]
fn a_plugin_dir_must_be_searchable_and_readable_by_the_peer() {
    if !is_root() {
        return;
    }
    let (dir, _) = fixture();
    chmod(dir.path(), 0o700);
    assert!(walk_as(dir.path(), Some(OTHER), Expect::Directory).is_err());
    assert!(walk_as(&dir.path().join("missing"), Some(OTHER), Expect::Directory).is_err());
    chmod(dir.path(), 0o711);
    assert!(walk_as(dir.path(), Some(OTHER), Expect::Directory).is_err(), "searchable but not readable");
    chmod(dir.path(), 0o755);
    let walked = walk_as(dir.path(), Some(OTHER), Expect::Directory).unwrap();
    assert_eq!(path_of_fd(&walked.target).unwrap(), dir.path());
}

#[test]
fn an_object_with_a_posix_acl_is_refused() {
    if !is_root() {
        return;
    }
    let (dir, file) = fixture();
    chmod(dir.path(), 0o711);
    assert!(peer_could_read(&file, OTHER));
    // An access ACL denying OTHER (user:OTHER:---) that the mode alone does not show.
    let mut acl = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in
        [(0x01u16, 6u16, u32::MAX), (0x02, 0, OTHER), (0x04, 4, u32::MAX), (0x10, 4, u32::MAX), (0x20, 4, u32::MAX)]
    {
        acl.extend_from_slice(&tag.to_le_bytes());
        acl.extend_from_slice(&perm.to_le_bytes());
        acl.extend_from_slice(&id.to_le_bytes());
    }
    let c_path = std::ffi::CString::new(file.as_os_str().as_bytes()).unwrap();
    // SAFETY: NUL-terminated strings and a buffer of the length given.
    let set = unsafe {
        libc::setxattr(c_path.as_ptr(), c"system.posix_acl_access".as_ptr(), acl.as_ptr().cast(), acl.len(), 0)
    };
    if set != 0 {
        eprintln!("skipped: this file system takes no POSIX ACL: {}", io::Error::last_os_error());
        return;
    }
    assert!(!peer_could_read(&file, OTHER), "an ACL'd file is refused: its mode does not tell its rights");
}
