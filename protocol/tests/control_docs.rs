//! docs/protocol.md §2 against the code: every example frame parses (and the documented
//! answers are exactly what this crate produces), the tables of rights and error codes match,
//! and the SDK-free Python example speaks the protocol.

mod control_samples;

use control_samples::*;
use serde_json::Value;
use std::collections::HashMap;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use wf_protocol::control::{
    exit_code, ClientFrame, ClientMessage, ErrorCode, ListResult, PluginState, Reply, Response, Rights, ServerMessage,
    Verb, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES,
};
use wf_protocol::decode_body;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn control_section() -> String {
    let doc = std::fs::read_to_string(repo_root().join("docs/protocol.md")).expect("docs/protocol.md");
    let start = doc.find("## 2. Control protocol").expect("§2 heading");
    doc[start..].to_owned()
}

/// Lines of every fenced block that follows a `control-examples` marker.
fn example_lines(section: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for after in section.split("<!-- control-examples").skip(1) {
        let block = after.split("```json\n").nth(1).expect("json block after marker");
        let block = block.split("```").next().expect("block end");
        lines.extend(block.lines().filter(|line| !line.trim().is_empty()).map(str::to_owned));
    }
    lines
}

#[test]
fn every_example_frame_is_valid_and_every_documented_answer_is_what_the_crate_sends() {
    let section = control_section();
    let lines = example_lines(&section);
    assert!(lines.len() > 40, "examples found: {}", lines.len());
    let mut verbs_by_id: HashMap<u64, Verb> = HashMap::new();
    let mut expected_answer: Option<Value> = None;
    let mut verbs_seen = Vec::new();
    for line in &lines {
        if let Some(body) = line.strip_prefix("→ ") {
            let frame: ClientFrame =
                decode_body(body.as_bytes(), MAX_REQUEST_BYTES).unwrap_or_else(|e| panic!("{body}: {e}"));
            match frame.interpret() {
                Ok(ClientMessage::Request(request)) => {
                    verbs_by_id.insert(request.id, request.call.verb());
                    verbs_seen.push(request.call.verb());
                }
                Ok(ClientMessage::Hello(_)) => {}
                Err(rejection) => expected_answer = Some(value_of(&rejection.reply())),
            }
        } else if let Some(body) = line.strip_prefix("← ") {
            let msg: ServerMessage =
                decode_body(body.as_bytes(), MAX_RESPONSE_BYTES).unwrap_or_else(|e| panic!("{body}: {e}"));
            let written: Value = serde_json::from_str(body).expect("json");
            assert_eq!(value_of(&msg), written, "the example is not in the form this crate writes: {body}");
            if let Some(expected) = expected_answer.take() {
                assert_eq!(written, expected, "documented answer differs from the crate's");
            }
            if let ServerMessage::Response(Response { id, outcome: Ok(result) }) = msg {
                let verb = verbs_by_id[&id];
                Reply::parse(verb, result).unwrap_or_else(|e| panic!("{body}: not a {verb} result: {e}"));
            }
        } else {
            panic!("example line without → or ←: {line}");
        }
    }
    for verb in Verb::ALL {
        assert!(verbs_seen.contains(&verb), "no example of {verb}");
    }
}

/// Rows `| \`a\` | ... |` of the table that follows `heading_cell`, split into cells.
fn table_rows(section: &str, header: &str) -> Vec<Vec<String>> {
    let table = section.split(header).nth(1).expect("table header");
    table
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| line.trim_matches('|').split(" | ").map(|cell| cell.trim().to_owned()).collect())
        .collect()
}

fn names_in(cell: &str) -> Vec<String> {
    cell.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

#[test]
fn rights_table_matches_the_code() {
    let section = control_section();
    let rows = table_rows(&section, "| rights | verbs |");
    assert_eq!(rows.len(), 2);
    let mut documented = 0;
    for row in rows {
        let rights = match names_in(&row[0]).as_slice() {
            [name] if name == "read" => Rights::Read,
            [name] if name == "control" => Rights::Control,
            other => panic!("rights cell {other:?}"),
        };
        for name in names_in(&row[1]) {
            let verb = Verb::from_name(&name).unwrap_or_else(|| panic!("documented verb {name} does not exist"));
            assert_eq!(verb.required_rights(), rights, "{verb}");
            documented += 1;
        }
    }
    assert_eq!(documented, Verb::ALL.len());
}

#[test]
fn error_table_matches_the_code() {
    let section = control_section();
    let rows = table_rows(&section, "| code | `details` | meaning | CLI exit |");
    let codes: Vec<ErrorCode> = rows
        .iter()
        .map(|row| {
            let name = &names_in(&row[0])[0];
            let code: ErrorCode = serde_json::from_value(Value::String(name.clone())).expect("known code");
            assert_eq!(row[1] != "—", code.has_details(), "{name}: details column");
            assert_eq!(row[3].parse::<u8>().expect("exit column"), exit_code(code), "{name}: exit column");
            code
        })
        .collect();
    assert_eq!(codes, ErrorCode::ALL.to_vec());
}

/// The python block that follows the `example: control-raw-python` marker.
fn documented_raw_python() -> String {
    let section = control_section();
    let after = section.split("<!-- example: control-raw-python").nth(1).expect("example marker");
    let code = after.split("```python\n").nth(1).expect("python block");
    code.split("```").next().expect("block end").to_owned()
}

#[test]
fn documented_sdk_free_python_example_lists_plugins() {
    let code = documented_raw_python();
    assert!(!code.contains("wfsandbox_client"), "the example must not use the client module");
    assert!(code.lines().count() <= 15, "the example should stay short");
    let path = std::env::temp_dir().join(format!("wf-control-doc-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).expect("bind");
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        serve(stream, ServerMessage::Welcome(welcome(Rights::Read)), |request| {
            let plugins = vec![summary(PluginState::Running), summary(PluginState::Stopped)];
            vec![ok(request.id, &Reply::List(ListResult { plugins }))]
        })
    });
    let output = Command::new("python3")
        .args(["-c", &code])
        .env_clear()
        .env("WFSANDBOX_SOCKET", &path)
        .output()
        .expect("python3 must be installed");
    let requests = server.join().expect("server");
    std::fs::remove_file(&path).expect("cleanup");
    assert!(output.status.success(), "python failed: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "energy_monitor running 4242\nenergy_monitor stopped None\n");
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].call.verb(), Verb::List);
}
