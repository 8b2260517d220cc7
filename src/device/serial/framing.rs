//! Splitting a serial byte stream (`embedded_io`, with read timeouts) into lines.
//!
//! The same rules as `crate::infer::StreamLineReader` (over `std::io`): a line ends at `\n`, one
//! trailing `\r` is dropped and does not count against the limit, a longer line is one error
//! item and is discarded up to its `\n`, a line that is not UTF-8 is one error item. A read
//! timeout loses nothing (a partial line is kept for the next call); empty lines are skipped.

use std::time::Instant;

use embedded_io::{ErrorKind, Read};
use thiserror::Error;

/// Default longest line, in bytes (without the line ending).
pub const DEFAULT_MAX_LINE: usize = 1024;

/// Size of the buffer each `read` fills.
const CHUNK: usize = 256;

/// One received line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialLine {
    /// The text, without `\n` or a trailing `\r`.
    pub text: String,
    /// When the read that delivered the line's last byte returned (for latency figures).
    pub received_at: Instant,
}

/// A line that could not be delivered, or a read error. Only [`LineError::Read`] comes from
/// the stream itself; after any of them, the next call continues with the next bytes.
#[derive(Debug, Error)]
pub enum LineError<E: core::fmt::Debug> {
    /// The line was longer than the limit; all of it was discarded.
    #[error("line too long: {len} bytes (limit {limit}); discarded")]
    TooLong {
        /// Length of the line in bytes (without the line ending).
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The line was not valid UTF-8; it was discarded.
    #[error("line is not valid UTF-8 (first bad byte at offset {valid_up_to}); discarded")]
    NotUtf8 {
        /// Bytes before the first invalid sequence.
        valid_up_to: usize,
    },
    /// The reader failed; no data was lost (a partial line is kept for the next call).
    #[error("serial read failed: {0:?}")]
    Read(E),
}

impl<E: embedded_io::Error> LineError<E> {
    /// True for a read timeout: nothing arrived in time, call again (and do periodic work,
    /// such as [`Executor::service`](super::super::Executor::service), in between).
    pub fn is_timeout(&self) -> bool {
        matches!(self, LineError::Read(e) if e.kind() == ErrorKind::TimedOut)
    }
}

/// Reads lines from an [`embedded_io::Read`] stream.
///
/// Lines end with `\n`; one trailing `\r` is removed; empty lines are skipped. A line
/// longer than the limit is discarded as a whole (up to its `\n`) and gives one
/// [`LineError::TooLong`]; invalid UTF-8 gives [`LineError::NotUtf8`] for that line only.
/// At end of stream, unterminated trailing text is returned as a last line, then `None`.
pub struct SerialLineReader<R: Read> {
    reader: R,
    max_len: usize,
    line: Vec<u8>,
    /// Length of the line being discarded since it passed the limit.
    overflow: Option<usize>,
    chunk: Box<[u8; CHUNK]>,
    start: usize,
    end: usize,
    eof: bool,
    last_read_at: Option<Instant>,
}

impl<R: Read> SerialLineReader<R> {
    /// A reader of lines of at most `max_len` bytes (without the line ending).
    pub fn new(reader: R, max_len: usize) -> Self {
        Self {
            reader,
            max_len,
            line: Vec::new(),
            overflow: None,
            chunk: Box::new([0; CHUNK]),
            start: 0,
            end: 0,
            eof: false,
            last_read_at: None,
        }
    }

    /// The underlying stream (e.g. to write answers back on the same port).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.reader
    }

    /// Gives the stream back (bytes read but not yet returned are lost).
    pub fn into_inner(self) -> R {
        self.reader
    }

    /// The next line, an error for one bad line or a failed read, or `None` at end of stream.
    pub fn next_line(&mut self) -> Option<Result<SerialLine, LineError<R::Error>>> {
        loop {
            let pending = &self.chunk[self.start..self.end];
            if let Some(i) = pending.iter().position(|&b| b == b'\n') {
                let end = self.start + i;
                self.append(self.start, end);
                self.start = end + 1;
                match self.finish_line() {
                    Some(item) => return Some(item),
                    None => continue,
                }
            }
            self.append(self.start, self.end);
            self.start = self.end;
            if self.eof {
                return self.finish_line();
            }
            match self.reader.read(&mut self.chunk[..]) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.last_read_at = Some(Instant::now());
                    self.start = 0;
                    self.end = n;
                }
                Err(e) => return Some(Err(LineError::Read(e))),
            }
        }
    }

    fn append(&mut self, from: usize, to: usize) {
        let bytes = &self.chunk[from..to];
        if let Some(len) = &mut self.overflow {
            *len += bytes.len();
        // One extra byte for a possible trailing '\r' that is not part of the line.
        } else if self.line.len() + bytes.len() > self.max_len.saturating_add(1) {
            self.overflow = Some(self.line.len() + bytes.len());
            self.line.clear();
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    /// Ends the current line; `None` for an empty line (skipped).
    fn finish_line(&mut self) -> Option<Result<SerialLine, LineError<R::Error>>> {
        let received_at = self.last_read_at.unwrap_or_else(Instant::now);
        if let Some(len) = self.overflow.take() {
            return Some(Err(LineError::TooLong {
                len,
                limit: self.max_len,
            }));
        }
        let mut bytes = std::mem::take(&mut self.line);
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        if bytes.len() > self.max_len {
            return Some(Err(LineError::TooLong {
                len: bytes.len(),
                limit: self.max_len,
            }));
        }
        if bytes.is_empty() {
            return None;
        }
        Some(match String::from_utf8(bytes) {
            Ok(text) => Ok(SerialLine { text, received_at }),
            Err(e) => Err(LineError::NotUtf8 {
                valid_up_to: e.utf8_error().valid_up_to(),
            }),
        })
    }
}
