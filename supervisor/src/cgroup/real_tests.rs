//! Real cgroups (root only): create an instance with limits under our own cgroup, put
//! children we started into it, watch the kernel enforce the limits, kill, remove, and
//! check nothing is left. Each test uses its own parent name, so only directories the
//! test itself created are ever written or removed.

use super::{CgroupLayout, CgroupManager, Limits, PluginCgroup, RealCgroupFs};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("SKIPPED {}: needs root to create cgroups", module_path!());
            return;
        }
    };
}

/// The layout as it was when the test process started (on v2 a test may move this
/// process into its own leaf, which changes `/proc/self/cgroup` for later tests).
fn initial_layout() -> CgroupLayout {
    static LAYOUT: OnceLock<CgroupLayout> = OnceLock::new();
    LAYOUT.get_or_init(|| CgroupLayout::detect().expect("cgroup layout")).clone()
}

/// A manager that, even when a test fails half-way, kills and removes what is left
/// under its test parent and then the parent directories it created. Declared before
/// the instances, it is dropped after them.
struct TestManager(CgroupManager);

impl std::ops::Deref for TestManager {
    type Target = CgroupManager;
    fn deref(&self) -> &CgroupManager {
        &self.0
    }
}

impl Drop for TestManager {
    fn drop(&mut self) {
        let _ = self.0.cleanup_orphans();
        let _ = self.0.remove_parents();
    }
}

fn manager_for(layout: CgroupLayout, parent: &str) -> TestManager {
    TestManager(CgroupManager::new(layout, parent, Box::new(RealCgroupFs)).expect("manager"))
}

fn fresh_manager(layout: CgroupLayout) -> (TestManager, String) {
    let parent = format!("wfsandbox-test-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
    (manager_for(layout, &parent), parent)
}

fn limits() -> Limits {
    Limits { memory_max_bytes: 64 << 20, swap_max_bytes: 0, cpu_quota_us: 10_000, cpu_period_us: 100_000, pids_max: 16 }
}

/// A shell we started that waits for one line on stdin before running `script`
/// (the sync-pipe handshake of the real launcher). Killed and reaped on drop.
struct Gated {
    child: Child,
}

impl Gated {
    fn start(script: &str) -> Self {
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("read go; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sh");
        Gated { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn release(&mut self) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(b"go\n").expect("release");
        stdin.flush().expect("flush");
    }

    fn wait_status(&mut self, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(start.elapsed() < limit, "child {} did not end in {limit:?}", self.pid());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Gated {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn procs_in(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Every instance directory as a cgroup path relative to its mount.
fn cgroup_paths(layout: &CgroupLayout, cgroup: &PluginCgroup) -> Vec<String> {
    let mounts: Vec<PathBuf> = match layout {
        CgroupLayout::V2 { mount, .. } => vec![mount.clone()],
        CgroupLayout::Hybrid { v1, unified } => v1.values().chain(unified.iter()).map(|m| m.mount.clone()).collect(),
    };
    cgroup
        .paths()
        .iter()
        .map(|dir| {
            let mount =
                mounts.iter().filter(|m| dir.starts_with(m)).max_by_key(|m| m.as_os_str().len()).expect("mount");
            format!("/{}", dir.strip_prefix(mount).expect("under mount").display())
        })
        .collect()
}

fn read_trimmed(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).trim().to_owned()
}

/// The limit files themselves, read independently of the manager.
fn assert_limit_files(layout: &CgroupLayout, cgroup: &PluginCgroup) {
    let paths = cgroup.paths();
    let with = |file: &str| paths.iter().map(|d| d.join(file)).find(|p| p.exists());
    match layout {
        CgroupLayout::V2 { .. } => {
            assert_eq!(read_trimmed(with("memory.max").expect("memory.max")), "67108864");
            assert_eq!(read_trimmed(with("cpu.max").expect("cpu.max")), "10000 100000");
            assert_eq!(read_trimmed(with("pids.max").expect("pids.max")), "16");
            if let Some(swap) = with("memory.swap.max") {
                assert_eq!(read_trimmed(swap), "0");
            }
            assert_eq!(read_trimmed(with("memory.oom.group").expect("oom.group")), "1");
        }
        CgroupLayout::Hybrid { .. } => {
            assert_eq!(read_trimmed(with("memory.limit_in_bytes").expect("limit")), "67108864");
            if let Some(memsw) = with("memory.memsw.limit_in_bytes") {
                assert_eq!(read_trimmed(memsw), "67108864");
            }
            assert_eq!(read_trimmed(with("cpu.cfs_quota_us").expect("quota")), "10000");
            assert_eq!(read_trimmed(with("cpu.cfs_period_us").expect("period")), "100000");
            assert_eq!(read_trimmed(with("pids.max").expect("pids.max")), "16");
        }
    }
}

/// On v2 below the root, the no-internal-process rule made us move: only our own
/// process, into a `*-supervisor` leaf directly under our original cgroup.
fn assert_supervisor_in_its_own_leaf(layout: &CgroupLayout) {
    let CgroupLayout::V2 { mount, own_path } = layout else { return };
    if own_path == Path::new("/") {
        return;
    }
    let now = read_trimmed(PathBuf::from("/proc/self/cgroup"));
    let now = now.lines().find_map(|l| l.strip_prefix("0::")).expect("v2 line");
    let leaf = Path::new(now);
    assert_eq!(leaf.parent(), Some(own_path.as_path()), "we are in {now}");
    assert!(now.ends_with("-supervisor"), "we are in {now}");
    let own_dir = super::layout::join_cgroup_path(mount, own_path);
    assert!(procs_in(&own_dir).is_empty(), "our original cgroup still holds processes");
    eprintln!("supervisor moved itself to {now}; {} holds no process", own_dir.display());
}

#[test]
fn real_instance_limits_membership_kill_and_removal() {
    require_root!();
    let layout = initial_layout();
    let (manager, parent) = fresh_manager(layout.clone());
    let mut cgroup = manager.create("inst", &limits()).expect("create");
    eprintln!("{} instance dirs: {:?}", layout.version_name(), cgroup.paths());
    assert_limit_files(&layout, &cgroup);
    let enforcement = cgroup.enforcement().expect("enforcement");
    eprintln!("enforcement: {}", serde_json::to_string(&enforcement).unwrap_or_default());
    assert!(enforcement.all_limits_enforced(), "{enforcement:?}");
    assert_eq!(enforcement.memory_max_bytes, Some(64 << 20));

    assert_supervisor_in_its_own_leaf(&layout);

    let mut child = Gated::start("sleep 1000 & sleep 1000 & wait");
    cgroup.add_process(child.pid()).expect("add_process");
    let own_cgroups = read_trimmed(PathBuf::from(format!("/proc/{}/cgroup", child.pid())));
    for path in cgroup_paths(&layout, &cgroup) {
        assert!(own_cgroups.lines().any(|l| l.ends_with(&format!(":{path}"))), "{path} not in\n{own_cgroups}");
    }
    child.release();
    let kill_dir = cgroup.paths()[0].clone();
    wait_for("three members", Duration::from_secs(10), || procs_in(&kill_dir).len() == 3);
    assert!(!cgroup.is_empty().expect("is_empty"));
    let stats = cgroup.stats().expect("stats");
    assert_eq!(stats.pids.current, 3, "{stats:?}");
    assert_eq!(stats.pids.max, Some(16));

    cgroup.kill().expect("kill");
    assert!(cgroup.is_empty().expect("is_empty"));
    // Removal must not depend on the killed child having been reaped yet: our shell is
    // still an unreaped zombie here.
    cgroup.remove().expect("remove");
    assert_eq!(child.wait_status(Duration::from_secs(5)).signal(), Some(libc::SIGKILL));
    for dir in cgroup.paths() {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    assert!(manager.remove_parents().expect("remove_parents").is_empty());
    for dir in cgroup.paths() {
        let parent_dir = dir.parent().expect("parent");
        assert!(parent_dir.ends_with(&parent));
        assert!(!parent_dir.exists(), "{} left behind", parent_dir.display());
    }
    assert!(manager.take_errors().is_empty());
}

#[test]
fn real_memory_limit_ends_in_an_oom_kill_that_stats_report() {
    require_root!();
    let (manager, _parent) = fresh_manager(initial_layout());
    let mut cgroup = manager.create("oom", &Limits { memory_max_bytes: 32 << 20, ..limits() }).expect("create");
    // dd fills a 256 MiB buffer from /dev/zero: far past the 32 MiB limit, no swap allowed.
    let mut child = Gated::start("exec dd if=/dev/zero of=/dev/null bs=256M count=1");
    cgroup.add_process(child.pid()).expect("add_process");
    child.release();
    let status = child.wait_status(Duration::from_secs(60));
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    let stats = cgroup.stats().expect("stats");
    eprintln!("after OOM: {stats:?}");
    assert!(stats.memory.oom_kills >= 1, "{stats:?}");
    assert!(stats.memory.peak.is_some_and(|p| p <= 32 << 20), "{stats:?}");
    cgroup.kill().expect("kill");
    cgroup.remove().expect("remove");
    manager.remove_parents().expect("remove_parents");
}

#[test]
fn real_pids_limit_refuses_forks() {
    require_root!();
    let (manager, _parent) = fresh_manager(initial_layout());
    let mut cgroup = manager.create("pids", &Limits { pids_max: 4, ..limits() }).expect("create");
    let mut child = Gated::start("for i in 1 2 3 4 5 6 7 8 9 10; do sleep 30 & done; sleep 30");
    cgroup.add_process(child.pid()).expect("add_process");
    child.release();
    wait_for("a refused fork", Duration::from_secs(20), || cgroup.stats().is_ok_and(|s| s.pids.max_events >= 1));
    let stats = cgroup.stats().expect("stats");
    eprintln!("pids: {stats:?}");
    assert!(stats.pids.current <= 4, "{stats:?}");
    cgroup.kill().expect("kill");
    // sh may already have given up after its failed forks; either way it is gone now.
    let status = child.wait_status(Duration::from_secs(5));
    assert!(status.signal() == Some(libc::SIGKILL) || status.code().is_some_and(|c| c != 0), "{status:?}");
    cgroup.remove().expect("remove");
    manager.remove_parents().expect("remove_parents");
}

#[test]
fn real_cpu_quota_throttles_a_busy_loop() {
    require_root!();
    let (manager, _parent) = fresh_manager(initial_layout());
    let mut cgroup = manager.create("cpu", &limits()).expect("create");
    let mut child = Gated::start("while :; do :; done");
    cgroup.add_process(child.pid()).expect("add_process");
    child.release();
    let started = Instant::now();
    wait_for("throttling", Duration::from_secs(30), || {
        cgroup.stats().is_ok_and(|s| s.cpu.nr_throttled >= 3 && started.elapsed() >= Duration::from_millis(800))
    });
    let elapsed = started.elapsed();
    let stats = cgroup.stats().expect("stats");
    eprintln!("cpu after {elapsed:?}: {stats:?}");
    // 10% of one CPU: allow generous slack for the period in flight, never near 100%.
    let allowed_us = u64::try_from(elapsed.as_micros() / 4).unwrap_or(u64::MAX) + 100_000;
    assert!(stats.cpu.usage_usec <= allowed_us, "used {} us in {elapsed:?}", stats.cpu.usage_usec);
    assert!(stats.cpu.throttled_usec > 0, "{stats:?}");
    cgroup.kill().expect("kill");
    assert_eq!(child.wait_status(Duration::from_secs(5)).signal(), Some(libc::SIGKILL));
    cgroup.remove().expect("remove");
    manager.remove_parents().expect("remove_parents");
}

#[test]
fn real_v1_freezer_kill_without_the_unified_hierarchy() {
    require_root!();
    let CgroupLayout::Hybrid { v1, .. } = initial_layout() else {
        eprintln!("SKIPPED: pure v2 host has no v1 freezer");
        return;
    };
    if !v1.contains_key("freezer") {
        eprintln!("SKIPPED: no v1 freezer hierarchy");
        return;
    }
    let (manager, _parent) = fresh_manager(CgroupLayout::Hybrid { v1, unified: None });
    let mut cgroup = manager.create("freezer", &limits()).expect("create");
    assert_eq!(cgroup.enforcement().expect("enforcement").kill, super::KillMethod::V1FreezerAndSignal);
    let mut child = Gated::start("sleep 1000 & sleep 1000 & while :; do sleep 1 & wait; done");
    cgroup.add_process(child.pid()).expect("add_process");
    child.release();
    let dir = cgroup.paths()[0].clone();
    wait_for("members", Duration::from_secs(10), || procs_in(&dir).len() >= 3);
    cgroup.kill().expect("kill");
    assert!(cgroup.is_empty().expect("is_empty"));
    let freezer_state = cgroup.paths().into_iter().map(|d| d.join("freezer.state")).find(|p| p.exists());
    assert_eq!(read_trimmed(freezer_state.expect("freezer.state")), "THAWED");
    assert_eq!(child.wait_status(Duration::from_secs(5)).signal(), Some(libc::SIGKILL));
    cgroup.remove().expect("remove");
    manager.remove_parents().expect("remove_parents");
}

#[test]
fn real_orphans_of_a_crashed_run_are_killed_and_removed() {
    require_root!();
    let layout = initial_layout();
    let (crashed, parent) = fresh_manager(layout.clone());
    let cgroup = crashed.create("orphan", &limits()).expect("create");
    let mut child = Gated::start("sleep 1000");
    cgroup.add_process(child.pid()).expect("add_process");
    child.release();
    let paths = cgroup.paths();
    std::mem::forget(cgroup); // the crash: no kill, no removal

    let restarted = manager_for(layout, &parent);
    assert_eq!(restarted.cleanup_orphans().expect("cleanup"), vec!["orphan".to_owned()]);
    assert_eq!(child.wait_status(Duration::from_secs(5)).signal(), Some(libc::SIGKILL));
    for dir in &paths {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    assert!(crashed.remove_parents().expect("remove_parents").is_empty());
}
