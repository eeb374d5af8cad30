//! Reading a file line by line without ever holding more than one bounded line in memory.

use std::io::{self, BufRead};

/// One line of a file.
#[derive(Debug)]
pub struct Line {
    /// Byte offset of its first byte.
    pub offset: u64,
    /// Its bytes without the newline; empty when it was too long to keep.
    pub bytes: Vec<u8>,
    /// Its length without the newline.
    pub len: u64,
    pub has_newline: bool,
    pub too_long: bool,
}

pub struct LineReader<R> {
    inner: R,
    offset: u64,
    /// Lines longer than this, not counting the newline, are `too_long`.
    max_len: usize,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R, max_len: usize) -> Self {
        Self { inner, offset: 0, max_len }
    }

    /// The next line, or `None` at the end of the file.
    pub fn next_line(&mut self) -> io::Result<Option<Line>> {
        let mut line = Line { offset: self.offset, bytes: Vec::new(), len: 0, has_newline: false, too_long: false };
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                return Ok((line.len > 0).then_some(line));
            }
            let (content, consumed) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    line.has_newline = true;
                    (&chunk[..i], i + 1)
                }
                None => (chunk, chunk.len()),
            };
            line.len += content.len() as u64;
            if !line.too_long && line.bytes.len() + content.len() > self.max_len {
                line.too_long = true;
                line.bytes = Vec::new();
            }
            if !line.too_long {
                line.bytes.extend_from_slice(content);
            }
            self.inner.consume(consumed);
            self.offset += consumed as u64;
            if line.has_newline {
                return Ok(Some(line));
            }
        }
    }
}
