//! Assembling the child's plan from the spec and what the parent has prepared.

use crate::rootfs::RootPlan;
use std::ffi::CString;
use wf_policy::spec::{RlimitResource, Runtime, SandboxSpec};
use wf_sandbox_child::plan::{ChildFds, ChildPlan, ExecPlan, LandlockPlan, Rlimit};

/// Size of the tmpfs that becomes the read-only root: directories, symlinks, mount
/// points and the embedded SDK only.
const ROOT_TMPFS_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ChildPlanError {
    #[error("{what}: contains a NUL byte")]
    Nul { what: String },
}

fn c(s: &str) -> Result<CString, ChildPlanError> {
    CString::new(s).map_err(|_| ChildPlanError::Nul { what: s.to_owned() })
}

pub fn rlimit_constant(r: RlimitResource) -> i32 {
    (match r {
        RlimitResource::Nofile => libc::RLIMIT_NOFILE,
        RlimitResource::Fsize => libc::RLIMIT_FSIZE,
        RlimitResource::Core => libc::RLIMIT_CORE,
        RlimitResource::Memlock => libc::RLIMIT_MEMLOCK,
        RlimitResource::Msgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitResource::Nproc => libc::RLIMIT_NPROC,
        RlimitResource::Stack => libc::RLIMIT_STACK,
        RlimitResource::Cpu => libc::RLIMIT_CPU,
        RlimitResource::As => libc::RLIMIT_AS,
    }) as i32
}

/// The program, argv, environment and cwd of the entry point, as seen inside.
pub fn exec_plan(
    spec: &SandboxSpec,
    args: &[String],
    extra_env: &[(String, String)],
) -> Result<ExecPlan, ChildPlanError> {
    let entry = &spec.entry;
    let script = format!("{}/{}", entry.plugin_dir_inside.trim_end_matches('/'), entry.entry_point.value);
    let (path, mut argv) = match &entry.runtime.value {
        Runtime::Native => (script.clone(), vec![script]),
        Runtime::Interpreter { path, args: interp_args, .. } => {
            let interp = path.display().to_string();
            let mut argv = vec![interp.clone()];
            argv.extend(interp_args.iter().cloned());
            argv.push(script);
            (interp, argv)
        }
    };
    argv.extend(args.iter().cloned());
    let envp =
        spec.env.iter().chain(extra_env.iter()).map(|(k, v)| c(&format!("{k}={v}"))).collect::<Result<Vec<_>, _>>()?;
    Ok(ExecPlan {
        path: c(&path)?,
        argv: argv.iter().map(|a| c(a)).collect::<Result<Vec<_>, _>>()?,
        envp,
        cwd: c(&entry.cwd_inside)?,
    })
}

/// Everything the child needs; fds are filled in by the launcher.
pub fn build(
    spec: &SandboxSpec,
    root: RootPlan,
    landlock: Option<LandlockPlan>,
    seccomp: Option<Vec<libc::sock_filter>>,
    exec: ExecPlan,
    apply_rlimits: bool,
) -> Result<(ChildPlan, RootPlan), ChildPlanError> {
    let rlimits = if apply_rlimits {
        spec.rlimits
            .iter()
            .map(|r| Rlimit { resource: rlimit_constant(r.resource), soft: r.soft, hard: r.hard })
            .collect()
    } else {
        Vec::new()
    };
    let mut root = root;
    let root_ops = std::mem::take(&mut root.ops);
    let plan = ChildPlan {
        fds: ChildFds { sync_read: -1, error_write: -1, channel: -1, stdout: -1, stderr: -1 },
        cgroup_join_fds: Vec::new(),
        root_tmpfs_bytes: ROOT_TMPFS_BYTES,
        root_ops,
        hostname: c(&spec.identity.hostname.value)?,
        rlimits,
        landlock,
        seccomp,
        exec,
    };
    Ok((plan, root))
}
