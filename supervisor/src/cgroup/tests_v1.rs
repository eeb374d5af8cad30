//! The manager on a fake hybrid host (v1 controllers + unified v2 mount).

use super::enforcement::{CgroupVersion, HierarchyKind, KillMethod, SwapEnforcement};
use super::fake::{FakeCgroupFs, HybridOpts, Op, OWN_PID};
use super::v1::{self, V1Dirs};
use super::{CgroupError, CgroupLayout, CgroupManager, Limits};

const INST: &str = "plug-1";

/// Adds a cpuset hierarchy (as on the real host) that instances must never touch.
fn with_cpuset(fake: &FakeCgroupFs, layout: CgroupLayout) -> CgroupLayout {
    let CgroupLayout::Hybrid { mut v1, unified } = layout else { return layout };
    std::fs::create_dir_all(fake.path("cpuset")).unwrap();
    v1.insert("cpuset".into(), super::CgroupMount { mount: fake.path("cpuset"), own_path: "/".into() });
    CgroupLayout::Hybrid { v1, unified }
}

fn limits() -> Limits {
    Limits { memory_max_bytes: 64 << 20, swap_max_bytes: 0, cpu_quota_us: 10_000, cpu_period_us: 100_000, pids_max: 64 }
}

fn setup(opts: HybridOpts) -> (FakeCgroupFs, CgroupManager) {
    let (fake, layout) = FakeCgroupFs::hybrid(opts);
    let layout = with_cpuset(&fake, layout);
    let manager = CgroupManager::new(layout, "wfsandbox", Box::new(fake.clone())).unwrap();
    (fake, manager)
}

/// Instance directories relative to the fake root, in the order the manager uses them.
fn instance_dirs(with_freezer: bool, with_unified: bool) -> Vec<String> {
    let mut dirs = vec![format!("memory/user/me/wfsandbox/{INST}"), format!("cpu,cpuacct/wfsandbox/{INST}")];
    dirs.push(format!("pids/wfsandbox/{INST}"));
    if with_freezer {
        dirs.push(format!("freezer/wfsandbox/{INST}"));
    }
    if with_unified {
        dirs.push(format!("unified/wfsandbox/{INST}"));
    }
    dirs
}

#[test]
fn create_writes_exactly_these_files_in_this_order() {
    let (fake, manager) = setup(HybridOpts::default());
    let _cgroup = manager.create(INST, &limits()).unwrap();
    let m = format!("memory/user/me/wfsandbox/{INST}");
    let c = format!("cpu,cpuacct/wfsandbox/{INST}");
    let p = format!("pids/wfsandbox/{INST}");
    let expected: Vec<(String, String)> = vec![
        (format!("{m}/memory.limit_in_bytes"), "67108864".into()),
        (format!("{m}/memory.memsw.limit_in_bytes"), "67108864".into()),
        (format!("{c}/cpu.cfs_period_us"), "100000".into()),
        (format!("{c}/cpu.cfs_quota_us"), "10000".into()),
        (format!("{p}/pids.max"), "64".into()),
    ];
    assert_eq!(fake.writes(), expected);
    assert_eq!(fake.read_rel(&format!("{m}/memory.memsw.limit_in_bytes")), "67108864");
}

#[test]
fn directories_are_created_only_under_our_own_cgroup_of_each_hierarchy() {
    let (fake, manager) = setup(HybridOpts::default());
    let cgroup = manager.create(INST, &limits()).unwrap();
    let mkdirs: Vec<String> = fake
        .ops()
        .into_iter()
        .filter_map(|op| match op {
            Op::Mkdir(p) => Some(fake.rel(&p)),
            _ => None,
        })
        .collect();
    let mut expected: Vec<String> =
        instance_dirs(true, true).iter().map(|d| d.trim_end_matches(&format!("/{INST}")).to_owned()).collect();
    expected.extend(instance_dirs(true, true));
    assert_eq!(mkdirs, expected);
    let own = ["memory/user/me/", "cpu,cpuacct/", "pids/", "freezer/", "unified/"];
    for dir in &mkdirs {
        assert!(own.iter().any(|o| dir.starts_with(o)), "{dir} is outside our own cgroups");
    }
    let paths: Vec<String> = cgroup.paths().iter().map(|p| fake.rel(p)).collect();
    assert_eq!(paths, instance_dirs(true, true), "cpu and cpuacct share one directory");
    assert_eq!(
        cgroup.clone_into_dir().map(|p| fake.rel(p)),
        Some(format!("unified/wfsandbox/{INST}")),
        "the controller-less unified directory is the CLONE_INTO_CGROUP target"
    );
    let tasks: Vec<String> = cgroup.v1_tasks_files().iter().map(|p| fake.rel(p)).collect();
    let v1_dirs: Vec<String> =
        instance_dirs(true, true).into_iter().filter(|d| !d.starts_with("unified/")).map(|d| d + "/tasks").collect();
    assert_eq!(tasks, v1_dirs, "one tasks file per distinct v1 directory");
}

#[test]
fn memsw_goes_after_the_limit_when_lowering_and_before_it_when_raising() {
    let (fake, _manager) = setup(HybridOpts::default());
    fake.precreate("memory/x");
    fake.precreate("cpu,cpuacct/x");
    fake.precreate("pids/x");
    let dirs = V1Dirs {
        memory: fake.path("memory/x"),
        cpu: fake.path("cpu,cpuacct/x"),
        cpuacct: fake.path("cpu,cpuacct/x"),
        pids: fake.path("pids/x"),
        freezer: None,
    };
    let memory_writes = |fake: &FakeCgroupFs| -> Vec<String> {
        fake.writes().into_iter().filter(|(p, _)| p.starts_with("memory/")).map(|(p, _)| p).collect()
    };
    let at_32m = Limits { memory_max_bytes: 32 << 20, ..limits() };
    v1::apply_limits(&fake, &dirs, &at_32m, 4096).unwrap();
    assert_eq!(memory_writes(&fake), vec!["memory/x/memory.limit_in_bytes", "memory/x/memory.memsw.limit_in_bytes"]);
    fake.clear_ops();
    v1::apply_limits(&fake, &dirs, &limits(), 4096).unwrap();
    assert_eq!(
        memory_writes(&fake),
        vec!["memory/x/memory.memsw.limit_in_bytes", "memory/x/memory.limit_in_bytes"],
        "raising the limit above memsw needs memsw first"
    );
    assert_eq!(fake.read_rel("memory/x/memory.limit_in_bytes"), "67108864");
    assert_eq!(fake.read_rel("memory/x/memory.memsw.limit_in_bytes"), "67108864");
    fake.clear_ops();
    let with_swap = Limits { swap_max_bytes: 1 << 20, ..at_32m };
    let swap = v1::apply_limits(&fake, &dirs, &with_swap, 4096).unwrap();
    assert_eq!(swap, SwapEnforcement::Limited { max_bytes: 1 << 20 });
    assert_eq!(fake.read_rel("memory/x/memory.memsw.limit_in_bytes"), (33u64 << 20).to_string());
}

#[test]
fn without_swap_accounting_swap_is_reported_unaccounted_never_skipped_silently() {
    let (fake, manager) = setup(HybridOpts { memsw: false, ..HybridOpts::default() });
    let cgroup = manager.create(INST, &limits()).unwrap();
    assert!(!fake.writes().iter().any(|(p, _)| p.contains("memsw")));
    let enforcement = cgroup.enforcement().unwrap();
    assert_eq!(enforcement.swap, SwapEnforcement::Unaccounted);
    assert_eq!(enforcement.memory_max_bytes, Some(64 << 20));
}

#[test]
fn enforcement_is_read_back_from_the_kernel_files() {
    let (fake, manager) = setup(HybridOpts::default());
    let cgroup = manager.create(INST, &Limits { memory_max_bytes: (64 << 20) + 100, ..limits() }).unwrap();
    let e = cgroup.enforcement().unwrap();
    assert_eq!(e.version, CgroupVersion::V1Hybrid);
    assert_eq!(e.memory_max_bytes, Some(64 << 20), "page-rounded by the kernel");
    assert_eq!(e.swap, SwapEnforcement::Limited { max_bytes: 0 });
    assert_eq!((e.cpu_quota_us, e.cpu_period_us, e.pids_max), (Some(10_000), 100_000, Some(64)));
    assert_eq!(e.kill, KillMethod::CgroupKill);
    assert!(!e.oom_group);
    assert!(e.all_limits_enforced());
    let cpu = e.hierarchies.iter().find(|h| h.controllers.contains(&"cpu".to_owned())).unwrap();
    assert_eq!(cpu.controllers, vec!["cpu", "cpuacct"]);
    assert_eq!(e.hierarchies.last().map(|h| h.kind), Some(HierarchyKind::V2));
    // Someone lifts the pids limit behind our back: the report must show it.
    std::fs::write(fake.path(&format!("pids/wfsandbox/{INST}/pids.max")), "max").unwrap();
    let e = cgroup.enforcement().unwrap();
    assert_eq!(e.pids_max, None);
    assert!(!e.all_limits_enforced());
}

#[test]
fn a_missing_required_controller_is_named_and_nothing_is_created() {
    for missing in ["memory", "cpu", "cpuacct", "pids"] {
        let (fake, layout) = FakeCgroupFs::hybrid(HybridOpts::default());
        let CgroupLayout::Hybrid { mut v1, unified } = layout else { panic!("hybrid") };
        v1.remove(missing);
        let manager =
            CgroupManager::new(CgroupLayout::Hybrid { v1, unified }, "wfsandbox", Box::new(fake.clone())).unwrap();
        match manager.create(INST, &limits()) {
            Err(CgroupError::ControllerMissing { controller, .. }) => assert_eq!(controller, missing),
            other => panic!("{missing}: {other:?}"),
        }
        assert!(fake.ops().is_empty(), "{missing}: {:?}", fake.ops());
    }
}

#[test]
fn no_way_to_kill_is_an_error_and_the_instance_is_rolled_back() {
    let (fake, manager) = setup(HybridOpts { freezer: false, unified: false, ..HybridOpts::default() });
    match manager.create(INST, &limits()) {
        Err(CgroupError::ControllerMissing { controller, .. }) => assert_eq!(controller, "freezer"),
        other => panic!("{other:?}"),
    }
    for dir in instance_dirs(false, false) {
        assert!(!fake.path(&dir).exists(), "{dir} left behind");
    }
    assert!(manager.take_errors().is_empty());
}

#[test]
fn a_limit_the_kernel_does_not_hold_fails_creation_and_rolls_back() {
    let (fake, manager) = setup(HybridOpts::default());
    fake.hold(&format!("pids/wfsandbox/{INST}/pids.max"), "max");
    match manager.create(INST, &limits()) {
        Err(CgroupError::Mismatch { written, read, .. }) => {
            assert_eq!((written.as_str(), read.as_str()), ("64", "max"))
        }
        other => panic!("{other:?}"),
    }
    for dir in instance_dirs(true, true) {
        assert!(!fake.path(&dir).exists(), "{dir} left behind");
    }
}

#[test]
fn a_failed_write_names_step_path_and_errno() {
    let (fake, manager) = setup(HybridOpts::default());
    fake.fail_write(&format!("cpu,cpuacct/wfsandbox/{INST}/cpu.cfs_quota_us"), libc::EINVAL);
    let err = manager.create(INST, &limits()).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EINVAL));
    let text = err.to_string();
    assert!(text.contains("write limit") && text.contains("cpu.cfs_quota_us"), "{text}");
}

#[test]
fn an_existing_instance_is_refused_and_left_untouched() {
    let (fake, manager) = setup(HybridOpts::default());
    fake.precreate("pids/wfsandbox");
    fake.precreate(&format!("pids/wfsandbox/{INST}"));
    assert!(matches!(manager.create(INST, &limits()), Err(CgroupError::AlreadyExists { .. })));
    assert!(fake.path(&format!("pids/wfsandbox/{INST}")).exists(), "not ours to remove");
    assert!(!fake.path(&format!("memory/user/me/wfsandbox/{INST}")).exists(), "ours: rolled back");
    assert!(!fake.path(&format!("cpu,cpuacct/wfsandbox/{INST}")).exists(), "ours: rolled back");
}

#[test]
fn bad_names_and_bad_limits_touch_nothing() {
    let (fake, manager) = setup(HybridOpts::default());
    for name in ["", "../x", "a/b", ".hidden", "-x", "a b", "x\0", &"a".repeat(101)] {
        assert!(matches!(manager.create(name, &limits()), Err(CgroupError::InvalidName { .. })), "{name:?}");
    }
    assert!(matches!(
        manager.create(INST, &Limits { pids_max: 0, ..limits() }),
        Err(CgroupError::InvalidLimit { name: "pids_max", .. })
    ));
    assert!(fake.ops().is_empty());
    let (fake2, layout) = FakeCgroupFs::hybrid(HybridOpts::default());
    for parent in ["", "../up", "/a/../b", "/", "a/b"] {
        assert!(CgroupManager::new(layout.clone(), parent, Box::new(fake2.clone())).is_err(), "{parent:?}");
    }
}

#[test]
fn add_process_writes_cgroup_procs_in_every_hierarchy() {
    let (fake, manager) = setup(HybridOpts::default());
    let cgroup = manager.create(INST, &limits()).unwrap();
    fake.clear_ops();
    cgroup.add_process(500).unwrap();
    let expected: Vec<(String, String)> =
        instance_dirs(true, true).into_iter().map(|d| (format!("{d}/cgroup.procs"), "500".to_owned())).collect();
    assert_eq!(fake.writes(), expected);
    assert!(!cgroup.is_empty().unwrap());
    for bad in [0, OWN_PID, u32::MAX] {
        assert!(matches!(cgroup.add_process(bad), Err(CgroupError::UnsafePid { .. })), "{bad}");
    }
}

#[test]
fn kill_uses_cgroup_kill_on_the_unified_hierarchy_when_present() {
    let (fake, manager) = setup(HybridOpts::default());
    let cgroup = manager.create(INST, &limits()).unwrap();
    cgroup.add_process(500).unwrap();
    cgroup.add_process(501).unwrap();
    fake.clear_ops();
    cgroup.kill().unwrap();
    assert_eq!(fake.ops(), vec![Op::Write(fake.path(&format!("unified/wfsandbox/{INST}/cgroup.kill")), "1".into())]);
    assert!(cgroup.is_empty().unwrap());
}

#[test]
fn without_cgroup_kill_the_v1_freezer_freezes_kills_every_pid_then_thaws() {
    let (fake, manager) = setup(HybridOpts { cgroup_kill: false, ..HybridOpts::default() });
    let cgroup = manager.create(INST, &limits()).unwrap();
    assert_eq!(cgroup.enforcement().unwrap().kill, KillMethod::V1FreezerAndSignal);
    cgroup.add_process(500).unwrap();
    cgroup.add_process(501).unwrap();
    fake.clear_ops();
    cgroup.kill().unwrap();
    let state = fake.path(&format!("freezer/wfsandbox/{INST}/freezer.state"));
    assert_eq!(
        fake.ops(),
        vec![
            Op::Write(state.clone(), "FROZEN".into()),
            Op::Kill(500),
            Op::Kill(501),
            Op::Write(state, "THAWED".into())
        ]
    );
    assert!(cgroup.is_empty().unwrap(), "frozen members die once thawed");
}

#[test]
fn without_cgroup_kill_and_freezer_the_v2_freeze_is_used() {
    let (fake, manager) = setup(HybridOpts { cgroup_kill: false, freezer: false, ..HybridOpts::default() });
    let cgroup = manager.create(INST, &limits()).unwrap();
    cgroup.add_process(600).unwrap();
    fake.clear_ops();
    cgroup.kill().unwrap();
    let freeze = fake.path(&format!("unified/wfsandbox/{INST}/cgroup.freeze"));
    assert_eq!(fake.ops(), vec![Op::Write(freeze.clone(), "1".into()), Op::Kill(600), Op::Write(freeze, "0".into())]);
    assert!(cgroup.is_empty().unwrap());
}

#[test]
fn remove_goes_deepest_first_retries_ebusy_and_refuses_while_populated() {
    let (fake, manager) = setup(HybridOpts::default());
    let mut cgroup = manager.create(INST, &limits()).unwrap();
    let memory = format!("memory/user/me/wfsandbox/{INST}");
    fake.precreate(&format!("{memory}/sub"));
    cgroup.add_process(700).unwrap();
    assert!(matches!(cgroup.remove(), Err(CgroupError::StillPopulated { .. })));
    assert!(!fake.ops().iter().any(|op| matches!(op, Op::Rmdir(_))));
    cgroup.kill().unwrap();
    fake.busy_rmdir(&format!("pids/wfsandbox/{INST}"), 3);
    fake.clear_ops();
    cgroup.remove().unwrap();
    let rmdirs: Vec<String> = fake
        .ops()
        .into_iter()
        .filter_map(|op| match op {
            Op::Rmdir(p) => Some(fake.rel(&p)),
            _ => None,
        })
        .collect();
    let pids = format!("pids/wfsandbox/{INST}");
    let mut expected = vec![format!("{memory}/sub"), memory, format!("cpu,cpuacct/wfsandbox/{INST}")];
    expected.extend([pids.clone(), pids.clone(), pids.clone(), pids]);
    expected.extend([format!("freezer/wfsandbox/{INST}"), format!("unified/wfsandbox/{INST}")]);
    assert_eq!(rmdirs, expected);
    for dir in instance_dirs(true, true) {
        assert!(!fake.path(&dir).exists(), "{dir}");
    }
    fake.clear_ops();
    cgroup.remove().unwrap();
    assert!(fake.ops().is_empty(), "second remove is a no-op");
}

#[test]
fn dropping_an_unremoved_instance_kills_and_removes_it() {
    let (fake, manager) = setup(HybridOpts::default());
    let cgroup = manager.create(INST, &limits()).unwrap();
    cgroup.add_process(800).unwrap();
    drop(cgroup);
    for dir in instance_dirs(true, true) {
        assert!(!fake.path(&dir).exists(), "{dir}");
    }
    assert!(manager.take_errors().is_empty());
}

#[test]
fn a_failing_drop_stores_its_errors_for_the_caller() {
    let (fake, manager) = setup(HybridOpts::default());
    let cgroup = manager.create(INST, &limits()).unwrap();
    cgroup.add_process(801).unwrap();
    fake.fail_write(&format!("unified/wfsandbox/{INST}/cgroup.kill"), libc::EACCES);
    drop(cgroup);
    let errors = manager.take_errors();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].errno(), Some(libc::EACCES));
    assert!(matches!(errors[1], CgroupError::StillPopulated { .. }));
    assert!(manager.take_errors().is_empty(), "taken once");
}

#[test]
fn stats_come_from_the_v1_files_in_microseconds() {
    let (fake, manager) = setup(HybridOpts::default());
    let cgroup = manager.create(INST, &limits()).unwrap();
    let m = fake.path(&format!("memory/user/me/wfsandbox/{INST}"));
    let c = fake.path(&format!("cpu,cpuacct/wfsandbox/{INST}"));
    let p = fake.path(&format!("pids/wfsandbox/{INST}"));
    std::fs::write(m.join("memory.usage_in_bytes"), "1000\n").unwrap();
    std::fs::write(m.join("memory.max_usage_in_bytes"), "2000\n").unwrap();
    std::fs::write(m.join("memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n").unwrap();
    std::fs::write(m.join("memory.failcnt"), "5\n").unwrap();
    std::fs::write(m.join("memory.memsw.failcnt"), "2\n").unwrap();
    std::fs::write(c.join("cpuacct.usage"), "3000000\n").unwrap();
    std::fs::write(c.join("cpu.stat"), "nr_periods 9\nnr_throttled 4\nthrottled_time 4000000\n").unwrap();
    std::fs::write(p.join("pids.current"), "3\n").unwrap();
    std::fs::write(p.join("pids.events"), "max 1\n").unwrap();
    let s = cgroup.stats().unwrap();
    assert_eq!(
        (s.memory.current, s.memory.peak, s.memory.limit, s.memory.oom_kills, s.memory.limit_hits, s.memory.swap_max),
        (1000, Some(2000), Some(64 << 20), 2, 7, Some(0))
    );
    assert_eq!((s.cpu.usage_usec, s.cpu.nr_periods, s.cpu.nr_throttled, s.cpu.throttled_usec), (3000, 9, 4, 4000));
    assert_eq!((s.pids.current, s.pids.max, s.pids.max_events), (3, Some(64), 1));
}

#[test]
fn orphans_are_killed_and_removed_but_live_instances_are_not() {
    let (fake, manager) = setup(HybridOpts::default());
    let live = manager.create("live-1", &limits()).unwrap();
    live.add_process(900).unwrap();
    for dir in ["memory/user/me/wfsandbox/old-1", "cpu,cpuacct/wfsandbox/old-1", "unified/wfsandbox/old-1"] {
        fake.precreate(dir);
    }
    fake.set_procs("memory/user/me/wfsandbox/old-1", &[901]);
    fake.set_procs("unified/wfsandbox/old-1", &[901]);
    fake.clear_ops();
    assert_eq!(manager.cleanup_orphans().unwrap(), vec!["old-1".to_owned()]);
    assert!(fake.ops().contains(&Op::Write(fake.path("unified/wfsandbox/old-1/cgroup.kill"), "1".into())));
    for dir in ["memory/user/me/wfsandbox/old-1", "cpu,cpuacct/wfsandbox/old-1", "unified/wfsandbox/old-1"] {
        assert!(!fake.path(dir).exists(), "{dir}");
    }
    assert!(!live.is_empty().unwrap(), "the live instance was not touched");
    assert!(fake.path("memory/user/me/wfsandbox/live-1").exists());
    assert!(manager.take_errors().is_empty());
}

#[test]
fn parents_under_our_own_cgroup_are_removed_when_unused_whoever_created_them() {
    let (fake, manager) = setup(HybridOpts::default());
    // Left by an earlier run of ours that could not remove it while another run used it.
    fake.precreate("pids/wfsandbox");
    let mut one = manager.create("one", &limits()).unwrap();
    let mut two = manager.create("two", &limits()).unwrap();
    one.remove().unwrap();
    let kept = manager.remove_parents().unwrap();
    assert_eq!(kept.len(), 5, "every parent still holds `two`: {kept:?}");
    two.remove().unwrap();
    assert!(manager.remove_parents().unwrap().is_empty());
    for parent in [
        "memory/user/me/wfsandbox",
        "cpu,cpuacct/wfsandbox",
        "pids/wfsandbox",
        "freezer/wfsandbox",
        "unified/wfsandbox",
    ] {
        assert!(!fake.path(parent).exists(), "{parent}");
    }
    assert!(fake.path("memory/user/me").exists(), "our own cgroup stays");
}

#[test]
fn a_configured_absolute_parent_is_used_in_every_hierarchy() {
    let (fake, layout) = FakeCgroupFs::hybrid(HybridOpts::default());
    let manager = CgroupManager::new(layout.clone(), "/wf.slice", Box::new(fake.clone())).unwrap();
    let cgroup = manager.create(INST, &limits()).unwrap();
    let paths: Vec<String> = cgroup.paths().iter().map(|p| fake.rel(p)).collect();
    assert_eq!(paths[0], format!("memory/wf.slice/{INST}"));
    assert_eq!(paths[1], format!("cpu,cpuacct/wf.slice/{INST}"));
    let deep = CgroupManager::new(layout, "/a/b", Box::new(fake.clone())).unwrap();
    let err = deep.create(INST, &limits()).unwrap_err();
    assert_eq!(err.errno(), Some(libc::ENOENT), "ancestors of a configured parent are never created: {err}");
    assert!(!fake.path("memory/a").exists());
}

#[test]
fn prepare_creates_the_parents_in_every_hierarchy_only() {
    let (fake, manager) = setup(HybridOpts::default());
    manager.prepare().unwrap();
    let mkdirs: Vec<String> = fake
        .ops()
        .into_iter()
        .filter_map(|op| match op {
            Op::Mkdir(p) => Some(fake.rel(&p)),
            _ => None,
        })
        .collect();
    let expected = [
        "cpu,cpuacct/wfsandbox",
        "freezer/wfsandbox",
        "memory/user/me/wfsandbox",
        "pids/wfsandbox",
        "unified/wfsandbox",
    ];
    assert_eq!(mkdirs, expected);
    assert!(fake.writes().is_empty());
    assert!(manager.remove_parents().unwrap().is_empty());
    assert!(!fake.path("memory/user/me/wfsandbox").exists());
    assert_eq!(std::fs::read_dir(fake.path("cpuset")).unwrap().count(), 0, "cpuset untouched");
}

#[test]
fn manager_and_instances_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CgroupManager>();
    assert_send_sync::<super::PluginCgroup>();
}
