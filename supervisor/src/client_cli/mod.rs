//! The `wfsandbox` client commands (ps, start, stop, ...): talk to a running daemon over its
//! control socket (docs/protocol.md §2).
//!
//! Each command is checked and turned into one protocol call before anything is connected
//! ([`request`]), sent as `wfsandbox-cli` with the token from [`connect`], and its answer
//! printed for people ([`render`]) or machines ([`json_out`]); the streams are in
//! [`follow`]. Failures are one stderr line and the protocol's exit status ([`failure`]).

mod connect;
mod failure;
mod follow;
mod json_out;
mod output;
mod payload;
mod render;
mod request;
mod timestamp;

use clap::{ArgGroup, Args, Subcommand};
use failure::CommandError;
use output::{Console, Format};
use request::RequestError;
use std::path::{Path, PathBuf};
use wf_protocol::control::{
    Call, ListArgs, LoadArgs, LogsArgs, NameArgs, ReloadPolicyArgs, ShutdownArgs, StartArgs, StatsArgs, StopArgs,
    SubscribeEventsArgs, ViolationsArgs, EXIT_OK, MAX_EVENT_BACKLOG, MAX_LOG_TAIL_BYTES, MAX_VIOLATIONS_LIMIT,
};

pub use connect::{CLIENT_NAME, TOKEN_ENV};

/// Options every client command takes.
#[derive(Debug, Clone, Args)]
pub struct ClientOptions {
    /// Machine output: one JSON document (with --follow: one JSON object per line).
    #[arg(long)]
    pub json: bool,
    /// Read the daemon's bearer token from FILE (default: $WFSANDBOX_TOKEN). There is no
    /// option for the token itself: command lines are readable by every user.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct NoArgs {
    #[command(flatten)]
    pub options: ClientOptions,
}

#[derive(Debug, Args)]
pub struct NameCommand {
    pub name: String,
    #[command(flatten)]
    pub options: ClientOptions,
}

#[derive(Debug, Args)]
pub struct OptionalNameCommand {
    pub name: Option<String>,
    #[command(flatten)]
    pub options: ClientOptions,
}

#[derive(Debug, Args)]
pub struct LoadCommand {
    /// The manifest (a relative path is made absolute against the working directory).
    pub manifest: PathBuf,
    #[command(flatten)]
    pub options: ClientOptions,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("plugin").required(true).args(["manifest", "name"])))]
pub struct StartCommand {
    /// Load this manifest and start the plugin (a relative path is made absolute).
    pub manifest: Option<PathBuf>,
    /// Start the already loaded plugin NAME instead.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    #[command(flatten)]
    pub options: ClientOptions,
}

#[derive(Debug, Args)]
pub struct StopCommand {
    pub name: String,
    /// Seconds between SIGTERM and killing the plugin's cgroup (at most 600; fractions
    /// allowed). Default: the policy's stop_grace_seconds.
    #[arg(long, value_name = "SECS", value_parser = request::parse_grace)]
    pub grace: Option<u64>,
    #[command(flatten)]
    pub options: ClientOptions,
}

#[derive(Debug, Args)]
pub struct LogsCommand {
    pub name: String,
    /// After the newest output, keep printing new output until the plugin ends.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// At most this many bytes of the newest output (default 16384, at most 131072).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_LOG_TAIL_BYTES)))]
    pub tail: Option<u32>,
    #[command(flatten)]
    pub options: ClientOptions,
}

#[derive(Debug, Args)]
pub struct PublishCommand {
    pub topic: String,
    /// The payload: any JSON value (duplicate keys are refused).
    #[arg(value_name = "JSON")]
    pub payload: String,
    #[command(flatten)]
    pub options: ClientOptions,
}

#[derive(Debug, Args)]
pub struct EventsCommand {
    /// Only events on this topic, or `prefix.*` for one more segment (repeatable; default every topic).
    #[arg(long = "topic", value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// After the replayed events, keep printing new ones until interrupted.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Replay up to N recent events first (at most 256). Default: 256 without --follow,
    /// 0 with it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_EVENT_BACKLOG)))]
    pub backlog: Option<u32>,
    #[command(flatten)]
    pub options: ClientOptions,
}

#[derive(Debug, Args)]
pub struct ViolationsCommand {
    /// Only this plugin's violations.
    pub name: Option<String>,
    /// At most N records, newest first (default 100, at most 1000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_VIOLATIONS_LIMIT)))]
    pub limit: Option<u32>,
    /// After the recorded ones (oldest first), keep printing each new violation as it is
    /// recorded, until interrupted.
    #[arg(long, short = 'f')]
    pub follow: bool,
    #[command(flatten)]
    pub options: ClientOptions,
}

#[derive(Debug, Args)]
pub struct ReloadPolicyCommand {
    /// A new policy file (made absolute); default: re-read the daemon's own.
    pub path: Option<PathBuf>,
    #[command(flatten)]
    pub options: ClientOptions,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// List the daemon's plugins: name, state, pid, restarts, since when, version.
    Ps(NoArgs),
    /// One plugin's state, last exit, pending restart and what its run enforced.
    Status(NameCommand),
    /// Memory, CPU, pids and processes of every plugin, or of one.
    Stats(OptionalNameCommand),
    /// Check a manifest under the daemon's policy and register the plugin without starting it.
    Load(LoadCommand),
    /// Start a plugin: load MANIFEST and start it, or start the loaded plugin --name NAME.
    Start(StartCommand),
    /// Stop a plugin: SIGTERM, the grace period, then its whole cgroup is killed.
    Stop(StopCommand),
    /// Stop a plugin (default grace) and start it again.
    Restart(NameCommand),
    /// Lift the quarantine of a plugin a violation response stopped; it may then be started.
    Release(NameCommand),
    /// A plugin's captured stdout and stderr.
    Logs(LogsCommand),
    /// Publish an event on TOPIC, through the broker's grants.
    Publish(PublishCommand),
    /// Recent events, and with --follow new ones as they are published.
    Events(EventsCommand),
    /// Recorded violations, newest first; with --follow, then each new one as it is recorded.
    Violations(ViolationsCommand),
    /// Re-read the daemon's policy file, or load a new one.
    ReloadPolicy(ReloadPolicyCommand),
    /// Stop every plugin, then the daemon.
    Shutdown(NoArgs),
}

/// How a command talks to the daemon once its call is built.
enum Exchange {
    /// One request, one answer.
    Reply(Call),
    FollowLogs(Call),
    Events(Call),
    FollowViolations(Call),
}

impl Exchange {
    /// Whether it streams until interrupted.
    fn follows(&self) -> bool {
        match self {
            Exchange::FollowLogs(_) | Exchange::FollowViolations(_) => true,
            Exchange::Events(Call::SubscribeEvents(args)) => args.follow,
            Exchange::Events(_) | Exchange::Reply(_) => false,
        }
    }
}

/// Runs one client command; returns its exit status.
pub fn run(socket: Option<&Path>, command: ClientCommand) -> u8 {
    let format = if command.options().json { Format::Json } else { Format::Human };
    let mut console = Console::stdout(format, command.context());
    match execute(socket, &command, &mut console) {
        Ok(()) | Err(CommandError::ReaderGone) => EXIT_OK,
        Err(error) => {
            console.error(&error);
            error.exit_code()
        }
    }
}

fn execute<W: std::io::Write>(
    socket: Option<&Path>,
    command: &ClientCommand,
    console: &mut Console<W>,
) -> Result<(), CommandError> {
    let exchange = command.exchange()?;
    let token = connect::bearer_token(command.options().token_file.as_deref())?;
    let mut connection = connect::open(&connect::socket_path(socket), token)?;
    if exchange.follows() {
        follow::interrupt_ends_with_success();
    }
    match exchange {
        Exchange::Reply(call) => {
            let reply = connection.call(call)?;
            console.reply(&reply)
        }
        Exchange::FollowLogs(call) => follow::follow_logs(&mut connection, call, console),
        Exchange::Events(call) => follow::events(&mut connection, call, console),
        Exchange::FollowViolations(call) => follow::follow_violations(&mut connection, call, console),
    }
}

impl ClientCommand {
    fn options(&self) -> &ClientOptions {
        match self {
            ClientCommand::Ps(c) | ClientCommand::Shutdown(c) => &c.options,
            ClientCommand::Status(c) | ClientCommand::Restart(c) | ClientCommand::Release(c) => &c.options,
            ClientCommand::Stats(c) => &c.options,
            ClientCommand::Load(c) => &c.options,
            ClientCommand::Start(c) => &c.options,
            ClientCommand::Stop(c) => &c.options,
            ClientCommand::Logs(c) => &c.options,
            ClientCommand::Publish(c) => &c.options,
            ClientCommand::Events(c) => &c.options,
            ClientCommand::Violations(c) => &c.options,
            ClientCommand::ReloadPolicy(c) => &c.options,
        }
    }

    /// The command as an error line names it: `stop alpha`, `start ./manifest.json`.
    fn context(&self) -> String {
        let with = |verb: &str, what: Option<String>| match what {
            Some(what) => format!("{verb} {what}"),
            None => verb.to_owned(),
        };
        match self {
            ClientCommand::Ps(_) => "ps".to_owned(),
            ClientCommand::Status(c) => with("status", Some(c.name.clone())),
            ClientCommand::Stats(c) => with("stats", c.name.clone()),
            ClientCommand::Load(c) => with("load", Some(c.manifest.display().to_string())),
            ClientCommand::Start(c) => {
                with("start", c.manifest.as_ref().map(|m| m.display().to_string()).or_else(|| c.name.clone()))
            }
            ClientCommand::Stop(c) => with("stop", Some(c.name.clone())),
            ClientCommand::Restart(c) => with("restart", Some(c.name.clone())),
            ClientCommand::Release(c) => with("release", Some(c.name.clone())),
            ClientCommand::Logs(c) => with("logs", Some(c.name.clone())),
            ClientCommand::Publish(c) => with("publish", Some(c.topic.clone())),
            ClientCommand::Events(_) => "events".to_owned(),
            ClientCommand::Violations(c) => with("violations", c.name.clone()),
            ClientCommand::ReloadPolicy(c) => with("reload-policy", c.path.as_ref().map(|p| p.display().to_string())),
            ClientCommand::Shutdown(_) => "shutdown".to_owned(),
        }
    }

    fn exchange(&self) -> Result<Exchange, RequestError> {
        let call = request::checked(self.call()?)?;
        Ok(match &call {
            Call::Logs(LogsArgs { follow: true, .. }) => Exchange::FollowLogs(call),
            Call::SubscribeEvents(_) => Exchange::Events(call),
            Call::ListViolations(ViolationsArgs { follow: true, .. }) => Exchange::FollowViolations(call),
            _ => Exchange::Reply(call),
        })
    }

    fn call(&self) -> Result<Call, RequestError> {
        Ok(match self {
            ClientCommand::Ps(_) => Call::List(ListArgs {}),
            ClientCommand::Status(c) => Call::Status(NameArgs { name: c.name.clone() }),
            ClientCommand::Stats(c) => Call::Stats(StatsArgs { name: c.name.clone() }),
            ClientCommand::Load(c) => Call::Load(LoadArgs { manifest: request::manifest_source(&c.manifest)? }),
            ClientCommand::Start(c) => Call::Start(start_args(c)?),
            ClientCommand::Stop(c) => Call::Stop(StopArgs { name: c.name.clone(), grace_ms: c.grace }),
            ClientCommand::Restart(c) => Call::Restart(NameArgs { name: c.name.clone() }),
            ClientCommand::Release(c) => Call::Release(NameArgs { name: c.name.clone() }),
            ClientCommand::Logs(c) => {
                Call::Logs(LogsArgs { name: c.name.clone(), follow: c.follow, tail_bytes: c.tail })
            }
            ClientCommand::Publish(c) => request::publish(&c.topic, &c.payload)?,
            ClientCommand::Events(c) => Call::SubscribeEvents(subscription(c)),
            ClientCommand::Violations(c) => {
                Call::ListViolations(ViolationsArgs { name: c.name.clone(), limit: c.limit, follow: c.follow })
            }
            ClientCommand::ReloadPolicy(c) => Call::ReloadPolicy(ReloadPolicyArgs {
                path: c.path.as_deref().map(|p| request::absolute_path("policy", p)).transpose()?,
            }),
            ClientCommand::Shutdown(_) => Call::Shutdown(ShutdownArgs {}),
        })
    }
}

/// Exactly one of MANIFEST or --name (clap's group enforces it; checked again here).
fn start_args(command: &StartCommand) -> Result<StartArgs, RequestError> {
    match (&command.manifest, &command.name) {
        (Some(manifest), None) => Ok(StartArgs::Manifest(request::manifest_source(manifest)?)),
        (None, Some(name)) => Ok(StartArgs::Name(name.clone())),
        _ => Err(RequestError::Invalid("give exactly one of MANIFEST or --name NAME".to_owned())),
    }
}

/// Without --follow the command shows what happened recently, so it replays as much as the
/// daemon keeps; with --follow it shows what happens from now on unless asked for more.
fn subscription(command: &EventsCommand) -> SubscribeEventsArgs {
    let default_backlog = if command.follow { 0 } else { MAX_EVENT_BACKLOG };
    SubscribeEventsArgs {
        topics: (!command.topics.is_empty()).then(|| command.topics.clone()),
        backlog: command.backlog.unwrap_or(default_backlog),
        follow: command.follow,
    }
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
