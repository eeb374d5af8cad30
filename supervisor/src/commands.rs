//! The one-shot CLI commands: validate, explain, run.

use crate::explain;
use crate::run::{self, RunRequest};
use crate::trusted_path;
use std::io::Write;
use std::path::{Path, PathBuf};
use wf_policy::spec::SandboxSpec;
use wf_policy::SecurityPolicy;

/// Exit status when the supervisor refused the plugin or set-up failed.
pub const EXIT_REFUSED: u8 = 125;
/// Exit status of `validate`/`explain` for an invalid manifest or policy.
pub const EXIT_INVALID: u8 = 1;

/// Inputs larger than this are refused before parsing.
const MAX_INPUT_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a regular file")]
    NotAFile { path: PathBuf },
    #[error("{path}: larger than {MAX_INPUT_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("{path}: invalid security policy:\n{problems}")]
    Policy { path: PathBuf, problems: wf_policy::Problems },
    #[error("{path}: invalid manifest:\n{problems}")]
    Manifest { path: PathBuf, problems: wf_policy::Problems },
    #[error("{path}: not trusted as a root daemon's policy: {source}")]
    Untrusted { path: PathBuf, source: crate::trusted_path::TrustError },
    #[error("{path}: is a symlink; name the file itself (a symlinked manifest could pick any host directory as the plugin's)")]
    SymlinkedManifest { path: PathBuf },
}

/// Read a manifest or policy: a regular file only (a FIFO or device would block or
/// stream forever), not through a final symlink, at most `MAX_INPUT_BYTES`. The type is
/// checked on an `O_PATH` fd before any real open: opening a FIFO, even non-blocking, is
/// itself visible to (and can release) a writer waiting on it.
fn read_capped(path: &Path) -> Result<Vec<u8>, LoadError> {
    let read_err = |e: crate::host_path::HostPathError| match e {
        crate::host_path::HostPathError::Io { source, .. } => LoadError::Read { path: path.to_owned(), source },
        other => LoadError::Read { path: path.to_owned(), source: std::io::Error::other(other.to_string()) },
    };
    let fd = crate::host_path::open_path_nofollow(path).map_err(read_err)?;
    let st = nix::sys::stat::fstat(&fd).map_err(|e| LoadError::Read { path: path.to_owned(), source: e.into() })?;
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => {}
        libc::S_IFLNK => return Err(LoadError::SymlinkedManifest { path: path.to_owned() }),
        _ => return Err(LoadError::NotAFile { path: path.to_owned() }),
    }
    let file = trusted_path::reopen_for_reading(&fd, path).map_err(|e| match e {
        trusted_path::TrustError::Io { source, .. } => LoadError::Read { path: path.to_owned(), source },
        other => untrusted(path, other),
    })?;
    read_at_most(path, file)
}

fn read_at_most(path: &Path, file: std::fs::File) -> Result<Vec<u8>, LoadError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(LoadError::TooLarge { path: path.to_owned() });
    }
    Ok(bytes)
}

fn untrusted(path: &Path, source: trusted_path::TrustError) -> LoadError {
    LoadError::Untrusted { path: path.to_owned(), source }
}

/// The one-shot commands' policy: whoever runs them chose the file.
pub fn load_policy(path: Option<&Path>) -> Result<SecurityPolicy, LoadError> {
    let Some(path) = path else { return Ok(wf_policy::default_policy()) };
    parse_policy(path, read_capped(path)?).map(|(_, policy)| policy)
}

/// The daemon's policy (`serve --policy`, `reload_policy`, SIGHUP): its text (what the daemon
/// hands its launcher) and the policy it holds. A root daemon takes its rules only from a file
/// no other user could have written or swapped ([`trusted_path`]).
pub fn read_policy_file(path: &Path) -> Result<(String, SecurityPolicy), LoadError> {
    let file = trusted_path::open_trusted_file(path).map_err(|e| untrusted(path, e))?;
    parse_policy(path, read_at_most(path, file)?)
}

fn parse_policy(path: &Path, bytes: Vec<u8>) -> Result<(String, SecurityPolicy), LoadError> {
    let policy =
        wf_policy::load_policy(&bytes).map_err(|problems| LoadError::Policy { path: path.to_owned(), problems })?;
    let text = String::from_utf8(bytes).map_err(|_| LoadError::Policy {
        path: path.to_owned(),
        problems: wf_policy::Problems::single("", "not valid UTF-8"),
    })?;
    Ok((text, policy))
}

/// Load and check the manifest, and derive the effective spec.
pub fn load_spec(manifest_path: &Path, policy: &SecurityPolicy) -> Result<SandboxSpec, LoadError> {
    let (bytes, plugin_dir) = read_manifest(manifest_path)?;
    spec_from_bytes(&bytes, &plugin_dir, policy)
        .map_err(|problems| LoadError::Manifest { path: manifest_path.to_owned(), problems })
}

/// A manifest file's bytes and its plugin directory (canonical), for the one-shot commands:
/// the path may be relative and its directories symlinks (whoever runs the command chose
/// it), but not the manifest itself. One lookup decides both: the directory is opened first,
/// the file is opened in it (`O_NOFOLLOW`), its bytes are read through that fd and the plugin
/// directory is the opened directory's own path.
pub fn read_manifest(manifest_path: &Path) -> Result<(Vec<u8>, PathBuf), LoadError> {
    let read_err = |source| LoadError::Read { path: manifest_path.to_owned(), source };
    let parent = match manifest_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Some(name) = manifest_path.file_name() else {
        return Err(LoadError::NotAFile { path: manifest_path.to_owned() });
    };
    let dir = std::os::unix::fs::OpenOptionsExt::custom_flags(
        std::fs::OpenOptions::new().read(true),
        libc::O_PATH | libc::O_DIRECTORY,
    )
    .open(parent)
    .map_err(|source| LoadError::Read { path: parent.to_owned(), source })?;
    let dir = std::os::fd::OwnedFd::from(dir);
    let fd =
        crate::host_path::open_beneath(&dir, Path::new(name), libc::O_PATH | libc::O_NOFOLLOW, false).map_err(|e| {
            match e {
                crate::host_path::HostPathError::Io { source, .. } => read_err(source),
                other => read_err(std::io::Error::other(other.to_string())),
            }
        })?;
    let st = nix::sys::stat::fstat(&fd).map_err(|e| read_err(e.into()))?;
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => {}
        libc::S_IFLNK => return Err(LoadError::SymlinkedManifest { path: manifest_path.to_owned() }),
        _ => return Err(LoadError::NotAFile { path: manifest_path.to_owned() }),
    }
    let file = trusted_path::reopen_for_reading(&fd, manifest_path).map_err(|e| match e {
        trusted_path::TrustError::Io { source, .. } => read_err(source),
        other => read_err(std::io::Error::other(other.to_string())),
    })?;
    let bytes = read_at_most(manifest_path, file)?;
    let plugin_dir =
        trusted_path::path_of_fd(&dir).map_err(|source| LoadError::Read { path: parent.to_owned(), source })?;
    Ok((bytes, plugin_dir))
}

/// A manifest file named to the daemon (an absolute path), read for `peer` (`None`: root) in
/// one walk that never follows a symlink ([`trusted_path::walk_as`]): the walk decides whether
/// the peer could read it, the bytes are read through the checked file's fd, and the plugin
/// directory is the checked directory as its fd names it. Nothing looks the path up again.
pub fn read_manifest_as(manifest_path: &Path, peer: Option<u32>) -> Result<(Vec<u8>, PathBuf), LoadError> {
    let walked = trusted_path::walk_as(manifest_path, peer, trusted_path::Expect::File).map_err(|e| match e {
        trusted_path::TrustError::Symlink { path } if path == manifest_path => LoadError::SymlinkedManifest { path },
        trusted_path::TrustError::WrongType { path, .. } if path == manifest_path => LoadError::NotAFile { path },
        trusted_path::TrustError::Io { path, source, .. } => LoadError::Read { path, source },
        other => LoadError::Read { path: manifest_path.to_owned(), source: std::io::Error::other(other.to_string()) },
    })?;
    let file = trusted_path::reopen_for_reading(&walked.target, manifest_path).map_err(|e| match e {
        trusted_path::TrustError::Io { source, .. } => LoadError::Read { path: manifest_path.to_owned(), source },
        other => LoadError::Read { path: manifest_path.to_owned(), source: std::io::Error::other(other.to_string()) },
    })?;
    let bytes = read_at_most(manifest_path, file)?;
    let Some(parent) = walked.parent else { return Err(LoadError::NotAFile { path: manifest_path.to_owned() }) };
    let plugin_dir = trusted_path::path_of_fd(&parent)
        .map_err(|source| LoadError::Read { path: manifest_path.to_owned(), source })?;
    Ok((bytes, plugin_dir))
}

/// Check a manifest's bytes and derive the effective spec for `plugin_dir`.
pub fn spec_from_bytes(
    bytes: &[u8],
    plugin_dir: &Path,
    policy: &SecurityPolicy,
) -> Result<SandboxSpec, wf_policy::Problems> {
    let manifest = wf_policy::load_manifest(bytes, policy)?;
    wf_policy::derive_spec(&manifest, plugin_dir, policy)
}

/// Print an error that may quote the (untrusted) manifest, one escaped line at a time.
fn print_error(prefix: &str, error: &dyn std::fmt::Display) {
    for line in error.to_string().lines() {
        eprintln!("{prefix}{}", crate::terminal_text::escape(line));
    }
}

pub fn validate(manifest: &Path, policy: Option<&Path>) -> u8 {
    let outcome = load_policy(policy).and_then(|p| load_spec(manifest, &p));
    match outcome {
        Ok(spec) => {
            println!("{}: valid ({} {})", manifest.display(), spec.name, spec.version);
            0
        }
        Err(e) => {
            print_error("", &e);
            EXIT_INVALID
        }
    }
}

pub fn explain(manifest: &Path, policy: Option<&Path>, json: bool) -> u8 {
    let spec = match load_policy(policy).and_then(|p| load_spec(manifest, &p)) {
        Ok(spec) => spec,
        Err(e) => {
            print_error("", &e);
            return EXIT_INVALID;
        }
    };
    let mut out = std::io::stdout().lock();
    let written = if json {
        serde_json::to_writer_pretty(&mut out, &explain::render_json(&spec)).map_err(std::io::Error::other)
    } else {
        out.write_all(explain::render_text(&spec).as_bytes())
    };
    let _ = writeln!(out);
    if written.is_err() {
        return EXIT_INVALID;
    }
    0
}

pub fn run(manifest: &Path, policy: Option<&Path>, events: &[String], report: Option<&Path>, args: &[String]) -> u8 {
    let loaded = load_policy(policy).and_then(|p| load_spec(manifest, &p).map(|s| (p, s)));
    let (policy, spec) = match loaded {
        Ok(pair) => pair,
        Err(e) => {
            print_error("wfsandbox: refused: ", &e);
            return EXIT_REFUSED;
        }
    };
    let events = match run::parse_events(events) {
        Ok(events) => events,
        Err(e) => {
            print_error("wfsandbox: refused: ", &e);
            return EXIT_REFUSED;
        }
    };
    let request = RunRequest {
        spec: &spec,
        events,
        args,
        report_path: report,
        cgroup_parent: policy.sandbox.cgroup_parent.as_deref(),
    };
    run::run_once(request)
}

/// `wfsandbox audit-log verify`: the chain of `files`, or with `rotated` of the one live log
/// and the rotated files beside it.
pub fn verify_audit_log(files: &[PathBuf], rotated: bool, json: bool) -> u8 {
    if !rotated {
        return crate::audit_log::verify_command(files, json);
    }
    let [live] = files else {
        eprintln!("audit-log verify: --rotated takes exactly one FILE, the live log");
        return 2;
    };
    match crate::audit_log::chain_files(live) {
        Ok(chain) if !chain.is_empty() => crate::audit_log::verify_command(&chain, json),
        Ok(_) => {
            eprintln!("audit-log verify: {}: no such log", live.display());
            2
        }
        Err(e) => {
            eprintln!("audit-log verify: listing the files of {}: {e}", live.display());
            2
        }
    }
}
