//! Harness for tests that start real sandboxes: build a plugin directory around the
//! `wf-probe` binary (or an example), run `wfsandbox run` on it, and parse what came back.
//!
//! The binaries are taken from the workspace's target directory; `scripts/test` builds
//! them first (`cargo build --workspace`).

pub mod daemon;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// A binary built by `cargo build --workspace` in the same profile as the tests.
pub fn binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from);
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let path = target.join(profile).join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --workspace` first (scripts/test does)", path.display());
    path
}

pub fn wfsandbox() -> PathBuf {
    binary("wfsandbox")
}

/// The real-sandbox tests need root (they clone namespaces and create cgroups).
pub fn require_root() {
    assert!(nix_is_root(), "these tests start real sandboxes and must run as root (see README)");
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A throw-away plugin directory (0755, removed on drop).
pub struct PluginDir {
    dir: tempfile::TempDir,
}

impl PluginDir {
    /// A plugin whose native entry point is the probe, with the given manifest fields merged
    /// over a minimal manifest (`name`, `version`, `entry_point`).
    pub fn probe(extra: Value) -> Self {
        let plugin = Self::empty();
        plugin.install_file(&binary("wf-probe"), "probe", 0o755);
        let mut manifest = serde_json::json!({ "name": "probe", "version": "1.0.0", "entry_point": "probe" });
        merge(&mut manifest, extra);
        plugin.write_manifest(&manifest);
        plugin
    }

    /// A probe plugin named `name` for the daemon, which starts entry points without
    /// arguments: the probe reads `args` from `probe-args.json`.
    pub fn daemon_probe(name: &str, args: &[&str], extra: Value) -> Self {
        let mut fields = serde_json::json!({ "name": name });
        merge(&mut fields, extra);
        let plugin = Self::probe(fields);
        plugin.write_file("probe-args.json", serde_json::to_string(args).unwrap_or_default().as_bytes(), 0o644);
        plugin
    }

    pub fn empty() -> Self {
        let dir = tempfile::Builder::new().prefix("wf-plugin-").tempdir().expect("create plugin dir");
        set_mode(dir.path(), 0o755);
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn manifest(&self) -> PathBuf {
        self.dir.path().join("manifest.json")
    }

    pub fn write_manifest(&self, manifest: &Value) {
        self.write_file("manifest.json", manifest.to_string().as_bytes(), 0o644);
    }

    pub fn write_file(&self, name: &str, contents: &[u8], mode: u32) {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write plugin file");
        set_mode(&path, mode);
    }

    pub fn install_file(&self, from: &Path, name: &str, mode: u32) {
        let path = self.dir.path().join(name);
        std::fs::copy(from, &path).expect("copy plugin file");
        set_mode(&path, mode);
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Merge `extra` into `base` recursively (objects merge, everything else replaces).
pub fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

/// What one `wfsandbox run` produced.
#[derive(Debug)]
pub struct RunResult {
    pub status: i32,
    /// Published events, one JSON value per line.
    pub published: Vec<Value>,
    pub stderr: String,
    pub report: Value,
}

impl RunResult {
    /// The probe's JSON line (it writes to its stdout, which `run` forwards to stderr,
    /// each line prefixed with `[plugin-name] `).
    pub fn probe(&self) -> Value {
        self.plugin_lines()
            .find_map(|l| serde_json::from_str::<Value>(l.trim()).ok().filter(|v| v.get("probe").is_some()))
            .unwrap_or_else(|| panic!("no probe line in stderr:\n{}", self.stderr))
    }

    /// The plugin's own output lines, without the supervisor's prefix.
    pub fn plugin_lines(&self) -> impl Iterator<Item = &str> {
        self.stderr
            .lines()
            .filter_map(|l| l.strip_prefix('[').and_then(|rest| rest.split_once("] ")).map(|(_, line)| line))
    }

    pub fn violations(&self) -> Vec<Value> {
        self.report["violations"].as_array().cloned().unwrap_or_default()
    }

    pub fn violation_of_kind(&self, kind: &str) -> Option<Value> {
        self.violations().into_iter().find(|v| v["kind"] == kind)
    }
}

/// `wfsandbox run MANIFEST [extra args] --report FILE -- probe_args`.
pub fn run(manifest: &Path, run_args: &[&str], plugin_args: &[&str]) -> RunResult {
    let report_dir = tempfile::tempdir().expect("report dir");
    let report_path = report_dir.path().join("report.json");
    let mut cmd = Command::new(wfsandbox());
    cmd.arg("run").arg(manifest).args(run_args).arg("--report").arg(&report_path);
    if !plugin_args.is_empty() {
        cmd.arg("--").args(plugin_args);
    }
    let output = cmd.output().expect("spawn wfsandbox");
    result_of(output, &report_path)
}

fn result_of(output: Output, report_path: &Path) -> RunResult {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let published = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let report = std::fs::read(report_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null);
    RunResult {
        status: output.status.code().unwrap_or(-1),
        published,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        report,
    }
}

/// Run the probe with `args` in a default sandbox and return its result.
pub fn probe(args: &[&str]) -> RunResult {
    probe_with(serde_json::json!({}), args)
}

/// Run the probe with manifest fields `extra` and `args`.
pub fn probe_with(extra: Value, args: &[&str]) -> RunResult {
    require_root();
    let plugin = PluginDir::probe(extra);
    run(&plugin.manifest(), &[], args)
}

/// Assert the probe's attempt failed with `errno`, printing everything on failure.
pub fn assert_denied(result: &RunResult, errno: i32) {
    let line = result.probe();
    assert_eq!(line["ok"], false, "expected the attempt to fail: {line}\nstderr:\n{}", result.stderr);
    assert_eq!(line["errno"], errno, "expected errno {errno}: {line}\nstderr:\n{}", result.stderr);
}
