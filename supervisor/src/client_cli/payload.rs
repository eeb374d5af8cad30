//! Parsing the JSON an operator hands to `publish` the way the daemon parses frames:
//! duplicate keys are an error, not "the last one wins" (which is what `serde_json::Value`
//! does, and which would silently send something other than what was typed).

use serde_json::Value;

/// The payload as typed, or serde_json's message (with line and column) for why not.
pub fn parse_payload(text: &str) -> Result<Value, serde_json::Error> {
    wf_protocol::parse_strict(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_json_value_parses_to_what_serde_json_makes_of_it() {
        for text in ["{\"watts\": 42.5, \"tags\": [\"a\", null, true, -3]}", "\"text\"", "7", "[]", "null"] {
            let expected: Value = serde_json::from_str(text).expect("valid JSON");
            assert_eq!(parse_payload(text).expect(text), expected);
        }
    }

    #[test]
    fn duplicate_keys_anywhere_are_refused() {
        let error = parse_payload("{\"a\": {\"b\": 1, \"b\": 2}}").expect_err("duplicate inner key");
        assert!(error.to_string().contains("duplicate key \"b\""), "{error}");
        assert!(parse_payload("[{\"x\": 1, \"x\": 1}]").is_err());
    }

    #[test]
    fn malformed_text_is_refused_not_guessed() {
        for text in ["", "{", "{\"a\": 1} trailing", "NaN", "{'a': 1}"] {
            assert!(parse_payload(text).is_err(), "{text:?}");
        }
    }
}
