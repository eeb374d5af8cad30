//! Namespaces: the plugin sees only its own processes, only loopback, its own hostname,
//! and is root inside but an unprivileged uid outside.

use wf_integration_tests::probe;

#[test]
fn only_the_plugins_own_processes_are_visible() {
    let line = probe(&["proc-pids"]).probe();
    assert_eq!(line["pids"], serde_json::json!([1]), "{line}");
}

#[test]
fn only_loopback_exists() {
    // Positive control: the host has more than `lo`.
    let host = std::fs::read_to_string("/proc/net/dev").unwrap();
    assert!(host.lines().skip(2).count() > 1, "host has only lo?");
    let line = probe(&["net-devs"]).probe();
    assert_eq!(line["devs"], serde_json::json!(["lo"]), "{line}");
}

#[test]
fn root_inside_is_unprivileged_outside_with_its_own_hostname() {
    let line = probe(&["status"]).probe();
    assert_eq!(line["ids"]["uid"], 0, "{line}");
    assert_eq!(line["ids"]["pid"], 1, "{line}");
    assert_eq!(line["status"]["Uid"], "0\t0\t0\t0");
    assert_eq!(line["hostname"], "wfsandbox");
    // The cgroup namespace is rooted at the plugin's own cgroup.
    let cgroups = line["cgroup"].as_str().unwrap_or_default();
    assert!(cgroups.lines().all(|l| l.ends_with(":/")), "cgroup paths leak: {cgroups}");
}

#[test]
fn the_plugin_leads_a_new_session() {
    // setsid() makes it leader of a session that has no controlling terminal.
    let line = probe(&["status"]).probe();
    assert_eq!((line["ids"]["sid"].as_i64(), line["ids"]["pgid"].as_i64()), (Some(1), Some(1)), "{line}");
}

/// The outside uid of the running plugin whose plugin dir is `dir` (found via /proc).
fn outside_uid_of_plugin(dir: &std::path::Path) -> Option<u32> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid_dir = entry.path();
        let cmdline = std::fs::read(pid_dir.join("cmdline")).unwrap_or_default();
        if !cmdline.starts_with(b"/plugin/probe\0sleep") {
            return None;
        }
        let mountinfo = std::fs::read_to_string(pid_dir.join("mountinfo")).ok()?;
        if !mountinfo.contains(&needle) {
            return None;
        }
        let status = std::fs::read_to_string(pid_dir.join("status")).ok()?;
        status.lines().find_map(|l| l.strip_prefix("Uid:")?.split_whitespace().next()?.parse().ok())
    })
}

#[test]
fn concurrent_sandboxes_run_as_different_outside_uids() {
    wf_integration_tests::require_root();
    let plugins = [
        wf_integration_tests::PluginDir::probe(serde_json::json!({})),
        wf_integration_tests::PluginDir::probe(serde_json::json!({})),
    ];
    let mut children: Vec<std::process::Child> = plugins
        .iter()
        .map(|p| {
            std::process::Command::new(wf_integration_tests::wfsandbox())
                .arg("run")
                .arg(p.manifest())
                .args(["--", "sleep", "5"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let uids = loop {
        let uids: Vec<Option<u32>> = plugins.iter().map(|p| outside_uid_of_plugin(p.path())).collect();
        if uids.iter().all(Option::is_some) || std::time::Instant::now() > deadline {
            break uids;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    for child in &mut children {
        // SAFETY: signalling the wfsandbox processes this test started.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let _ = child.wait();
    }
    let (Some(a), Some(b)) = (uids[0], uids[1]) else { panic!("plugins not found running: {uids:?}") };
    assert_ne!(a, b, "two sandboxes share outside uid {a}");
    assert!(a >= 200_000 && b >= 200_000, "{a} {b}: outside the policy's pool");
}
