//! Forwarding the plugin's stdout and stderr with a hard byte budget.
//!
//! Bytes are copied through a fixed buffer as they arrive, never accumulated, so a
//! plugin that floods (with or without newlines) cannot grow the supervisor's memory.
//! Past the budget the rest is read and dropped, and counted for the report.
//!
//! The output reaches an operator's terminal and logs, so it is made inert: every line
//! carries the plugin's name as a prefix (no plugin line can pose as the supervisor's),
//! and control characters — escape sequences, carriage returns, C1 controls — are
//! written as visible `\xNN` escapes.

use std::io::{self, Read, Write};

pub const CHUNK: usize = 16 * 1024;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct OutputCounters {
    pub forwarded_bytes: u64,
    pub dropped_bytes: u64,
}

pub struct OutputForwarder {
    budget: u64,
    counters: OutputCounters,
    truncation_noted: bool,
    /// Once the budget is spent, nothing more is forwarded (not even short lines).
    exhausted: bool,
    sanitizer: Sanitizer,
}

/// Line prefixing and control-character escaping, across chunk boundaries. Input is
/// decoded as UTF-8 as it streams: a character that controls a terminal (C0 but tab and
/// newline, DEL, C1, bidi controls) and any byte that is not part of valid UTF-8 (a lone
/// 0x9B is CSI to some terminals) are written as `\xNN` escapes.
struct Sanitizer {
    prefix: Vec<u8>,
    at_line_start: bool,
    /// An incomplete multi-byte sequence and how many bytes it still needs.
    pending: Vec<u8>,
    need: usize,
}

impl Sanitizer {
    fn new(prefix: Vec<u8>) -> Self {
        Self { prefix, at_line_start: true, pending: Vec::with_capacity(4), need: 0 }
    }

    fn push_escaped(out: &mut Vec<u8>, byte: u8) {
        out.extend_from_slice(format!("\\x{byte:02x}").as_bytes());
    }

    fn start_line_if_needed(&mut self, out: &mut Vec<u8>) {
        if self.at_line_start {
            out.extend_from_slice(&self.prefix);
            self.at_line_start = false;
        }
    }

    /// An incomplete sequence that will not be completed: escape what there is.
    fn flush_pending(&mut self, out: &mut Vec<u8>) {
        for byte in std::mem::take(&mut self.pending) {
            Self::push_escaped(out, byte);
        }
        self.need = 0;
    }

    fn finish_sequence(&mut self, out: &mut Vec<u8>) {
        let bytes = std::mem::take(&mut self.pending);
        let char = std::str::from_utf8(&bytes).ok().and_then(|s| s.chars().next());
        match char {
            Some(c) if !crate::terminal_text::is_terminal_control(c) => out.extend_from_slice(&bytes),
            _ => bytes.iter().for_each(|b| Self::push_escaped(out, *b)),
        }
        self.need = 0;
    }

    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &byte in input {
            if self.need > 0 {
                if (0x80..=0xbf).contains(&byte) {
                    self.pending.push(byte);
                    self.need -= 1;
                    if self.need == 0 {
                        self.finish_sequence(out);
                    }
                    continue;
                }
                self.flush_pending(out);
            }
            self.start_line_if_needed(out);
            match byte {
                b'\n' => {
                    out.push(b'\n');
                    self.at_line_start = true;
                }
                b'\t' => out.push(b'\t'),
                0x20..=0x7e => out.push(byte),
                0xc2..=0xf4 => {
                    self.pending.push(byte);
                    self.need = match byte {
                        0xc2..=0xdf => 1,
                        0xe0..=0xef => 2,
                        _ => 3,
                    };
                }
                _ => Self::push_escaped(out, byte),
            }
        }
    }

    /// End a plugin line left open, so the next line (the supervisor's, or the plugin's
    /// after it) starts clean and prefixed.
    fn end_line(&mut self, out: &mut Vec<u8>) {
        self.flush_pending(out);
        if !self.at_line_start {
            out.push(b'\n');
            self.at_line_start = true;
        }
    }
}

/// What one read from a plugin stream produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Pumped {
    Data(usize),
    WouldBlock,
    Eof,
}

impl OutputForwarder {
    /// `label` names the plugin in the prefix of every forwarded line.
    pub fn new(budget: u64, label: &str) -> Self {
        let sanitizer = Sanitizer::new(format!("[{label}] ").into_bytes());
        Self { budget, counters: OutputCounters::default(), truncation_noted: false, exhausted: false, sanitizer }
    }

    pub fn counters(&self) -> OutputCounters {
        self.counters
    }

    /// Close any open plugin line before the supervisor writes a line of its own.
    pub fn end_line(&mut self, dst: &mut dyn Write) {
        let mut out = Vec::new();
        self.sanitizer.end_line(&mut out);
        if !out.is_empty() {
            let _ = dst.write_all(&out);
        }
    }

    /// Read once from `src` and forward what fits in the budget to `dst`.
    pub fn pump(&mut self, src: &mut dyn Read, dst: &mut dyn Write) -> io::Result<Pumped> {
        let mut buf = [0u8; CHUNK];
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(Pumped::Eof),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Pumped::WouldBlock),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Pumped::Data(0)),
            Err(e) => return Err(e),
        };
        // The budget counts what reaches the host (prefixes and escapes included), so
        // take input while what it becomes still fits.
        let mut clean = Vec::with_capacity(n + 64);
        let mut scratch = Vec::with_capacity(64);
        let mut take = 0;
        while take < n && !self.exhausted {
            scratch.clear();
            self.sanitizer.feed(&buf[take..take + 1], &mut scratch);
            if self.counters.forwarded_bytes + (clean.len() + scratch.len()) as u64 > self.budget {
                // Over budget: this byte and everything after it is dropped (the
                // sanitizer's state no longer matters).
                self.exhausted = true;
                break;
            }
            clean.extend_from_slice(&scratch);
            take += 1;
        }
        if !clean.is_empty() {
            // The host's stderr failing must not stop the sandbox; count it as dropped.
            match dst.write_all(&clean) {
                Ok(()) => self.counters.forwarded_bytes += clean.len() as u64,
                Err(_) => self.counters.dropped_bytes += take as u64,
            }
        }
        let dropped = (n - take) as u64;
        if dropped > 0 {
            self.counters.dropped_bytes += dropped;
            if !self.truncation_noted {
                self.truncation_noted = true;
                let _ = writeln!(
                    dst,
                    "\n[wfsandbox: plugin output limit of {} bytes reached; dropping the rest]",
                    self.budget
                );
            }
        }
        Ok(Pumped::Data(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_within_budget_and_counts_the_rest() {
        let mut fwd = OutputForwarder::new(10, "p");
        let mut src: &[u8] = &[b'x'; 25];
        let mut out = Vec::new();
        while fwd.pump(&mut src, &mut out).unwrap() != Pumped::Eof {}
        // The prefix counts: "[p] " (4) + 6 bytes of input fill the 10-byte budget.
        assert_eq!(fwd.counters(), OutputCounters { forwarded_bytes: 10, dropped_bytes: 19 });
        assert!(out.starts_with(b"[p] xxxxxx"));
        assert!(String::from_utf8_lossy(&out).contains("output limit"));
    }

    #[test]
    fn a_flood_without_newlines_is_never_buffered() {
        let mut fwd = OutputForwarder::new(1024, "p");
        let flood = vec![b'a'; 10 * 1024 * 1024];
        let mut src: &[u8] = &flood;
        let mut out = Vec::new();
        while fwd.pump(&mut src, &mut out).unwrap() != Pumped::Eof {}
        assert!(out.len() < 2048 + 64, "forwarded {} bytes", out.len());
        assert_eq!(fwd.counters().forwarded_bytes, 1024);
        assert_eq!(fwd.counters().dropped_bytes, 10 * 1024 * 1024 - (1024 - 4));
    }

    fn sanitize(chunks: &[&[u8]]) -> String {
        let mut fwd = OutputForwarder::new(1 << 20, "plug");
        let mut out = Vec::new();
        for chunk in chunks {
            let mut src: &[u8] = chunk;
            while fwd.pump(&mut src, &mut out).unwrap() != Pumped::Eof {}
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_line_is_prefixed_with_the_plugin() {
        assert_eq!(sanitize(&[b"one\ntw", b"o\n"]), "[plug] one\n[plug] two\n");
    }

    #[test]
    fn escape_sequences_and_carriage_returns_are_made_visible() {
        let out = sanitize(&[b"\x1b]0;pwned\x07ok\r\nwfsandbox: fake\n"]);
        assert_eq!(out, "[plug] \\x1b]0;pwned\\x07ok\\x0d\n[plug] wfsandbox: fake\n");
        assert!(!out.contains('\x1b'));
    }

    #[test]
    fn newline_floods_cannot_multiply_past_the_budget() {
        let mut fwd = OutputForwarder::new(1000, "a-long-plugin-name");
        let flood = vec![b'\n'; 100_000];
        let mut src: &[u8] = &flood;
        let mut out = Vec::new();
        while fwd.pump(&mut src, &mut out).unwrap() != Pumped::Eof {}
        let forwarded = fwd.counters().forwarded_bytes;
        assert!(forwarded <= 1000, "{forwarded} bytes of prefixes forwarded for a 1000-byte budget");
        let text = String::from_utf8(out).unwrap();
        let notice = text.find("\n[wfsandbox: plugin output limit").expect("truncation notice");
        assert_eq!(notice as u64, forwarded, "the report counts exactly what was written");
    }

    #[test]
    fn lone_c1_bytes_bidi_and_invalid_utf8_are_escaped() {
        // A lone 0x9B (CSI in 8-bit terminals), U+202E (RTL override), an overlong
        // encoding and a truncated sequence before a newline.
        let out = sanitize(&[b"a\x9bb \xe2\x80\xae c \xc0\xaf d \xe2\x82\n"]);
        assert_eq!(out, "[plug] a\\x9bb \\xe2\\x80\\xae c \\xc0\\xaf d \\xe2\\x82\n");
    }

    #[test]
    fn a_line_left_open_is_closed_before_the_supervisor_speaks() {
        let mut fwd = OutputForwarder::new(1 << 20, "p");
        let mut out = Vec::new();
        let mut src: &[u8] = b"partial";
        while fwd.pump(&mut src, &mut out).unwrap() != Pumped::Eof {}
        fwd.end_line(&mut out);
        out.extend_from_slice(b"wfsandbox: supervisor line\n");
        let mut src: &[u8] = b"wfsandbox: fake\n";
        while fwd.pump(&mut src, &mut out).unwrap() != Pumped::Eof {}
        assert_eq!(String::from_utf8(out).unwrap(), "[p] partial\nwfsandbox: supervisor line\n[p] wfsandbox: fake\n");
    }

    #[test]
    fn c1_controls_are_escaped_even_split_across_chunks_but_utf8_survives() {
        // U+009B (CSI) is C2 9B in UTF-8; "é" is C3 A9, "¢" is C2 A2.
        let out = sanitize(&[b"a\xc2", b"\x9bb \xc3\xa9 \xc2\xa2\n"]);
        assert_eq!(out, "[plug] a\\xc2\\x9bb é ¢\n");
    }
}
