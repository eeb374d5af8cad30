//! Forwarding the plugin's stdout and stderr with a hard byte budget.
//!
//! Bytes are copied through a fixed buffer as they arrive, never accumulated, so a
//! plugin that floods (with or without newlines) cannot grow the supervisor's memory.
//! Past the budget the rest is read and dropped, and counted for the report.

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
}

/// What one read from a plugin stream produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Pumped {
    Data(usize),
    WouldBlock,
    Eof,
}

impl OutputForwarder {
    pub fn new(budget: u64) -> Self {
        Self { budget, counters: OutputCounters::default(), truncation_noted: false }
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
            // The host's stderr failing must not stop the sandbox; count it as dropped.
            match dst.write_all(&buf[..take]) {
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
        let mut fwd = OutputForwarder::new(10);
        let mut src: &[u8] = &[b'x'; 25];
        let mut out = Vec::new();
        while fwd.pump(&mut src, &mut out).unwrap() != Pumped::Eof {}
        assert_eq!(fwd.counters(), OutputCounters { forwarded_bytes: 10, dropped_bytes: 15 });
        assert!(out.starts_with(&[b'x'; 10]));
        assert!(String::from_utf8_lossy(&out).contains("output limit"));
    }

    #[test]
    fn a_flood_without_newlines_is_never_buffered() {
        let mut fwd = OutputForwarder::new(1024);
        let flood = vec![b'a'; 10 * 1024 * 1024];
        let mut src: &[u8] = &flood;
        let mut out = Vec::new();
        while fwd.pump(&mut src, &mut out).unwrap() != Pumped::Eof {}
        assert!(out.len() < 2048, "forwarded {} bytes", out.len());
        assert_eq!(fwd.counters().dropped_bytes, 10 * 1024 * 1024 - 1024);
    }
}
