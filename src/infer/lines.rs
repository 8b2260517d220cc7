//! Reading text lines from a stream (a file, stdin, a socket, a serial port) with a hard limit on
//! a line's length: a line that is too long or not UTF-8 is one error item, and the stream goes
//! on. Nothing is allocated beyond the limit, whatever the input.

use std::io::{self, BufRead};

/// The longest line read, in bytes (far beyond any model's token limit: the rest of a longer line
/// would be truncated anyway).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// One line of input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// The line's text, without its line break (`\n` or `\r\n`).
    Text(String),
    /// The line could not be used; the message says why (the stream continues after it).
    Bad(String),
}

/// Splits a byte stream into [`Line`]s, numbered from 1.
pub struct LineReader<R> {
    inner: R,
    max: usize,
    number: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> LineReader<R> {
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
    pub fn next_line(&mut self) -> io::Result<Option<(usize, Line)>> {
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
                if self.buf.len() + take > self.max {
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
        if too_long {
            return Ok(Some((
                self.number,
                Line::Bad(format!("line longer than {} bytes", self.max)),
            )));
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        let line = match std::str::from_utf8(&self.buf) {
            Ok(s) => Line::Text(s.to_string()),
            Err(e) => Line::Bad(format!(
                "not UTF-8 text (invalid byte at column {})",
                e.valid_up_to() + 1
            )),
        };
        Ok(Some((self.number, line)))
    }
}

impl<R: BufRead> Iterator for LineReader<R> {
    type Item = io::Result<(usize, Line)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_line().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<(usize, Line)> {
        LineReader::new(io::BufReader::with_capacity(3, input), max)
            .map(|l| l.unwrap())
            .collect()
    }

    #[test]
    fn limits_length_and_reports_bad_bytes_per_line() {
        let got = lines(b"hello\r\n\xff\xfe\nabcdefghij\nok", 8);
        assert_eq!(
            got,
            vec![
                (1, Line::Text("hello".into())),
                (
                    2,
                    Line::Bad("not UTF-8 text (invalid byte at column 1)".into())
                ),
                (3, Line::Bad("line longer than 8 bytes".into())),
                (4, Line::Text("ok".into())),
            ]
        );
        assert_eq!(lines(b"", 8), vec![]);
        assert_eq!(lines(b"\n", 8), vec![(1, Line::Text(String::new()))]);
    }
}
