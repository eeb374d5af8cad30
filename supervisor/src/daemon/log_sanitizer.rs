//! Making captured plugin output inert before anyone reads it.
//!
//! Logs end up on an operator's terminal and in orchestrator UIs, so a plugin must not be able
//! to send escape sequences through them. As in `output.rs` (the one-shot forwarder), every
//! C0 control except `\n` and `\t`, DEL, and every C1 control (U+0080..U+009F, encoded
//! `C2 80`..`C2 9F`) is written as a visible `\xNN` escape; other bytes, including the rest of
//! UTF-8, pass unchanged. The state carries across chunks, so a C1 control split between two
//! reads is still caught.

/// The most bytes one input byte can become (`\xNN`).
pub const MAX_EXPANSION: usize = 4;

#[derive(Debug, Clone, Default)]
pub struct LogSanitizer {
    /// A 0xC2 byte waiting to see whether a C1 control follows.
    pending_c2: bool,
}

fn is_special(byte: u8) -> bool {
    matches!(byte, 0x00..=0x08 | 0x0b..=0x1f | 0x7f | 0xc2)
}

fn push_escaped(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(&[b'\\', b'x', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]]);
}

impl LogSanitizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the inert form of `input` to `out` (at most `MAX_EXPANSION × input.len() + 1`
    /// bytes, the extra one being a 0xC2 held back from the previous call).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut rest = input;
        while let Some((&first, tail)) = rest.split_first() {
            if self.pending_c2 {
                self.pending_c2 = false;
                if (0x80..=0x9f).contains(&first) {
                    push_escaped(out, 0xc2);
                    push_escaped(out, first);
                    rest = tail;
                    continue;
                }
                out.push(0xc2);
            }
            let plain = rest.iter().position(|&b| is_special(b)).unwrap_or(rest.len());
            out.extend_from_slice(&rest[..plain]);
            rest = &rest[plain..];
            if let Some((&special, tail)) = rest.split_first() {
                if special == 0xc2 {
                    self.pending_c2 = true;
                } else {
                    push_escaped(out, special);
                }
                rest = tail;
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
        assert_eq!(clean(&[b"hello\tworld\n", b"caf\xc3\xa9 \xc2\xa2\n"]), b"hello\tworld\ncaf\xc3\xa9 \xc2\xa2\n");
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
    fn the_expansion_bound_holds_for_the_worst_input() {
        let worst = [0x1bu8; 1000];
        assert_eq!(clean(&[&worst]).len(), MAX_EXPANSION * worst.len());
    }
}
