//! Privileges: no capabilities in any set, no_new_privs, no fd but stdio and the channel,
//! no inherited signal mask or ignored signal, and death with the supervisor.

use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wf_integration_tests::{binary, probe, require_root, wfsandbox, PluginDir};

const NO_SIGNALS: &str = "0000000000000000";

#[test]
fn every_capability_set_is_empty_and_no_new_privs_is_set() {
    let line = probe(&["status"]).probe();
    let status = &line["status"];
    for set in ["CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"] {
        assert_eq!(status[set], "0000000000000000", "{set}: {line}");
    }
    assert_eq!(status["NoNewPrivs"], "1", "{line}");
}

#[test]
fn only_stdio_and_the_event_channel_are_open() {
    let line = probe(&["fds"]).probe();
    let fds: Vec<i64> = line["fds"].as_array().unwrap().iter().filter_map(|f| f["fd"].as_i64()).collect();
    assert_eq!(fds, vec![0, 1, 2, 3], "{line}");
    assert_eq!(line["fds"][0]["target"], "/dev/null");
    assert!(line["fds"][3]["target"].as_str().unwrap_or_default().starts_with("socket:"), "{line}");
}

#[test]
fn hard_rlimits_are_set() {
    let line = probe(&["status"]).probe();
    assert_eq!(line["rlimits"]["core"], serde_json::json!([0, 0]), "{line}");
    assert_eq!(line["rlimits"]["nofile"], serde_json::json!([256, 256]), "{line}");
}

/// The probe's `inherited_signals` (read before Rust's runtime ignores SIGPIPE) when it
/// is started outside any sandbox with SIGPIPE ignored and SIGTERM blocked, or not.
fn inherited_outside(dirty: bool) -> Value {
    let mut cmd = Command::new(binary("wf-probe"));
    cmd.arg("status");
    if dirty {
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGTERM);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                libc::signal(libc::SIGPIPE, libc::SIG_IGN);
                Ok(())
            });
        }
    }
    let output = cmd.output().expect("run wf-probe");
    let line: Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    line["inherited_signals"].clone()
}

#[test]
fn the_probe_sees_inherited_blocked_and_ignored_signals() {
    // Calibration for the test below: the probe does report what it inherits. Only the
    // two bits set here are compared: outside a sandbox glibc's posix_spawn (used by
    // std::process::Command without pre_exec) hands on its internal signals 32 and 33
    // ignored — one more thing the sandbox's reset clears.
    let mask = |line: &Value, key: &str| u64::from_str_radix(line[key].as_str().unwrap_or(""), 16).expect("hex mask");
    let (sigterm, sigpipe) = (1 << (libc::SIGTERM - 1), 1 << (libc::SIGPIPE - 1));
    let clean = inherited_outside(false);
    let dirty = inherited_outside(true);
    assert_eq!((mask(&clean, "SigBlk") & sigterm, mask(&clean, "SigIgn") & sigpipe), (0, 0), "{clean}");
    assert_eq!((mask(&dirty, "SigBlk") & sigterm, mask(&dirty, "SigIgn") & sigpipe), (sigterm, sigpipe), "{dirty}");
}

#[test]
fn no_signal_is_blocked_or_ignored_inside() {
    // The supervisor ignores SIGPIPE (Rust's runtime) and blocks the signals it reads
    // from a signalfd; a mask and ignored signals survive execve unless the child resets them.
    let line = probe(&["status"]).probe();
    assert_eq!(line["inherited_signals"]["SigBlk"], NO_SIGNALS, "{line}");
    assert_eq!(line["inherited_signals"]["SigIgn"], NO_SIGNALS, "{line}");
    assert_eq!(line["status"]["SigBlk"], NO_SIGNALS, "{line}");
}

#[test]
fn the_plugin_gets_sigkill_when_the_supervisor_dies() {
    let line = probe(&["pdeathsig"]).probe();
    assert_eq!(line["ok"], true, "{line}");
    assert_eq!(line["signal"], libc::SIGKILL, "the credential change must not have cleared it: {line}");
}

/// Children of `pid` (every thread's), from /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|list| list.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<u32>>())
        .collect()
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_owned()
}

/// Gone, or a zombie waiting for whoever inherited it.
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

fn wait_for<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(found) = check() {
            return Some(found);
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_plugin_dies_when_the_supervisor_is_killed() {
    require_root();
    let plugin = PluginDir::probe(serde_json::json!({}));
    let mut supervisor = Command::new(wfsandbox())
        .arg("run")
        .arg(plugin.manifest())
        .args(["--", "sleep", "20"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn wfsandbox");
    // The plugin is the supervisor's child once it has exec'd the probe (named "probe").
    let started = wait_for(Duration::from_secs(10), || {
        children_of(supervisor.id()).into_iter().find(|child| comm(*child) == "probe")
    });
    std::thread::sleep(Duration::from_millis(100));
    let alive_before = started.is_some_and(|pid| !is_dead(pid));
    supervisor.kill().expect("SIGKILL the supervisor");
    supervisor.wait().expect("reap the supervisor");
    let plugin_pid = started.expect("the plugin never started");
    assert!(alive_before, "the plugin should have been sleeping");
    let died = wait_for(Duration::from_secs(5), || is_dead(plugin_pid).then_some(())).is_some();
    if !died {
        // Do not leave it behind: it is ours, by pid.
        // SAFETY: kill(2) on the pid of the plugin this test started.
        unsafe { libc::kill(plugin_pid as libc::pid_t, libc::SIGKILL) };
    }
    // The killed supervisor left its cgroup behind; the next run sweeps it.
    assert_eq!(probe(&["exit", "0"]).status, 0);
    assert!(died, "the plugin outlived its supervisor");
}
