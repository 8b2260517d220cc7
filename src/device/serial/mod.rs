//! The serial line: one utterance per line in, one JSON line per answer out.
//!
//! [`SerialLineReader`] and [`write_json_line`] work over any `embedded_io` reader/writer;
//! [`SerialPort`] (feature `linux`) opens a real tty with a baud rate and exposes those
//! traits.

mod framing;
mod json;
#[cfg(feature = "linux")]
mod port;

pub use framing::{LineError, SerialLine, SerialLineReader, DEFAULT_MAX_LINE};
pub use json::{write_json_line, WriteLineError};
#[cfg(feature = "linux")]
pub use port::{SerialIoError, SerialOpenError, SerialPort};
