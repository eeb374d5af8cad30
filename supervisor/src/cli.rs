//! Command-line interface of the `wfsandbox` binary.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "wfsandbox", version, about = "Run untrusted WIRTHFORGE plugins inside every kernel isolation layer")]
pub struct Cli {
    /// The daemon's control socket (`serve` listens on it; client commands connect to it).
    /// Default: /run/wfsandbox/control.sock, or $WFSANDBOX_SOCKET.
    #[arg(long, global = true, env = "WFSANDBOX_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a manifest against the schema, the semantic rules and the policy's ceilings.
    /// Exits 0 when valid, 1 otherwise, listing every problem with its JSON pointer.
    Validate {
        manifest: PathBuf,
        /// Security policy (JSON); the embedded default policy when omitted.
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Print the effective sandbox the manifest gets under the policy, each value with
    /// the manifest or policy field it came from.
    Explain {
        manifest: PathBuf,
        #[arg(long)]
        policy: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Run the plugin once inside the sandbox (as root). Exit status: the plugin's own;
    /// 128+N if it died of signal N; 125 if it was refused or set-up failed.
    Run {
        manifest: PathBuf,
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Deliver an event to the plugin before it starts reading: TOPIC=JSON (repeatable).
        #[arg(long = "event", value_name = "TOPIC=JSON")]
        events: Vec<String>,
        /// Write the JSON run report (what was enforced, what was used, violations) here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Arguments passed to the plugin's entry point.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run the supervisor daemon (as root): many plugins, driven over the control socket.
    Serve {
        /// Security policy (JSON); the embedded default policy when omitted. `reload_policy`
        /// re-reads this file.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Directory for the daemon's runtime state (its lock, inline manifests).
        #[arg(long, value_name = "DIR", default_value = "/run/wfsandbox")]
        state_dir: PathBuf,
    },
    /// The daemon's hash-chained audit log.
    AuditLog {
        #[command(subcommand)]
        command: AuditLogCommand,
    },
    /// Commands that talk to a running daemon over its control socket.
    #[command(flatten)]
    Client(crate::client_cli::ClientCommand),
}

#[derive(Debug, Subcommand)]
pub enum AuditLogCommand {
    /// Check the hash chain of FILE... (oldest first, the live log last) and say exactly
    /// where it breaks. Exits 0 when intact, 1 when broken, 2 when a file cannot be read.
    Verify {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// The one FILE is the live log: check its rotated files (FILE.N … FILE.1) before it.
        #[arg(long)]
        rotated: bool,
        /// The report as JSON.
        #[arg(long)]
        json: bool,
    },
}
