//! The serial line: utterances in, one JSON answer line out per utterance, on the same port.
//!
//! Lines are framed by [`crate::device::serial::SerialLineReader`] rather than `infer`'s reader: the
//! port's read timeout (the loop's tick, which lets the service stop) must not lose a line that
//! is split across reads. Lines are limited to [`MAX_SERIAL_LINE`] bytes.

use std::time::Duration;

use super::super::error::ServeError;
use super::super::protocol::{ErrorCode, RequestError};
use super::stream::Handler;
use crate::device::serial::{write_json_line, LineError, SerialLineReader, SerialPort};

/// Longest serial line, in bytes (an utterance is far shorter; a serial device's buffers are small).
pub const MAX_SERIAL_LINE: usize = crate::device::serial::DEFAULT_MAX_LINE;

/// The port's read timeout: how often the loop checks whether the service is stopping.
pub const SERIAL_TICK: Duration = Duration::from_millis(10);

/// Opens the port (`path` at `baud`) for [`serve_serial`].
pub fn open(path: &str, baud: u32) -> Result<SerialPort, ServeError> {
    SerialPort::open(path, baud, SERIAL_TICK).map_err(|e| ServeError::Config(e.to_string()))
}

/// Answers the lines read from `port` until the service stops. Read errors other than the
/// tick's timeout are logged (once per kind in a row) and the loop goes on.
pub fn serve_serial(handler: &dyn Handler, port: SerialPort) -> Result<(), ServeError> {
    let name = port.path().to_string();
    let mut out = port
        .try_clone()
        .map_err(|e| ServeError::Config(e.to_string()))?;
    let mut lines = SerialLineReader::new(port, MAX_SERIAL_LINE);
    let mut number = 0usize;
    let mut last_error: Option<String> = None;
    while !handler.stopping() {
        let Some(item) = lines.next_line() else {
            break;
        };
        handler.begin();
        let reply = match item {
            Ok(line) => {
                number += 1;
                handler.handle(&line.text, number)
            }
            Err(e) if e.is_timeout() => {
                handler.end();
                continue;
            }
            Err(LineError::Read(_)) if handler.stopping() => {
                handler.end();
                break;
            }
            Err(LineError::Read(e)) => {
                handler.end();
                let msg = format!("{e}");
                if last_error.as_deref() != Some(msg.as_str()) {
                    eprintln!("edgetune serve: serial {name}: {msg}");
                    last_error = Some(msg);
                }
                std::thread::sleep(SERIAL_TICK);
                continue;
            }
            Err(e) => {
                number += 1;
                let code = match e {
                    LineError::TooLong { .. } => ErrorCode::TooLong,
                    _ => ErrorCode::BadText,
                };
                handler.reject(RequestError::new(code, e.to_string()), number)
            }
        };
        last_error = None;
        if let Err(e) = write_json_line(&mut out, &reply) {
            eprintln!("edgetune serve: serial {name}: {e}");
        }
        handler.end();
    }
    Ok(())
}
