//! Privileges: no capabilities in any set, no_new_privs, and no fd but stdio and the channel.

use wf_integration_tests::probe;

#[test]
fn every_capability_set_is_empty_and_no_new_privs_is_set() {
    let line = probe(&["status"]).probe();
    let status = &line["status"];
    for set in ["CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"] {
        assert_eq!(status[set], "0000000000000000", "{set}: {line}");
    }
    assert_eq!(status["NoNewPrivs"], "1", "{line}");
}

#[test]
fn only_stdio_and_the_event_channel_are_open() {
    let line = probe(&["fds"]).probe();
    let fds: Vec<i64> = line["fds"].as_array().unwrap().iter().filter_map(|f| f["fd"].as_i64()).collect();
    assert_eq!(fds, vec![0, 1, 2, 3], "{line}");
    assert_eq!(line["fds"][0]["target"], "/dev/null");
    assert!(line["fds"][3]["target"].as_str().unwrap_or_default().starts_with("socket:"), "{line}");
}

#[test]
fn hard_rlimits_are_set() {
    let line = probe(&["status"]).probe();
    assert_eq!(line["rlimits"]["core"], serde_json::json!([0, 0]), "{line}");
    assert_eq!(line["rlimits"]["nofile"], serde_json::json!([256, 256]), "{line}");
}
