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

/// A policy allowing `<base>/allowed` to be granted, and a plugin granted `path` read-only at /data.
fn plugin_granted(
    base: &std::path::Path,
    path: &std::path::Path,
) -> (wf_integration_tests::PluginDir, std::path::PathBuf) {
    let plugin = wf_integration_tests::PluginDir::probe(serde_json::json!({
        "permissions": {"system": {"filesystem": {"enabled": true, "temp_only": false,
            "read": [{"path": path, "inside": "/data"}]}}}
    }));
    let policy = serde_json::json!({"sandbox": {"allowed_host_paths": [
        {"path": base.join("allowed"), "access": "read_only"}]}});
    plugin.write_file("policy.json", policy.to_string().as_bytes(), 0o644);
    let policy_path = plugin.path().join("policy.json");
    (plugin, policy_path)
}

fn world_readable_tree() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let base = tempfile::tempdir().unwrap();
    for dir in ["allowed", "allowed/real", "outside"] {
        std::fs::create_dir(base.path().join(dir)).unwrap();
    }
    std::fs::write(base.path().join("allowed/real/key"), b"granted").unwrap();
    std::fs::write(base.path().join("outside/key"), b"secret").unwrap();
    for entry in ["", "allowed", "allowed/real", "outside"] {
        std::fs::set_permissions(base.path().join(entry), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for file in ["allowed/real/key", "outside/key"] {
        std::fs::set_permissions(base.path().join(file), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::os::unix::fs::symlink("../outside", base.path().join("allowed/link")).unwrap();
    base
}

#[test]
fn a_symlink_inside_an_allowed_tree_cannot_lead_a_grant_out_of_it() {
    wf_integration_tests::require_root();
    let base = world_readable_tree();
    // Positive control: a real file under the allowed tree is granted and readable.
    let (plugin, policy) = plugin_granted(base.path(), &base.path().join("allowed/real/key"));
    let ok =
        wf_integration_tests::run(&plugin.manifest(), &["--policy", policy.to_str().unwrap()], &["read-file", "/data"]);
    assert_eq!(ok.probe()["ok"], true, "{}", ok.stderr);
    // Through `allowed/link -> ../outside`, the same grant shape is refused before anything runs.
    let (plugin, policy) = plugin_granted(base.path(), &base.path().join("allowed/link/key"));
    let escaped =
        wf_integration_tests::run(&plugin.manifest(), &["--policy", policy.to_str().unwrap()], &["read-file", "/data"]);
    assert_eq!(escaped.status, 125, "{}", escaped.stderr);
    assert!(!escaped.stderr.contains("secret"), "{}", escaped.stderr);
}
