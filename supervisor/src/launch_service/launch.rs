//! Carrying out one `Launch`: load the policy and manifest, derive the spec, prepare
//! every layer, clone and release. The same steps as the one-shot `run`, minus the
//! supervision: the daemon supervises through the fds it receives.

use crate::cgroup::validate_name;
use crate::commands;
use crate::prepare::{self, PrepareTarget, Stop};
use crate::report::Enforcement;
use crate::sandbox_cgroup::{self, SandboxCgroup};
use crate::spawn::{self, SpawnedSandbox};
use sha2::{Digest, Sha256};
use std::path::Path;
use wf_policy::spec::SandboxSpec;
use wf_policy::SecurityPolicy;

/// What the daemon asked to launch.
pub(super) struct LaunchInput<'a> {
    pub instance: &'a str,
    pub manifest_json: &'a str,
    pub plugin_dir: &'a Path,
    pub policy_json: Option<&'a str>,
    pub args: &'a [String],
}

/// A plugin that runs, with everything the launcher keeps or reports about it.
pub(super) struct LaunchedSandbox {
    pub spawned: SpawnedSandbox,
    pub cgroup: Option<SandboxCgroup>,
    pub plugin: String,
    pub version: String,
    pub spec_sha256: String,
    pub enforced: Enforcement,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum InstanceNameError {
    #[error("instance {name:?}: {reason}")]
    Invalid { name: String, reason: String },
    #[error("instance {name:?} is not named <plugin>-{launcher_pid}-<8 hex digits> (this launcher's pid)")]
    NotOurs { name: String, launcher_pid: i32 },
}

/// An instance name must be a valid cgroup name that embeds this launcher's pid, so
/// that an orphan sweep (ours after a crash, or a one-shot run's) removes it exactly
/// when no launcher holds it.
pub(super) fn check_instance_name(name: &str, launcher_pid: i32) -> Result<(), InstanceNameError> {
    validate_name(name).map_err(|e| InstanceNameError::Invalid { name: name.to_owned(), reason: e.to_string() })?;
    if sandbox_cgroup::supervisor_of(name) != Some(launcher_pid) {
        return Err(InstanceNameError::NotOurs { name: name.to_owned(), launcher_pid });
    }
    Ok(())
}

/// Run every step up to a released child. On failure nothing is left: no process,
/// no cgroup (its problems, if removal failed, are in the returned message).
pub(super) fn launch(input: &LaunchInput<'_>) -> Result<LaunchedSandbox, Stop> {
    check_plugin_dir(input.plugin_dir)?;
    let policy = load_policy(input.policy_json)?;
    let spec = commands::spec_from_bytes(input.manifest_json.as_bytes(), input.plugin_dir, &policy)
        .map_err(|problems| Stop::refused("load_manifest", format!("invalid manifest:\n{problems}")))?;
    let mut enforced = Enforcement::default();
    let mut warnings = Vec::new();
    let target = PrepareTarget {
        instance: input.instance,
        cgroup_parent: policy.sandbox.cgroup_parent.as_deref(),
        enforced: &mut enforced,
        warnings: &mut warnings,
    };
    let (layers, cgroup) = prepare::prepare(&spec, target)?;
    match spawn::spawn_prepared(&spec, input.args, layers, cgroup.as_ref(), &mut enforced) {
        Ok(spawned) => Ok(LaunchedSandbox {
            spawned,
            cgroup,
            plugin: spec.name.clone(),
            version: spec.version.clone(),
            spec_sha256: spec_hash(&spec),
            enforced,
            warnings,
        }),
        Err(mut stop) => {
            if let Some(cg) = cgroup {
                let problems = cg.destroy();
                if !problems.is_empty() {
                    stop.message = format!("{}; cleanup: {}", stop.message, problems.join("; "));
                }
            }
            Err(stop)
        }
    }
}

/// The plugin directory must be named exactly as the kernel resolves it: a symlink along
/// the way would let whoever controls it choose which host directory becomes the plugin's.
fn check_plugin_dir(dir: &Path) -> Result<(), Stop> {
    if !dir.is_absolute() {
        return Err(Stop::refused("plugin_dir", format!("{}: must be absolute", dir.display())));
    }
    match std::fs::canonicalize(dir) {
        Ok(real) if real == dir => Ok(()),
        Ok(real) => Err(Stop::refused(
            "plugin_dir",
            format!("{}: not canonical (it resolves to {}); name the directory itself", dir.display(), real.display()),
        )),
        Err(e) => Err(Stop::refused("plugin_dir", format!("{}: {e}", dir.display()))),
    }
}

fn load_policy(policy_json: Option<&str>) -> Result<SecurityPolicy, Stop> {
    match policy_json {
        None => Ok(wf_policy::default_policy()),
        Some(text) => wf_policy::load_policy(text.as_bytes())
            .map_err(|problems| Stop::refused("load_policy", format!("invalid security policy:\n{problems}"))),
    }
}

/// SHA-256 (hex) of the spec's JSON as the launcher derived it.
pub fn spec_hash(spec: &SandboxSpec) -> String {
    let json = serde_json::to_vec(spec).unwrap_or_default();
    format!("{:x}", Sha256::digest(&json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_must_embed_the_launcher_pid() {
        assert_eq!(check_instance_name(&sandbox_cgroup::instance_name("probe", 42, 7), 42), Ok(()));
        assert!(matches!(check_instance_name("probe-43-00000007", 42), Err(InstanceNameError::NotOurs { .. })));
        assert!(matches!(check_instance_name("probe", 42), Err(InstanceNameError::NotOurs { .. })));
        assert!(matches!(check_instance_name("../x-42-00000007", 42), Err(InstanceNameError::Invalid { .. })));
        assert!(matches!(check_instance_name("", 42), Err(InstanceNameError::Invalid { .. })));
    }

    #[test]
    fn relative_or_symlinked_plugin_dirs_and_bad_policies_are_refused_before_anything_is_created() {
        let input = |plugin_dir, policy_json| LaunchInput {
            instance: "p-1-00000001",
            manifest_json: "{}",
            plugin_dir,
            policy_json,
            args: &[],
        };
        let relative = input(Path::new("plugins/p"), None);
        let stop = launch(&relative).err().map(|s| (s.cause, s.step));
        assert_eq!(stop, Some((prepare::CAUSE_REFUSED, "plugin_dir".to_owned())));
        let dir = tempfile::tempdir().expect("tempdir");
        let real = std::fs::canonicalize(dir.path()).expect("canonicalize");
        std::os::unix::fs::symlink(&real, real.join("link")).expect("symlink");
        let symlinked = real.join("link");
        let stop = launch(&input(&symlinked, None)).err().map(|s| (s.cause, s.step));
        assert_eq!(stop, Some((prepare::CAUSE_REFUSED, "plugin_dir".to_owned())));
        let stop = launch(&input(&real, None)).err().map(|s| (s.cause, s.step));
        assert_eq!(stop, Some((prepare::CAUSE_REFUSED, "load_manifest".to_owned())));
        let bad_policy = LaunchInput {
            instance: "p-1-00000001",
            manifest_json: "{}",
            plugin_dir: &real,
            policy_json: Some("{"),
            args: &[],
        };
        let stop = launch(&bad_policy).err().map(|s| (s.cause, s.step));
        assert_eq!(stop, Some((prepare::CAUSE_REFUSED, "load_policy".to_owned())));
    }
}
