//! The manager on a fake pure cgroup v2 host.

use super::enforcement::{CgroupVersion, KillMethod, SwapEnforcement};
use super::fake::{FakeCgroupFs, Op, OWN_PID};
use super::{CgroupError, CgroupLayout, CgroupManager, Limits};

const INST: &str = "plug-1";

fn limits() -> Limits {
    Limits { memory_max_bytes: 64 << 20, swap_max_bytes: 0, cpu_quota_us: 10_000, cpu_period_us: 100_000, pids_max: 64 }
}

fn manager(fake: &FakeCgroupFs, layout: CgroupLayout) -> CgroupManager {
    CgroupManager::new(layout, "wfsandbox", Box::new(fake.clone())).unwrap()
}

fn w(fake: &FakeCgroupFs, rel: &str, value: &str) -> Op {
    Op::Write(fake.path(rel), value.to_owned())
}

#[test]
fn in_the_root_cgroup_nothing_moves_and_the_instance_gets_every_limit() {
    let (fake, layout) = FakeCgroupFs::v2("/", &[1, OWN_PID], true);
    let m = manager(&fake, layout);
    let cgroup = m.create(INST, &limits()).unwrap();
    let i = format!("cg2/wfsandbox/{INST}");
    assert_eq!(
        fake.ops(),
        vec![
            Op::Mkdir(fake.path("cg2/wfsandbox")),
            w(&fake, "cg2/wfsandbox/cgroup.subtree_control", "+cpu"),
            w(&fake, "cg2/wfsandbox/cgroup.subtree_control", "+memory"),
            w(&fake, "cg2/wfsandbox/cgroup.subtree_control", "+pids"),
            Op::Mkdir(fake.path(&i)),
            w(&fake, &format!("{i}/memory.max"), "67108864"),
            w(&fake, &format!("{i}/memory.swap.max"), "0"),
            w(&fake, &format!("{i}/cpu.max"), "10000 100000"),
            w(&fake, &format!("{i}/pids.max"), "64"),
            w(&fake, &format!("{i}/memory.oom.group"), "1"),
        ]
    );
    assert_eq!(fake.read_rel(&format!("{i}/cpu.max")), "10000 100000");
    assert_eq!(fake.read_rel("cg2/cgroup.procs"), format!("1\n{OWN_PID}"), "root members untouched");
    assert_eq!(cgroup.clone_into_dir(), Some(fake.path(&i).as_path()));
}

#[test]
fn in_a_leaf_we_move_only_ourselves_into_our_own_leaf_then_enable_controllers() {
    let (fake, layout) = FakeCgroupFs::v2("/svc/app", &[OWN_PID], true);
    let m = manager(&fake, layout);
    let _cgroup = m.create(INST, &limits()).unwrap();
    let ops = fake.ops();
    assert_eq!(
        ops[..5].to_vec(),
        vec![
            Op::Mkdir(fake.path("cg2/svc/app/wfsandbox-supervisor")),
            w(&fake, "cg2/svc/app/wfsandbox-supervisor/cgroup.procs", &OWN_PID.to_string()),
            w(&fake, "cg2/svc/app/cgroup.subtree_control", "+cpu"),
            w(&fake, "cg2/svc/app/cgroup.subtree_control", "+memory"),
            w(&fake, "cg2/svc/app/cgroup.subtree_control", "+pids"),
        ]
    );
    assert_eq!(ops[5], Op::Mkdir(fake.path("cg2/svc/app/wfsandbox")));
    assert_eq!(fake.read_rel("cg2/svc/app/cgroup.procs"), "");
    assert_eq!(fake.read_rel("cg2/svc/app/wfsandbox-supervisor/cgroup.procs"), OWN_PID.to_string());
    assert_eq!(fake.read_rel("cg2/svc/app/cgroup.subtree_control"), "cpu memory pids");
    assert_eq!(fake.read_rel("cg2/svc/app/wfsandbox/cgroup.subtree_control"), "cpu memory pids");
    for op in &ops {
        let path = match op {
            Op::Write(p, _) | Op::Mkdir(p) | Op::Rmdir(p) => p,
            Op::Kill(pid) => panic!("signalled {pid}"),
        };
        assert!(path.starts_with(fake.path("cg2/svc/app")), "{} is outside our own cgroup", path.display());
    }
    fake.clear_ops();
    let _second = m.create("plug-2", &limits()).unwrap();
    let again: Vec<(String, String)> = fake.writes().into_iter().filter(|(p, _)| !p.contains("plug-2")).collect();
    assert!(again.is_empty(), "delegation is done once: {again:?}");
}

#[test]
fn a_foreign_process_in_our_cgroup_stops_us_before_anything_is_written() {
    let (fake, layout) = FakeCgroupFs::v2("/svc/app", &[OWN_PID, 77], true);
    let m = manager(&fake, layout);
    match m.create(INST, &limits()) {
        Err(CgroupError::OwnCgroupShared { pids, .. }) => assert_eq!(pids, vec![77]),
        other => panic!("{other:?}"),
    }
    assert!(fake.ops().is_empty(), "{:?}", fake.ops());
}

#[test]
fn a_controller_not_delegated_to_us_is_named() {
    let (fake, layout) = FakeCgroupFs::v2("/svc/app", &[OWN_PID], true);
    std::fs::write(fake.path("cg2/svc/app/cgroup.controllers"), "cpu memory\n").unwrap();
    match manager(&fake, layout).create(INST, &limits()) {
        Err(CgroupError::ControllerMissing { controller, detail }) => {
            assert_eq!(controller, "pids");
            assert!(detail.contains("not delegated"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert!(fake.ops().is_empty());
}

#[test]
fn after_moving_into_our_leaf_a_new_manager_still_uses_the_leafs_parent() {
    let (fake, layout) = FakeCgroupFs::v2("/svc/app", &[OWN_PID], true);
    let _first = manager(&fake, layout).create(INST, &limits()).unwrap();
    let (mount, own_path) = (fake.path("cg2"), "/svc/app/wfsandbox-supervisor".into());
    let again = manager(&fake, CgroupLayout::V2 { mount, own_path });
    let cgroup = again.create("plug-2", &limits()).unwrap();
    assert_eq!(cgroup.paths(), vec![fake.path("cg2/svc/app/wfsandbox/plug-2")]);
}

#[test]
fn without_swap_accounting_swap_is_reported_unaccounted() {
    let (fake, layout) = FakeCgroupFs::v2("/", &[], false);
    let cgroup = manager(&fake, layout).create(INST, &limits()).unwrap();
    assert!(!fake.writes().iter().any(|(p, _)| p.ends_with("memory.swap.max")));
    assert_eq!(cgroup.enforcement().unwrap().swap, SwapEnforcement::Unaccounted);
}

#[test]
fn enforcement_reads_the_v2_files() {
    let (fake, layout) = FakeCgroupFs::v2("/", &[], true);
    let cgroup = manager(&fake, layout).create(INST, &limits()).unwrap();
    let e = cgroup.enforcement().unwrap();
    assert_eq!(e.version, CgroupVersion::V2);
    assert_eq!(e.memory_max_bytes, Some(64 << 20));
    assert_eq!(e.swap, SwapEnforcement::Limited { max_bytes: 0 });
    assert_eq!((e.cpu_quota_us, e.cpu_period_us, e.pids_max), (Some(10_000), 100_000, Some(64)));
    assert!(e.oom_group);
    assert_eq!(e.kill, KillMethod::CgroupKill);
    std::fs::write(fake.path(&format!("cg2/wfsandbox/{INST}/cpu.max")), "max 100000").unwrap();
    assert_eq!(cgroup.enforcement().unwrap().cpu_quota_us, None);
}

#[test]
fn kill_writes_cgroup_kill() {
    let (fake, layout) = FakeCgroupFs::v2("/", &[], true);
    let cgroup = manager(&fake, layout).create(INST, &limits()).unwrap();
    cgroup.add_process(500).unwrap();
    fake.clear_ops();
    cgroup.kill().unwrap();
    assert_eq!(fake.ops(), vec![w(&fake, &format!("cg2/wfsandbox/{INST}/cgroup.kill"), "1")]);
    assert!(cgroup.is_empty().unwrap());
}

#[test]
fn before_linux_5_14_kill_freezes_signals_every_member_and_thaws() {
    let (fake, layout) = FakeCgroupFs::v2_with("/", &[], true, false);
    let cgroup = manager(&fake, layout).create(INST, &limits()).unwrap();
    assert_eq!(cgroup.enforcement().unwrap().kill, KillMethod::V2FreezeAndSignal);
    cgroup.add_process(500).unwrap();
    cgroup.add_process(501).unwrap();
    fake.clear_ops();
    cgroup.kill().unwrap();
    let freeze = format!("cg2/wfsandbox/{INST}/cgroup.freeze");
    assert_eq!(fake.ops(), vec![w(&fake, &freeze, "1"), Op::Kill(500), Op::Kill(501), w(&fake, &freeze, "0")]);
    assert!(cgroup.is_empty().unwrap());
}

#[test]
fn stats_come_from_the_v2_files() {
    let (fake, layout) = FakeCgroupFs::v2("/", &[], true);
    let cgroup = manager(&fake, layout).create(INST, &limits()).unwrap();
    let d = fake.path(&format!("cg2/wfsandbox/{INST}"));
    std::fs::write(d.join("memory.current"), "1000\n").unwrap();
    std::fs::write(d.join("memory.peak"), "2000\n").unwrap();
    std::fs::write(d.join("memory.events"), "low 0\nhigh 0\nmax 6\noom 1\noom_kill 1\noom_group_kill 1\n").unwrap();
    std::fs::write(d.join("cpu.stat"), "usage_usec 3000\nnr_periods 9\nnr_throttled 4\nthrottled_usec 4000\n").unwrap();
    std::fs::write(d.join("pids.current"), "3\n").unwrap();
    std::fs::write(d.join("pids.events"), "max 2\n").unwrap();
    let s = cgroup.stats().unwrap();
    assert_eq!(
        (s.memory.current, s.memory.peak, s.memory.limit, s.memory.oom_kills, s.memory.limit_hits, s.memory.swap_max),
        (1000, Some(2000), Some(64 << 20), 1, 6, Some(0))
    );
    assert_eq!((s.cpu.usage_usec, s.cpu.nr_periods, s.cpu.nr_throttled, s.cpu.throttled_usec), (3000, 9, 4, 4000));
    assert_eq!((s.pids.current, s.pids.max, s.pids.max_events), (3, Some(64), 2));
    std::fs::remove_file(d.join("memory.peak")).unwrap();
    assert_eq!(cgroup.stats().unwrap().memory.peak, None, "memory.peak is absent before Linux 5.19");
}

#[test]
fn v2_orphans_are_killed_and_removed() {
    let (fake, layout) = FakeCgroupFs::v2("/", &[], true);
    let m = manager(&fake, layout);
    let mut live = m.create(INST, &limits()).unwrap();
    fake.precreate("cg2/wfsandbox/old");
    fake.set_procs("cg2/wfsandbox/old", &[321]);
    assert_eq!(m.cleanup_orphans().unwrap(), vec!["old".to_owned()]);
    assert!(!fake.path("cg2/wfsandbox/old").exists());
    assert!(fake.path(&format!("cg2/wfsandbox/{INST}")).exists());
    live.remove().unwrap();
    assert!(m.remove_parents().unwrap().is_empty());
    assert!(!fake.path("cg2/wfsandbox").exists());
}

#[test]
fn prepare_moves_us_before_the_launcher_exists_so_its_fork_lands_in_our_leaf() {
    let (fake, layout) = FakeCgroupFs::v2("/svc/app", &[OWN_PID], true);
    let m = manager(&fake, layout);
    m.prepare().unwrap();
    assert_eq!(fake.read_rel("cg2/svc/app/wfsandbox-supervisor/cgroup.procs"), OWN_PID.to_string());
    assert!(fake.path("cg2/svc/app/wfsandbox").is_dir());
    assert_eq!(fake.read_rel("cg2/svc/app/wfsandbox/cgroup.subtree_control"), "cpu memory pids");
    // A launcher forked now starts in the leaf, beside us, and creation still works.
    fake.set_procs("cg2/svc/app/wfsandbox-supervisor", &[OWN_PID, 4243]);
    m.create(INST, &limits()).unwrap();
}

#[test]
fn a_launcher_forked_before_prepare_blocks_delegation() {
    let (fake, layout) = FakeCgroupFs::v2("/svc/app", &[OWN_PID, 4243], true);
    match manager(&fake, layout).prepare() {
        Err(CgroupError::OwnCgroupShared { pids, .. }) => assert_eq!(pids, vec![4243]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn in_a_containers_cgroup_namespace_our_root_is_not_the_real_root_so_we_move_into_our_leaf() {
    // Docker/Podman on a v2 host: /proc/self/cgroup says "0::/" and the cgroup2 mount's
    // root is "/", yet that cgroup is a non-root cgroup of the host, bound by the
    // no-internal-process rule (the VM shows EOPNOTSUPP or EBUSY on "+memory" there).
    let (fake, layout) = FakeCgroupFs::v2_in_cgroup_namespace(&[OWN_PID]);
    let m = manager(&fake, layout);
    let cgroup = m.create(INST, &limits()).unwrap();
    let ops = fake.ops();
    assert_eq!(
        ops[..5].to_vec(),
        vec![
            Op::Mkdir(fake.path("cg2/wfsandbox-supervisor")),
            w(&fake, "cg2/wfsandbox-supervisor/cgroup.procs", &OWN_PID.to_string()),
            w(&fake, "cg2/cgroup.subtree_control", "+cpu"),
            w(&fake, "cg2/cgroup.subtree_control", "+memory"),
            w(&fake, "cg2/cgroup.subtree_control", "+pids"),
        ]
    );
    assert_eq!(fake.read_rel("cg2/cgroup.procs"), "");
    assert_eq!(cgroup.paths(), vec![fake.path(&format!("cg2/wfsandbox/{INST}"))]);
}

#[test]
fn in_a_containers_cgroup_namespace_a_foreign_process_stops_us_before_anything_is_written() {
    let (fake, layout) = FakeCgroupFs::v2_in_cgroup_namespace(&[1, OWN_PID]);
    match manager(&fake, layout).create(INST, &limits()) {
        Err(CgroupError::OwnCgroupShared { pids, .. }) => assert_eq!(pids, vec![1]),
        other => panic!("{other:?}"),
    }
    assert!(fake.ops().is_empty(), "{:?}", fake.ops());
}
