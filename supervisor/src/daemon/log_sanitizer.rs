//! Making captured plugin output inert before anyone reads it.
//!
//! Logs end up on an operator's terminal and in orchestrator UIs, so a plugin must not be able
//! to send escape sequences or reorder text through them. Every C0 control except `\n` and
//! `\t`, DEL, every C1 control (U+0080..U+009F) and every bidi control that
//! `terminal_text::is_terminal_control` names (U+061C, U+200E, U+200F, U+202A..U+202E,
//! U+2066..U+2069) is written as visible `\xNN` escapes of its UTF-8 bytes; every other byte,
//! invalid UTF-8 included, passes unchanged. The state carries across chunks, so a control
//! split between two reads is still caught: up to [`MAX_HELD_BACK`] bytes that may begin one
//! wait for the next chunk.

/// The most bytes one input byte can become (`\xNN`).
pub const MAX_EXPANSION: usize = 4;
/// The most bytes held back from one call to the next (the first two of a bidi control).
pub const MAX_HELD_BACK: usize = 2;

/// The multi-byte controls, as (lead bytes, the range of their last byte).
const MULTI_BYTE: &[(&[u8], u8, u8)] = &[
    (&[0xc2], 0x80, 0x9f),       // C1
    (&[0xd8], 0x9c, 0x9c),       // U+061C arabic letter mark
    (&[0xe2, 0x80], 0x8e, 0x8f), // U+200E, U+200F
    (&[0xe2, 0x80], 0xaa, 0xae), // U+202A..U+202E
    (&[0xe2, 0x81], 0xa6, 0xa9), // U+2066..U+2069
];

#[derive(Debug, Clone, Default)]
pub struct LogSanitizer {
    /// Bytes that are a proper prefix of a multi-byte control, waiting for the rest.
    held: Vec<u8>,
}

fn is_single_byte_control(byte: u8) -> bool {
    matches!(byte, 0x00..=0x08 | 0x0b..=0x1f | 0x7f)
}

/// A byte that is a control by itself or may begin a multi-byte one.
fn needs_a_look(byte: u8) -> bool {
    is_single_byte_control(byte) || matches!(byte, 0xc2 | 0xd8 | 0xe2)
}

enum Match {
    Control,
    Prefix,
    Neither,
}

fn classify(bytes: &[u8]) -> Match {
    if let [single] = bytes {
        if is_single_byte_control(*single) {
            return Match::Control;
        }
    }
    let mut prefix = false;
    for (lead, low, high) in MULTI_BYTE {
        if bytes.len() == lead.len() + 1 && bytes.starts_with(lead) && (*low..=*high).contains(&bytes[lead.len()]) {
            return Match::Control;
        }
        prefix |= bytes.len() <= lead.len() && lead.starts_with(bytes);
    }
    if prefix {
        Match::Prefix
    } else {
        Match::Neither
    }
}

fn push_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &byte in bytes {
        out.extend_from_slice(&[b'\\', b'x', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]]);
    }
}

impl LogSanitizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the inert form of `input` to `out`: at most `MAX_EXPANSION × (input.len() +
    /// MAX_HELD_BACK)` bytes, the extra ones being bytes held back from the previous call.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut rest = input;
        while !rest.is_empty() {
            if self.held.is_empty() {
                let plain = rest.iter().position(|&b| needs_a_look(b)).unwrap_or(rest.len());
                out.extend_from_slice(&rest[..plain]);
                rest = &rest[plain..];
            }
            if let Some((&byte, tail)) = rest.split_first() {
                self.take(byte, out);
                rest = tail;
            }
        }
    }

    /// One byte that follows the held-back bytes (if any).
    fn take(&mut self, byte: u8, out: &mut Vec<u8>) {
        self.held.push(byte);
        loop {
            match classify(&self.held) {
                Match::Control => {
                    push_escaped(out, &self.held);
                    self.held.clear();
                    return;
                }
                Match::Prefix => return,
                Match::Neither => {
                    // The first held byte starts nothing: it is plain. The rest may still
                    // begin a control of their own.
                    out.push(self.held.remove(0));
                    if self.held.is_empty() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(chunks: &[&[u8]]) -> Vec<u8> {
        let mut sanitizer = LogSanitizer::new();
        let mut out = Vec::new();
        for chunk in chunks {
            sanitizer.feed(chunk, &mut out);
        }
        out
    }

    #[test]
    fn text_newlines_and_tabs_pass_unchanged() {
        let text = "hello\tworld\ncafé ¢ → ‐ \u{2060} ذ\n".as_bytes();
        assert_eq!(clean(&[text]), text);
    }

    #[test]
    fn escape_sequences_carriage_returns_and_del_become_visible() {
        assert_eq!(clean(&[b"\x1b[2Jx\r\x7f\x00"]), b"\\x1b[2Jx\\x0d\\x7f\\x00");
    }

    #[test]
    fn a_c1_control_split_across_chunks_is_escaped() {
        assert_eq!(clean(&[b"a\xc2", b"\x9bb"]), b"a\\xc2\\x9bb");
    }

    #[test]
    fn a_held_back_c2_followed_by_another_c2_is_handled_in_turn() {
        assert_eq!(clean(&[b"\xc2", b"\xc2\x85\xc2\xa0"]), b"\xc2\\xc2\\x85\xc2\xa0");
    }

    #[test]
    fn bidi_controls_are_escaped_whole_or_split() {
        let rlo = "\u{202e}".as_bytes();
        assert_eq!(clean(&[b"x", rlo, b"y"]), b"x\\xe2\\x80\\xaey");
        assert_eq!(clean(&[&rlo[..1], &rlo[1..2], &rlo[2..]]), b"\\xe2\\x80\\xae");
        for c in ['\u{61c}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{2066}', '\u{2069}'] {
            let out = clean(&[c.to_string().as_bytes()]);
            assert!(out.starts_with(b"\\x") && out.len() == 4 * c.len_utf8(), "{c:?}: {out:?}");
        }
    }

    #[test]
    fn a_broken_prefix_is_plain_and_what_follows_it_is_still_checked() {
        assert_eq!(clean(&[b"\xe2\x80", b"\x1b"]), b"\xe2\x80\\x1b");
        assert_eq!(clean(&[b"\xe2\xe2\x80\xae"]), b"\xe2\\xe2\\x80\\xae");
        assert_eq!(clean(&[b"\xe2\x80\xa0"]), "\u{2020}".as_bytes(), "a dagger is text");
    }

    #[test]
    fn the_expansion_bound_holds_for_the_worst_input() {
        let worst = [0x1bu8; 1000];
        assert_eq!(clean(&[&worst]).len(), MAX_EXPANSION * worst.len());
        let mut sanitizer = LogSanitizer::new();
        let mut out = Vec::new();
        sanitizer.feed(b"\xe2\x80", &mut out);
        assert!(out.is_empty(), "a possible bidi prefix is held back");
        out.clear();
        sanitizer.feed(b"\xae", &mut out);
        assert_eq!(out.len(), MAX_EXPANSION * (1 + MAX_HELD_BACK));
    }
}
