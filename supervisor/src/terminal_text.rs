//! Making text that a plugin influenced safe to show to a person.
//!
//! Operators read the supervisor's stderr and stdout on terminals, where C0/C1 control
//! characters drive the terminal (titles, clipboard writes, cursor moves) and bidi
//! controls reorder what is seen. Everything a plugin can influence — its output, error
//! messages quoting its frames, the payloads it publishes — passes through here.

use std::fmt::Write as _;

/// Characters that control a terminal or the direction of text: C1 controls and the
/// Unicode bidi embedding/override/isolate/mark characters.
pub fn is_terminal_control(c: char) -> bool {
    matches!(c, '\u{80}'..='\u{9f}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{061c}')
}

/// `text` on one line with every control character (C0 including newlines, DEL, C1,
/// bidi) written as a visible `\u{..}` escape.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || is_terminal_control(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// A JSON value on one line, with C1 and bidi characters inside strings written as
/// `\uXXXX` escapes (still valid JSON, and the same value once parsed). serde_json
/// already escapes C0 and DEL is left alone by it, so DEL is escaped here too.
pub fn json_line(value: &serde_json::Value) -> String {
    let raw = value.to_string();
    if !raw.chars().any(|c| c == '\u{7f}' || is_terminal_control(c)) {
        return raw;
    }
    let mut out = String::with_capacity(raw.len() + 16);
    for c in raw.chars() {
        if c == '\u{7f}' || is_terminal_control(c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_makes_controls_visible_and_keeps_text() {
        assert_eq!(escape("ok é"), "ok é");
        assert_eq!(escape("a\u{1b}]0;x\u{7}\nwfsandbox: fake"), "a\\u{1b}]0;x\\u{7}\\u{a}wfsandbox: fake");
        assert_eq!(escape("\u{9b}31m\u{202e}abc"), "\\u{9b}31m\\u{202e}abc");
    }

    #[test]
    fn json_lines_escape_c1_and_bidi_but_parse_to_the_same_value() {
        let value = serde_json::json!({ "text": "a\u{9b}b\u{202e}c\u{7f}", "n": 1 });
        let line = json_line(&value);
        assert!(!line.chars().any(|c| c == '\u{7f}' || is_terminal_control(c)), "{line}");
        assert!(line.contains("\\u009b") && line.contains("\\u202e"), "{line}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&line).unwrap(), value);
    }
}
