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
