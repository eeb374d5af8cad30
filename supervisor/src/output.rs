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
    sanitizer: Sanitizer,
}

/// Line prefixing and control-character escaping, across chunk boundaries.
struct Sanitizer {
    prefix: Vec<u8>,
    at_line_start: bool,
    /// A 0xC2 byte waiting to see whether a C1 control (0x80..=0x9F) follows.
    pending_c2: bool,
}

impl Sanitizer {
    fn push_escaped(out: &mut Vec<u8>, byte: u8) {
        out.extend_from_slice(format!("\\x{byte:02x}").as_bytes());
    }

    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &byte in input {
            if self.at_line_start {
                out.extend_from_slice(&self.prefix);
                self.at_line_start = false;
            }
            if self.pending_c2 {
                self.pending_c2 = false;
                if (0x80..=0x9f).contains(&byte) {
                    Self::push_escaped(out, 0xc2);
                    Self::push_escaped(out, byte);
                    continue;
                }
                out.push(0xc2);
            }
            match byte {
                b'\n' => {
                    out.push(b'\n');
                    self.at_line_start = true;
                }
                b'\t' => out.push(b'\t'),
                0xc2 => self.pending_c2 = true,
                0x00..=0x1f | 0x7f => Self::push_escaped(out, byte),
                _ => out.push(byte),
            }
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
        let sanitizer =
            Sanitizer { prefix: format!("[{label}] ").into_bytes(), at_line_start: true, pending_c2: false };
        Self { budget, counters: OutputCounters::default(), truncation_noted: false, sanitizer }
    }

    pub fn counters(&self) -> OutputCounters {
        self.counters
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
        let remaining = self.budget.saturating_sub(self.counters.forwarded_bytes);
        let take = (n as u64).min(remaining) as usize;
        if take > 0 {
            let mut clean = Vec::with_capacity(take + 64);
            self.sanitizer.feed(&buf[..take], &mut clean);
            // The host's stderr failing must not stop the sandbox; count it as dropped.
            match dst.write_all(&clean) {
                Ok(()) => self.counters.forwarded_bytes += take as u64,
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
        assert_eq!(fwd.counters(), OutputCounters { forwarded_bytes: 10, dropped_bytes: 15 });
        assert!(out.starts_with(b"[p] xxxxxxxxxx"));
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
        assert_eq!(fwd.counters().dropped_bytes, 10 * 1024 * 1024 - 1024);
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
    fn c1_controls_are_escaped_even_split_across_chunks_but_utf8_survives() {
        // U+009B (CSI) is C2 9B in UTF-8; "é" is C3 A9, "¢" is C2 A2.
        let out = sanitize(&[b"a\xc2", b"\x9bb \xc3\xa9 \xc2\xa2\n"]);
        assert_eq!(out, "[plug] a\\xc2\\x9bb é ¢\n");
    }
}
