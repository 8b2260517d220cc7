//! Reading text lines from a `std::io` stream (a file, stdin, a socket) with a hard limit on a
//! line's length: a line that is too long or not UTF-8 is one error item, and the stream goes on.
//! Nothing is allocated beyond the limit, whatever the input.
//!
//! The same rules as the serial line's reader (`crate::device::serial::SerialLineReader`, over
//! `embedded_io` with read timeouts): a line ends at `\n`, one trailing `\r` is dropped and does
//! not count against the limit, a longer line is one error item and is discarded up to its `\n`,
//! a line that is not UTF-8 is one error item. This reader numbers the lines and also returns
//! empty ones (they are requests that get an answer); the serial one skips them.

use std::io::{self, BufRead};

/// The longest line read, in bytes (far beyond any model's token limit: the rest of a longer line
/// would be truncated anyway).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// One line of input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamLine {
    /// The line's text, without its line break (`\n` or `\r\n`).
    Text(String),
    /// The line could not be used; the message says why (the stream continues after it).
    Bad(String),
}

/// Splits a byte stream into [`StreamLine`]s, numbered from 1.
pub struct StreamLineReader<R> {
    inner: R,
    max: usize,
    number: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> StreamLineReader<R> {
    /// Lines of at most `max` bytes.
    pub fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            max,
            number: 0,
            buf: Vec::new(),
        }
    }

    /// The next line and its number, `None` at the end of the stream.
    pub fn next_line(&mut self) -> io::Result<Option<(usize, StreamLine)>> {
        self.buf.clear();
        let mut too_long = false;
        let mut any = false;
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                if !any {
                    return Ok(None);
                }
                break;
            }
            any = true;
            let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(p) => (p, true),
                None => (chunk.len(), false),
            };
            if !too_long {
                // One byte over the limit for a trailing '\r', which is not part of the line.
                if self.buf.len() + take > self.max.saturating_add(1) {
                    too_long = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(&chunk[..take]);
                }
            }
            self.inner.consume(take + usize::from(done));
            if done {
                break;
            }
        }
        self.number += 1;
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        if too_long || self.buf.len() > self.max {
            return Ok(Some((
                self.number,
                StreamLine::Bad(format!("line longer than {} bytes", self.max)),
            )));
        }
        let line = match std::str::from_utf8(&self.buf) {
            Ok(s) => StreamLine::Text(s.to_string()),
            Err(e) => StreamLine::Bad(format!(
                "not UTF-8 text (invalid byte at column {})",
                e.valid_up_to() + 1
            )),
        };
        Ok(Some((self.number, line)))
    }
}

impl<R: BufRead> Iterator for StreamLineReader<R> {
    type Item = io::Result<(usize, StreamLine)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_line().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<(usize, StreamLine)> {
        StreamLineReader::new(io::BufReader::with_capacity(3, input), max)
            .map(|l| l.unwrap())
            .collect()
    }

    #[test]
    fn limits_length_and_reports_bad_bytes_per_line() {
        let got = lines(b"hello\r\n\xff\xfe\nabcdefghij\nok", 8);
        assert_eq!(
            got,
            vec![
                (1, StreamLine::Text("hello".into())),
                (
                    2,
                    StreamLine::Bad("not UTF-8 text (invalid byte at column 1)".into())
                ),
                (3, StreamLine::Bad("line longer than 8 bytes".into())),
                (4, StreamLine::Text("ok".into())),
            ]
        );
        assert_eq!(lines(b"", 8), vec![]);
        assert_eq!(lines(b"\n", 8), vec![(1, StreamLine::Text(String::new()))]);
        // A trailing '\r' does not count against the limit (as on the serial line); a line of
        // the limit plus one byte is too long whether that byte is '\r' or not.
        assert_eq!(
            lines(b"12345678\r\n123456789\r\n12345678\r\r\n", 8),
            vec![
                (1, StreamLine::Text("12345678".into())),
                (2, StreamLine::Bad("line longer than 8 bytes".into())),
                (3, StreamLine::Bad("line longer than 8 bytes".into())),
            ]
        );
    }
}
