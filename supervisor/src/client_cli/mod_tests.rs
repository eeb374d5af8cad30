use super::*;
use crate::cli::{Cli, Command};
use clap::Parser;
use wf_protocol::control::ManifestSource;

fn parse(args: &[&str]) -> Result<ClientCommand, clap::Error> {
    let cli = Cli::try_parse_from(std::iter::once("wfsandbox").chain(args.iter().copied()))?;
    match cli.command {
        Command::Client(command) => Ok(command),
        other => panic!("not a client command: {other:?}"),
    }
}

fn call_of(args: &[&str]) -> Call {
    let command = parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    match command.exchange() {
        Ok(
            Exchange::Reply(call)
            | Exchange::FollowLogs(call)
            | Exchange::Events(call)
            | Exchange::FollowViolations(call),
        ) => call,
        Err(error) => panic!("{args:?}: {error}"),
    }
}

#[test]
fn the_command_line_definition_is_consistent() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}

#[test]
fn start_takes_exactly_one_of_a_manifest_or_a_name() {
    let cwd = std::env::current_dir().expect("cwd");
    let Call::Start(StartArgs::Manifest(ManifestSource::Path(path))) = call_of(&["start", "plugin/manifest.json"])
    else {
        panic!("a manifest start")
    };
    assert_eq!(Path::new(&path), cwd.join("plugin/manifest.json"));
    assert_eq!(call_of(&["start", "--name", "alpha"]), Call::Start(StartArgs::Name("alpha".into())));
    for usage in [&["start"][..], &["start", "m.json", "--name", "alpha"]] {
        let error = parse(usage).expect_err("a usage error");
        assert_eq!(error.exit_code(), 2, "{usage:?}: {error}");
    }
}

#[test]
fn every_command_maps_onto_its_verb() {
    assert_eq!(call_of(&["ps"]), Call::List(ListArgs {}));
    assert_eq!(call_of(&["status", "a"]), Call::Status(NameArgs { name: "a".into() }));
    assert_eq!(call_of(&["stats"]), Call::Stats(StatsArgs { name: None }));
    assert_eq!(
        call_of(&["stop", "a", "--grace", "1.5"]),
        Call::Stop(StopArgs { name: "a".into(), grace_ms: Some(1500) })
    );
    assert_eq!(call_of(&["restart", "a"]), Call::Restart(NameArgs { name: "a".into() }));
    assert_eq!(call_of(&["release", "a"]), Call::Release(NameArgs { name: "a".into() }));
    assert_eq!(
        call_of(&["logs", "a", "--follow", "--tail", "0"]),
        Call::Logs(LogsArgs { name: "a".into(), follow: true, tail_bytes: Some(0) })
    );
    assert_eq!(
        call_of(&["violations", "a", "--limit", "5"]),
        Call::ListViolations(ViolationsArgs { name: Some("a".into()), limit: Some(5), follow: false })
    );
    assert_eq!(
        call_of(&["violations", "--follow", "--json"]),
        Call::ListViolations(ViolationsArgs { name: None, limit: None, follow: true })
    );
    assert_eq!(call_of(&["reload-policy"]), Call::ReloadPolicy(ReloadPolicyArgs { path: None }));
    assert_eq!(call_of(&["shutdown", "--json"]), Call::Shutdown(ShutdownArgs {}));
    let Call::Publish(publish) = call_of(&["publish", "energy.update", "{\"watts\": 42.5}"]) else { panic!() };
    assert_eq!((publish.topic.as_str(), publish.payload["watts"].as_f64()), ("energy.update", Some(42.5)));
}

#[test]
fn events_replay_the_backlog_unless_following() {
    let recent = call_of(&["events", "--topic", "a", "--topic", "b"]);
    let expected = SubscribeEventsArgs { topics: Some(vec!["a".into(), "b".into()]), backlog: 256, follow: false };
    assert_eq!(recent, Call::SubscribeEvents(expected));
    let live = call_of(&["events", "--follow"]);
    assert_eq!(live, Call::SubscribeEvents(SubscribeEventsArgs { topics: None, backlog: 0, follow: true }));
    let both = call_of(&["events", "--follow", "--backlog", "3"]);
    assert!(matches!(both, Call::SubscribeEvents(SubscribeEventsArgs { backlog: 3, follow: true, .. })));
}

#[test]
fn followed_violations_are_a_stream_and_plain_ones_a_reply() {
    let followed = parse(&["violations", "a", "-f"]).expect("parses").exchange().expect("an exchange");
    assert!(matches!(followed, Exchange::FollowViolations(Call::ListViolations(ViolationsArgs { follow: true, .. }))));
    let plain = parse(&["violations", "a"]).expect("parses").exchange().expect("an exchange");
    assert!(matches!(plain, Exchange::Reply(Call::ListViolations(ViolationsArgs { follow: false, .. }))));
}

#[test]
fn out_of_range_values_and_a_token_on_the_command_line_are_usage_errors() {
    for usage in [
        &["logs", "a", "--tail", "131073"][..],
        &["events", "--backlog", "257"],
        &["violations", "--limit", "0"],
        &["stop", "a", "--grace", "601"],
        &["ps", "--token", "3f9a"],
    ] {
        let error = parse(usage).expect_err("a usage error");
        assert_eq!(error.exit_code(), 2, "{usage:?}: {error}");
    }
    let bad_json = parse(&["publish", "t", "{"]).expect("clap accepts any text").exchange();
    assert!(matches!(bad_json, Err(ref e) if e.is_usage()), "{:?}", bad_json.err());
}

#[test]
fn the_one_shot_commands_still_parse() {
    let cli = Cli::try_parse_from(["wfsandbox", "validate", "m.json"]).expect("validate");
    assert!(matches!(cli.command, Command::Validate { .. }));
    let cli = Cli::try_parse_from(["wfsandbox", "explain", "m.json", "--json"]).expect("explain");
    assert!(matches!(cli.command, Command::Explain { json: true, .. }));
    let cli = Cli::try_parse_from(["wfsandbox", "run", "m.json", "--", "x"]).expect("run");
    assert!(matches!(cli.command, Command::Run { ref args, .. } if args == &["x"]));
    let cli = Cli::try_parse_from(["wfsandbox", "--socket", "/tmp/s", "serve"]).expect("serve");
    assert!(matches!(cli.command, Command::Serve { .. }) && cli.socket.as_deref() == Some(Path::new("/tmp/s")));
}

#[test]
fn the_socket_option_works_after_a_client_command_too() {
    let cli = Cli::try_parse_from(["wfsandbox", "ps", "--socket", "/tmp/x.sock", "--json"]).expect("ps");
    assert_eq!(cli.socket.as_deref(), Some(Path::new("/tmp/x.sock")));
    assert!(matches!(
        cli.command,
        Command::Client(ClientCommand::Ps(NoArgs { options: ClientOptions { json: true, .. } }))
    ));
}
