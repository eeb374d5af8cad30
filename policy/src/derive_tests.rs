use super::*;
use crate::manifest::{EventPermissions, EventRateRequest, PathGrant};
use crate::security_policy::{AllowedHostPath, HostPathAccess};
use crate::validation::load_manifest;
use std::path::PathBuf;

const EXAMPLE: &str = r#"{"name": "my_plugin", "version": "1.0.0", "description": "Example plugin", "author": "Developer",
 "entry_point": "main.py",
 "permissions": {"events": {"read": ["energy.update"], "write": []},
                 "system": {"network": {"enabled": false},
                            "filesystem": {"enabled": false, "temp_only": true},
                            "ui": {"render": true}},
                 "resources": {"memory": {"max_mb": 64}, "cpu": {"max_percent": 10}}}}"#;

fn dir() -> PathBuf {
    PathBuf::from("/srv/plugins/my_plugin")
}

fn example() -> Manifest {
    load_manifest(EXAMPLE.as_bytes(), &SecurityPolicy::default()).unwrap()
}

fn derive(manifest: &Manifest, policy: &SecurityPolicy) -> SandboxSpec {
    derive_spec(manifest, &dir(), policy).unwrap()
}

fn native() -> Manifest {
    let mut m = example();
    m.entry_point = "bin/plugin".into();
    m
}

#[test]
fn limits_from_the_manifest_carry_manifest_origins() {
    let spec = derive(&example(), &SecurityPolicy::default());
    assert_eq!(spec.cgroup.memory_max_bytes, Sourced::new(64 * MIB, Origin::manifest(MEMORY_POINTER)));
    assert_eq!(spec.cgroup.cpu_quota_us, Sourced::new(10_000, Origin::manifest(CPU_POINTER)));
    assert_eq!(spec.cgroup.cpu_period_us.value, 100_000);
    assert_eq!(spec.cgroup.swap_max_bytes.value, 0);
}

#[test]
fn absent_limits_take_policy_defaults_with_policy_origins() {
    let spec = derive(&example(), &SecurityPolicy::default());
    assert_eq!(spec.cgroup.pids_max, Sourced::new(64, Origin::policy("/sandbox/defaults/pids")));
    assert_eq!(spec.wall_clock_ms, Sourced::new(300_000, Origin::policy("/sandbox/defaults/wall_clock_seconds")));
    let tmp = Sourced::new(64 * MIB, Origin::policy("/sandbox/defaults/tmp_mb"));
    assert!(spec.mounts.contains(&MountSpec::Tmpfs {
        inside: "/tmp".into(),
        size_bytes: tmp.value,
        origin: tmp.origin.clone()
    }));
    let fsize = spec.rlimits.iter().find(|r| r.resource == RlimitResource::Fsize).unwrap();
    assert_eq!((fsize.soft, fsize.hard, &fsize.origin), (tmp.value, tmp.value, &tmp.origin));
    let mut policy = SecurityPolicy::default();
    policy.sandbox.defaults.pids = 100;
    assert_eq!(derive(&example(), &policy).cgroup.pids_max.value, 100);
}

#[test]
fn cpu_quota_is_percent_of_one_cpu_per_period() {
    let mut policy = SecurityPolicy::default();
    policy.sandbox.ceilings.max_cpu_percent = 250;
    for (percent, quota) in [(1, 1_000), (50, 50_000), (100, 100_000), (250, 250_000)] {
        let mut m = example();
        m.permissions.resources.cpu = Some(crate::manifest::CpuLimit { max_percent: percent });
        assert_eq!(derive(&m, &policy).cgroup.cpu_quota_us.value, quota);
    }
}

#[test]
fn values_above_a_ceiling_are_refused_naming_the_ceiling() {
    let mut m = example();
    m.permissions.resources.memory = Some(crate::manifest::MemoryLimit { max_mb: 2048 });
    let problems = derive_spec(&m, &dir(), &SecurityPolicy::default()).unwrap_err();
    assert_eq!(problems.len(), 1);
    let problem = problems.iter().next().unwrap();
    assert_eq!(problem.pointer, MEMORY_POINTER);
    assert!(problem.reason.contains("/sandbox/ceilings/max_memory_mb"), "{}", problem.reason);
    // A lowered ceiling also binds the policy's own defaults.
    let mut policy = SecurityPolicy::default();
    policy.sandbox.ceilings.max_tmp_mb = 32;
    let problems = derive_spec(&example(), &dir(), &policy).unwrap_err();
    assert!(problems.has_pointer("/sandbox/defaults/tmp_mb"), "{problems}");
}

#[test]
fn all_seven_namespaces_builtin() {
    let spec = derive(&example(), &SecurityPolicy::default());
    let kinds: Vec<_> = spec.namespaces.iter().map(|n| n.value).collect();
    assert_eq!(
        kinds,
        [
            Namespace::User,
            Namespace::Pid,
            Namespace::Mount,
            Namespace::Net,
            Namespace::Ipc,
            Namespace::Uts,
            Namespace::Cgroup
        ]
    );
    assert!(spec.namespaces.iter().all(|n| n.origin.source == OriginSource::Builtin));
}

#[test]
fn identity_comes_from_the_policy() {
    let spec = derive(&example(), &SecurityPolicy::default());
    assert_eq!(spec.identity.outside_uid, Sourced::new(200_000, Origin::policy("/sandbox/identity/outside_uid")));
    assert_eq!(spec.identity.outside_gid.value, 200_000);
}

#[test]
fn python_entry_points_get_the_interpreter_and_its_paths_in_order() {
    let spec = derive(&example(), &SecurityPolicy::default());
    let Runtime::Interpreter { name, path, args } = &spec.entry.runtime.value else { panic!("not python") };
    assert_eq!(
        (name.as_str(), path.to_str(), args.as_slice()),
        ("python3", Some("/usr/bin/python3"), ["-B", "-s"].map(String::from).as_slice())
    );
    assert_eq!(spec.entry.runtime.origin, Origin::policy("/sandbox/runtimes/interpreters/python3/extensions"));
    let kinds: Vec<String> = spec.mounts.iter().map(mount_label).collect();
    assert_eq!(
        kinds,
        [
            "bind /lib64/ld-linux-x86-64.so.2",
            "bind /usr/lib/x86_64-linux-gnu",
            "bind /usr/bin/python3",
            "bind /usr/lib/python3.11",
            "plugin /plugin",
            "tmpfs /tmp",
            "proc /proc",
            "dev /dev"
        ]
    );
    let MountSpec::RuntimeBind { origin, .. } = &spec.mounts[3] else { panic!() };
    assert_eq!(origin, &Origin::policy("/sandbox/runtimes/interpreters/python3/paths/3"));
}

fn mount_label(m: &MountSpec) -> String {
    match m {
        MountSpec::RuntimeBind { host, .. } => format!("bind {}", host.display()),
        MountSpec::PluginDir { inside, .. } => format!("plugin {inside}"),
        MountSpec::HostBind { inside, writable, .. } => format!("grant {inside} {writable}"),
        MountSpec::Tmpfs { inside, .. } => format!("tmpfs {inside}"),
        MountSpec::Proc { inside, .. } => format!("proc {inside}"),
        MountSpec::Dev { inside, .. } => format!("dev {inside}"),
    }
}

fn access_of(spec: &SandboxSpec, inside: &str) -> Option<FsAccess> {
    spec.landlock.rules.iter().find(|r| r.inside == inside).map(|r| r.access)
}

#[test]
fn landlock_rules_follow_the_layout() {
    let spec = derive(&example(), &SecurityPolicy::default());
    assert_eq!(access_of(&spec, "/usr/lib/python3.11"), Some(FsAccess::ReadExec));
    assert_eq!(access_of(&spec, "/plugin"), Some(FsAccess::Read));
    assert_eq!(access_of(&spec, "/tmp"), Some(FsAccess::ReadWrite));
    assert_eq!(access_of(&spec, "/proc"), Some(FsAccess::Read));
    assert_eq!(access_of(&spec, "/dev"), Some(FsAccess::ReadWrite));
    assert!(spec.landlock.scope_ipc_and_signals);
    assert!(!spec.landlock.rules.iter().any(|r| r.inside == "/"));
}

#[test]
fn native_entry_points_run_from_an_executable_plugin_dir() {
    let spec = derive(&native(), &SecurityPolicy::default());
    assert_eq!(spec.entry.runtime.value, Runtime::Native);
    assert_eq!(access_of(&spec, "/plugin"), Some(FsAccess::ReadExec));
    assert_eq!(spec.mounts.len(), 2 + 4);
    assert!(!spec.env.iter().any(|(k, _)| k == "PYTHONPATH"));
}

#[test]
fn explicit_interpreter_is_attributed_to_the_manifest() {
    let mut m = native();
    m.runtime = Some(crate::manifest::RuntimeRequest { interpreter: Some("python3".into()) });
    let spec = derive(&m, &SecurityPolicy::default());
    assert_eq!(spec.entry.runtime.origin, Origin::manifest("/runtime/interpreter"));
}

#[test]
fn granted_host_paths_become_binds_and_rules() {
    let mut policy = SecurityPolicy::default();
    policy.sandbox.allowed_host_paths = vec![
        AllowedHostPath { path: "/srv/data".into(), access: HostPathAccess::ReadOnly },
        AllowedHostPath { path: "/srv/out".into(), access: HostPathAccess::ReadWrite },
    ];
    let mut m = example();
    let fs = &mut m.permissions.system.filesystem;
    fs.enabled = true;
    fs.temp_only = false;
    fs.read = vec![PathGrant { path: "/srv/data/models".into(), inside: Some("/models".into()), optional: true }];
    fs.write = vec![PathGrant { path: "/srv/out/x".into(), inside: None, optional: false }];
    let spec = derive(&m, &policy);
    let labels: Vec<String> = spec.mounts.iter().map(mount_label).collect();
    assert_eq!(&labels[5..7], ["grant /models false", "grant /srv/out/x true"]);
    assert_eq!(access_of(&spec, "/models"), Some(FsAccess::Read));
    assert_eq!(access_of(&spec, "/srv/out/x"), Some(FsAccess::ReadWrite));
    let MountSpec::HostBind { optional, origin, .. } = &spec.mounts[5] else { panic!() };
    assert!(*optional);
    assert_eq!(origin, &Origin::manifest("/permissions/system/filesystem/read/0"));
}

#[test]
fn a_write_grant_over_the_plugin_directory_is_refused() {
    let mut policy = SecurityPolicy::default();
    policy.sandbox.allowed_host_paths =
        vec![AllowedHostPath { path: "/srv".into(), access: HostPathAccess::ReadWrite }];
    let mut m = example();
    let fs = &mut m.permissions.system.filesystem;
    fs.enabled = true;
    fs.temp_only = false;
    fs.write = vec![PathGrant { path: "/srv/plugins".into(), inside: Some("/data".into()), optional: false }];
    let problems = derive_spec(&m, &dir(), &policy).unwrap_err();
    assert!(problems.has_pointer("/permissions/system/filesystem/write/0/path"), "{problems}");
}

#[test]
fn plugin_dir_must_be_absolute_and_clean() {
    for bad in ["relative/dir", "/", "/srv/../etc", ""] {
        let problems = derive_spec(&example(), Path::new(bad), &SecurityPolicy::default()).unwrap_err();
        assert!(problems.iter().any(|p| p.reason.starts_with("plugin directory")), "{bad}: {problems}");
    }
}

#[test]
fn a_manifest_built_in_code_is_rechecked() {
    let mut m = example();
    m.entry_point = "../../etc/passwd".into();
    m.permissions.events = Some(EventPermissions { read: vec!["BAD".into()], ..EventPermissions::default() });
    let problems = derive_spec(&m, &dir(), &SecurityPolicy::default()).unwrap_err();
    assert!(problems.has_pointer("/entry_point") && problems.has_pointer("/permissions/events/read/0"), "{problems}");
}

#[test]
fn seccomp_follows_the_policy_action() {
    let spec = derive(&example(), &SecurityPolicy::default());
    assert_eq!(spec.seccomp.default_action.value, SeccompAction::Errno { errno: 1 });
    assert_eq!(spec.seccomp.enosys, ["clone3"]);
    assert!(spec.seccomp.allowed.iter().any(|r| r.name == "execve"));
    let mut policy = SecurityPolicy::default();
    policy.sandbox.seccomp_default_action = SeccompDefaultAction::Kill;
    let spec = derive(&example(), &policy);
    assert_eq!(
        spec.seccomp.default_action,
        Sourced::new(SeccompAction::KillProcess, Origin::policy("/sandbox/seccomp_default_action"))
    );
}

#[test]
fn rlimits_are_fixed_except_fsize() {
    let spec = derive(&example(), &SecurityPolicy::default());
    let get = |r| spec.rlimits.iter().find(|l| l.resource == r).map(|l| (l.soft, l.hard));
    assert_eq!(get(RlimitResource::Nofile), Some((256, 256)));
    assert_eq!(get(RlimitResource::Core), Some((0, 0)));
    assert_eq!(get(RlimitResource::Memlock), Some((65_536, 65_536)));
    assert_eq!(get(RlimitResource::Msgqueue), Some((0, 0)));
}

#[test]
fn events_and_their_origins() {
    let spec = derive(&example(), &SecurityPolicy::default());
    assert_eq!(
        spec.events.read,
        Sourced::new(vec!["energy.update".to_owned()], Origin::manifest("/permissions/events/read"))
    );
    assert_eq!(spec.events.ui_render, Sourced::new(true, Origin::manifest("/permissions/system/ui/render")));
    assert_eq!(spec.events.max_event_bytes.value, 65_536);
    let mut m = example();
    m.permissions.events = None;
    m.permissions.system.ui = None;
    let spec = derive(&m, &SecurityPolicy::default());
    assert_eq!(spec.events.write.origin.source, OriginSource::Builtin);
    assert!(!spec.events.ui_render.value);
}

#[test]
fn environment_is_fixed_and_never_inherited() {
    let spec = derive(&example(), &SecurityPolicy::default());
    let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(
        env,
        [
            "PATH=/usr/bin:/bin",
            "HOME=/tmp",
            "LANG=C.UTF-8",
            "TMPDIR=/tmp",
            "WFSANDBOX_CHANNEL_FD=3",
            "WFSANDBOX_PLUGIN=my_plugin",
            "PYTHONPATH=/opt/wfsandbox/python",
            "PYTHONDONTWRITEBYTECODE=1",
            "PYTHONUNBUFFERED=1"
        ]
    );
}

#[test]
fn layers_output_limit_and_grace_come_from_the_policy() {
    let spec = derive(&example(), &SecurityPolicy::default());
    assert_eq!(spec.layers.required.value.len(), 6);
    assert!(spec.layers.degradable.value.is_empty());
    assert_eq!(spec.output_limit_bytes, Sourced::new(1024 * 1024, Origin::policy("/sandbox/output_limit_kb")));
    assert_eq!(spec.stop_grace_ms, Sourced::new(5000, Origin::policy("/sandbox/stop_grace_seconds")));
    assert_eq!(spec.entry.cwd_inside, "/plugin");
    assert_eq!(spec.identity.hostname.value, "wfsandbox");
}

fn with_events(max_event_bytes: Option<u32>, rate: Option<EventRateRequest>) -> Manifest {
    let mut m = example();
    let events = m.permissions.events.get_or_insert_with(EventPermissions::default);
    events.max_event_bytes = max_event_bytes;
    events.rate = rate;
    m
}

#[test]
fn event_limits_default_to_the_policy_with_policy_origins() {
    let spec = derive(&example(), &SecurityPolicy::default());
    let e = &spec.events;
    assert_eq!(e.max_event_bytes, Sourced::new(65_536, Origin::policy("/sandbox/ceilings/max_event_bytes")));
    assert_eq!(e.rate, EventRate::for_tests());
    assert_eq!(
        e.rate.events_per_second,
        Sourced::new(1000, Origin::policy("/sandbox/defaults/event_rate/events_per_second"))
    );
    assert_eq!(e.rate.burst, Sourced::new(2000, Origin::policy("/sandbox/defaults/event_rate/burst")));
    assert_eq!(
        e.rate.bytes_per_second,
        Sourced::new(1_048_576, Origin::policy("/sandbox/defaults/event_rate/bytes_per_second"))
    );
    // Also without any events section, and under a policy with other defaults.
    let mut m = example();
    m.permissions.events = None;
    let mut policy = SecurityPolicy::default();
    policy.sandbox.defaults.event_rate.events_per_second = 7;
    policy.sandbox.ceilings.max_event_bytes = 4096;
    let spec = derive(&m, &policy);
    assert_eq!(spec.events.rate.events_per_second.value, 7);
    assert_eq!(spec.events.max_event_bytes.value, 4096);
}

#[test]
fn event_limits_from_the_manifest_carry_manifest_origins_field_by_field() {
    let rate = EventRateRequest { events_per_second: Some(50), burst: None, bytes_per_second: Some(4096) };
    let spec = derive(&with_events(Some(1024), Some(rate)), &SecurityPolicy::default());
    let e = &spec.events;
    assert_eq!(e.max_event_bytes, Sourced::new(1024, Origin::manifest("/permissions/events/max_event_bytes")));
    assert_eq!(
        e.rate.events_per_second,
        Sourced::new(50, Origin::manifest("/permissions/events/rate/events_per_second"))
    );
    assert_eq!(e.rate.burst, Sourced::new(2000, Origin::policy("/sandbox/defaults/event_rate/burst")));
    assert_eq!(
        e.rate.bytes_per_second,
        Sourced::new(4096, Origin::manifest("/permissions/events/rate/bytes_per_second"))
    );
}

#[test]
fn event_limits_built_in_code_are_rechecked() {
    let policy = SecurityPolicy::default();
    for (m, pointer, reason) in [
        (with_events(Some(0), None), "/permissions/events/max_event_bytes", "at least 1024"),
        (with_events(Some(1 << 20), None), "/permissions/events/max_event_bytes", "/sandbox/ceilings/max_event_bytes"),
        (
            with_events(None, Some(EventRateRequest { events_per_second: Some(0), ..Default::default() })),
            "/permissions/events/rate/events_per_second",
            "never means unlimited",
        ),
        (
            with_events(None, Some(EventRateRequest { burst: Some(u32::MAX), ..Default::default() })),
            "/permissions/events/rate/burst",
            "/sandbox/ceilings/max_event_rate/burst",
        ),
        (
            with_events(None, Some(EventRateRequest { bytes_per_second: Some(u64::MAX), ..Default::default() })),
            "/permissions/events/rate/bytes_per_second",
            "/sandbox/ceilings/max_event_rate/bytes_per_second",
        ),
    ] {
        let problems = derive_spec(&m, &dir(), &policy).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems}");
        let problem = problems.iter().next().unwrap();
        assert_eq!(problem.pointer, pointer);
        assert!(problem.reason.contains(reason), "{}", problem.reason);
    }
    // A policy built in code with a default above its ceiling is refused too.
    let mut policy = SecurityPolicy::default();
    policy.sandbox.defaults.event_rate.burst = 30_000;
    let problems = derive_spec(&example(), &dir(), &policy).unwrap_err();
    assert!(problems.has_pointer("/sandbox/defaults/event_rate/burst"), "{problems}");
}
