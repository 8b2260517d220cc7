//! A real serial port (any tty: UART, USB-serial, pty) with `embedded_io` traits.

use std::io::{self, Read as _, Write as _};
use std::time::Duration;

use embedded_io::ErrorKind;
use serialport::{SerialPort as _, TTYPort};
use thiserror::Error;

/// The port could not be opened or configured.
#[derive(Debug, Error)]
#[error("{path}: cannot open serial port at {baud} baud: {source}")]
pub struct SerialOpenError {
    /// The device path.
    pub path: String,
    /// The requested baud rate.
    pub baud: u32,
    /// The underlying error.
    #[source]
    pub source: serialport::Error,
}

/// An I/O error on an open port.
#[derive(Debug, Error)]
#[error("serial I/O: {0}")]
pub struct SerialIoError(#[from] pub io::Error);

impl embedded_io::Error for SerialIoError {
    fn kind(&self) -> ErrorKind {
        match self.0.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ErrorKind::TimedOut,
            io::ErrorKind::Interrupted => ErrorKind::Interrupted,
            io::ErrorKind::BrokenPipe => ErrorKind::BrokenPipe,
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            io::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
            io::ErrorKind::WriteZero => ErrorKind::WriteZero,
            _ => ErrorKind::Other,
        }
    }
}

/// An open tty in raw mode (8N1, no flow control, no echo, no line editing or `\r`/`\n`
/// translation), opened exclusively.
///
/// Reads block for at most the read timeout, then fail with a timeout error
/// ([`LineError::is_timeout`](super::LineError::is_timeout) is true for it), which
/// gives the serving loop a regular tick.
pub struct SerialPort {
    port: TTYPort,
    path: String,
}

impl SerialPort {
    /// Opens `path` (e.g. `/dev/ttyAMA0`, `/dev/ttyUSB0`) at `baud`.
    pub fn open(path: &str, baud: u32, read_timeout: Duration) -> Result<Self, SerialOpenError> {
        let port = serialport::new(path, baud)
            .data_bits(serialport::DataBits::Eight)
            .parity(serialport::Parity::None)
            .stop_bits(serialport::StopBits::One)
            .flow_control(serialport::FlowControl::None)
            .timeout(read_timeout)
            .open_native()
            .map_err(|source| SerialOpenError {
                path: path.to_owned(),
                baud,
                source,
            })?;
        Ok(Self {
            port,
            path: path.to_owned(),
        })
    }

    /// A second handle on the same port (e.g. one for reading lines, one for writing).
    pub fn try_clone(&self) -> Result<Self, SerialOpenError> {
        let port = self
            .port
            .try_clone_native()
            .map_err(|source| SerialOpenError {
                path: self.path.clone(),
                baud: self.baud_rate().unwrap_or(0),
                source,
            })?;
        Ok(Self {
            port,
            path: self.path.clone(),
        })
    }

    /// The device path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The baud rate the port reports.
    pub fn baud_rate(&self) -> Result<u32, serialport::Error> {
        self.port.baud_rate()
    }
}

impl embedded_io::ErrorType for SerialPort {
    type Error = SerialIoError;
}

impl embedded_io::Read for SerialPort {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, SerialIoError> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.port.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other.map_err(SerialIoError),
            }
        }
    }
}

impl embedded_io::Write for SerialPort {
    fn write(&mut self, buf: &[u8]) -> Result<usize, SerialIoError> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.port.write(buf) {
                Ok(0) => return Err(SerialIoError(io::ErrorKind::WriteZero.into())),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other.map_err(SerialIoError),
            }
        }
    }

    fn flush(&mut self) -> Result<(), SerialIoError> {
        self.port.flush().map_err(SerialIoError)
    }
}
