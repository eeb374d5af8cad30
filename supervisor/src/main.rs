use clap::Parser;
use std::process::ExitCode;
use wfsandbox::cli::{AuditLogCommand, Cli, Command};
use wfsandbox::{client_cli, commands, serve};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let status = match cli.command {
        Command::Validate { manifest, policy } => commands::validate(&manifest, policy.as_deref()),
        Command::Explain { manifest, policy, json } => commands::explain(&manifest, policy.as_deref(), json),
        Command::Run { manifest, policy, events, report, args } => {
            commands::run(&manifest, policy.as_deref(), &events, report.as_deref(), &args)
        }
        Command::Serve { policy, state_dir } => serve::serve(cli.socket.as_deref(), policy.as_deref(), &state_dir),
        Command::AuditLog { command: AuditLogCommand::Verify { files, rotated, json } } => {
            commands::verify_audit_log(&files, rotated, json)
        }
        Command::Client(command) => client_cli::run(cli.socket.as_deref(), command),
    };
    ExitCode::from(status)
}
