//! One client's stream of requests (standard input, a socket connection): lines read with
//! [`crate::infer::StreamLineReader`], each answered with one JSON line, in order.

use std::cell::Cell;
use std::io::{self, BufReader, Read, Write};
use std::rc::Rc;

use serde_json::Value;

use super::super::protocol::{ErrorCode, RequestError};
use crate::infer::{StreamLine, StreamLineReader, MAX_LINE_BYTES};

/// What a stream's requests are answered by.
pub trait Handler {
    /// The reply to request line `line` (number `number`).
    fn handle(&self, line: &str, number: usize) -> Value;
    /// The reply to a line that could not be read as text.
    fn reject(&self, error: RequestError, number: usize) -> Value;
    /// A request is in flight (read, not yet answered).
    fn begin(&self);
    /// The request begun last on this stream has been answered (or failed).
    fn end(&self);
    /// Whether the service is stopping (no new request is read).
    fn stopping(&self) -> bool;
}

/// Ends a request in flight on every path out of its iteration.
struct InFlight<'a>(&'a dyn Handler);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// Whether the bytes read so far ended without a line break at the end of the stream.
#[derive(Default)]
struct Ends {
    last: Cell<Option<u8>>,
    eof: Cell<bool>,
}

struct Tracked<R> {
    inner: R,
    ends: Rc<Ends>,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.ends.eof.set(true);
        } else {
            self.ends.last.set(Some(buf[n - 1]));
        }
        Ok(n)
    }
}

/// What kind of stream requests come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// Standard input: a last line without a line break is answered (`printf 'text' | serve`);
    /// reading stops when the service stops (standard input cannot be interrupted otherwise).
    Stdin,
    /// A client connection: a last line cut off by the end of the stream (a client that
    /// disconnected mid-line) gets an error; reading goes on to the end of the stream, which the
    /// service's stop brings about by shutting the reading side down, so every request received
    /// before the stop is answered.
    Connection,
}

/// Answers the requests read from `reader` on `writer`, in order, until the end of the stream or
/// a read error (see [`StreamKind`]). Returns the lines handled.
pub fn serve_stream<R: Read, W: Write>(
    handler: &dyn Handler,
    reader: R,
    mut writer: W,
    kind: StreamKind,
) -> io::Result<usize> {
    let ends = Rc::new(Ends::default());
    let tracked = Tracked {
        inner: reader,
        ends: Rc::clone(&ends),
    };
    let mut lines = StreamLineReader::new(BufReader::new(tracked), MAX_LINE_BYTES);
    let strict_end = kind == StreamKind::Connection;
    let mut handled = 0;
    while kind == StreamKind::Connection || !handler.stopping() {
        let next = match lines.next_line() {
            Ok(next) => next,
            Err(e) if strict_end && is_timeout(&e) => {
                let reply = handler.reject(
                    RequestError::new(
                        ErrorCode::Idle,
                        "no request within the idle time-out (--idle-timeout); the connection is closed",
                    ),
                    0,
                );
                write_reply(&mut writer, &reply)?;
                break;
            }
            Err(e) => return Err(e),
        };
        let Some((number, line)) = next else {
            break;
        };
        handler.begin();
        let _in_flight = InFlight(handler);
        let cut = ends.eof.get() && ends.last.get() != Some(b'\n');
        let reply = match line {
            _ if strict_end && cut => handler.reject(
                RequestError::new(
                    ErrorCode::Incomplete,
                    "the connection ended in the middle of this line (no line break)",
                ),
                number,
            ),
            StreamLine::Text(text) => handler.handle(&text, number),
            StreamLine::Bad(why) => {
                let code = if why.starts_with("line longer") {
                    ErrorCode::TooLong
                } else {
                    ErrorCode::BadText
                };
                handler.reject(RequestError::new(code, why), number)
            }
        };
        handled += 1;
        write_reply(&mut writer, &reply)?;
    }
    Ok(handled)
}

/// Whether a read failed because the connection's read time-out passed.
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn write_reply<W: Write>(writer: &mut W, reply: &Value) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(reply).unwrap_or_else(|_| b"{}".to_vec());
    bytes.push(b'\n');
    writer.write_all(&bytes)?;
    writer.flush()
}
