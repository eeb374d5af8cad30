//! The filesystem boundary: a minimal read-only root after pivot_root, Landlock rules
//! on top, and only `/tmp` writable.

use wf_integration_tests::{assert_denied, probe};

#[test]
fn host_files_outside_the_grants_are_not_there() {
    // Positive control: the file exists on the host.
    assert!(std::path::Path::new("/etc/hostname").exists());
    assert_denied(&probe(&["read-file", "/etc/hostname"]), libc::ENOENT);
    assert_denied(&probe(&["read-file", "/root/.bashrc"]), libc::ENOENT);
}

#[test]
fn landlock_denies_listing_the_root_even_though_it_is_mounted() {
    // The root tmpfs is mounted and world-readable; only Landlock can refuse this.
    assert_denied(&probe(&["list-dir", "/"]), libc::EACCES);
    let usr = probe(&["list-dir", "/usr/lib/x86_64-linux-gnu"]);
    assert_eq!(usr.probe()["ok"], true, "runtime libraries must stay readable: {}", usr.stderr);
}

#[test]
fn only_tmp_is_writable() {
    let tmp = probe(&["write-file", "/tmp/scratch"]);
    assert_eq!(tmp.probe()["ok"], true, "{}", tmp.stderr);
    assert_denied(&probe(&["write-file", "/plugin/planted"]), libc::EROFS);
    assert_denied(&probe(&["write-file", "/usr/lib/x86_64-linux-gnu/planted"]), libc::EROFS);
    assert_denied(&probe(&["write-file", "/planted"]), libc::EROFS);
    assert_denied(&probe(&["write-file", "/dev/planted"]), libc::EACCES);
}

#[test]
fn tmp_is_private_to_each_run() {
    let first = probe(&["write-file", "/tmp/left-behind"]);
    assert_eq!(first.probe()["ok"], true);
    assert_denied(&probe(&["read-file", "/tmp/left-behind"]), libc::ENOENT);
}

#[test]
fn the_plugin_dir_is_read_only_but_readable() {
    let own = probe(&["read-file", "/plugin/manifest.json"]);
    assert_eq!(own.probe()["ok"], true, "{}", own.stderr);
}
