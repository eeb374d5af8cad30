//! An incremental frame decoder for non-blocking readers.
//!
//! It buffers at most one frame: the 4 header bytes live in a fixed array and the body
//! buffer is reserved only after the length prefix has passed the cap, so a peer claiming a
//! 4 GiB frame costs nothing. [`FrameDecoder::push`] takes only the bytes that belong to the
//! current frame and says how many it took; the caller keeps the rest until the frame has
//! been taken with [`FrameDecoder::next_frame`].

use crate::codec::decode_body;
use crate::error::ProtocolError;
use crate::message::WireMessage;
use crate::{effective_cap, HEADER_LEN};

/// Why the stream's framing was lost; once set, the decoder discards all further input.
#[derive(Debug, Clone, Copy)]
enum Fault {
    ZeroLength,
    Oversized { len: u32 },
}

#[derive(Debug)]
pub struct FrameDecoder {
    max: u32,
    header: [u8; HEADER_LEN],
    header_filled: usize,
    /// Body length announced by the current header, once the header is complete and valid.
    body_len: Option<usize>,
    body: Vec<u8>,
    fault: Option<Fault>,
}

impl FrameDecoder {
    /// A decoder that accepts bodies of at most `max_bytes` (lowered to
    /// [`crate::MAX_FRAME_BYTES_CEILING`]).
    pub fn new(max_bytes: u32) -> Self {
        Self {
            max: effective_cap(max_bytes),
            header: [0; HEADER_LEN],
            header_filled: 0,
            body_len: None,
            body: Vec::new(),
            fault: None,
        }
    }

    /// The cap this decoder enforces.
    pub fn max_bytes(&self) -> u32 {
        self.max
    }

    /// Takes the bytes of `input` that belong to the current frame and returns how many it
    /// took. It takes nothing while a complete frame waits in [`Self::next_frame`]. After a
    /// framing error it takes (and discards) everything, so a caller's loop always advances.
    pub fn push(&mut self, input: &[u8]) -> usize {
        if self.fault.is_some() {
            return input.len();
        }
        let from_header = self.fill_header(input);
        if self.fault.is_some() {
            return input.len();
        }
        from_header + self.fill_body(&input[from_header..])
    }

    /// How many more bytes complete the current frame (header or body); 0 when a frame is
    /// ready or the stream is broken. Lets a reader read exactly what is needed.
    pub fn bytes_wanted(&self) -> usize {
        if self.fault.is_some() {
            return 0;
        }
        match self.body_len {
            None => HEADER_LEN - self.header_filled,
            Some(len) => len - self.body.len(),
        }
    }

    /// Decodes the buffered frame if it is complete. `Ok(None)` means more bytes are needed.
    /// A bad body is reported once and the decoder moves on to the next frame; a bad header
    /// (zero or over-cap length) is reported on every call, because framing is lost.
    pub fn next_frame<T: WireMessage>(&mut self) -> Result<Option<T>, ProtocolError> {
        if let Some(fault) = self.fault {
            return Err(fault_error(fault, self.max));
        }
        match self.body_len {
            Some(len) if self.body.len() == len => {
                let decoded = decode_body(&self.body, self.max);
                self.start_next_frame();
                decoded.map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Call at end of stream: an error if the stream ended inside a frame or was broken.
    pub fn finish(&self) -> Result<(), ProtocolError> {
        if let Some(fault) = self.fault {
            return Err(fault_error(fault, self.max));
        }
        if self.header_filled > 0 {
            return Err(ProtocolError::Truncated);
        }
        Ok(())
    }

    /// Bytes of heap memory the decoder holds (never more than the cap).
    pub fn buffered_capacity(&self) -> usize {
        self.body.capacity()
    }

    fn fill_header(&mut self, input: &[u8]) -> usize {
        if self.body_len.is_some() {
            return 0;
        }
        let take = (HEADER_LEN - self.header_filled).min(input.len());
        self.header[self.header_filled..self.header_filled + take].copy_from_slice(&input[..take]);
        self.header_filled += take;
        if self.header_filled == HEADER_LEN {
            self.accept_header();
        }
        take
    }

    fn accept_header(&mut self) {
        let len = u32::from_be_bytes(self.header);
        if len == 0 {
            self.fault = Some(Fault::ZeroLength);
        } else if len > self.max {
            self.fault = Some(Fault::Oversized { len });
        } else {
            // len <= max <= the ceiling, so this reserve is bounded.
            let len = len as usize;
            self.body.reserve_exact(len);
            self.body_len = Some(len);
        }
    }

    fn fill_body(&mut self, input: &[u8]) -> usize {
        let Some(len) = self.body_len else {
            return 0;
        };
        let take = (len - self.body.len()).min(input.len());
        self.body.extend_from_slice(&input[..take]);
        take
    }

    fn start_next_frame(&mut self) {
        self.header_filled = 0;
        self.body_len = None;
        self.body.clear();
    }
}

fn fault_error(fault: Fault, max: u32) -> ProtocolError {
    match fault {
        Fault::ZeroLength => ProtocolError::ZeroLength,
        Fault::Oversized { len } => ProtocolError::Oversized { len: u64::from(len), max },
    }
}
