//! A real serial port (any tty: UART, USB-serial, pty) with `embedded_io` traits.
//!
//! Configured through POSIX termios (`tcsetattr` with a standard `B*` speed), the interface every
//! Linux kernel and user-mode emulator implements; rates outside the standard table are refused.

use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::Duration;

use embedded_io::ErrorKind;
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
    pub source: io::Error,
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
    file: File,
    path: String,
    timeout: Duration,
}

/// The standard termios speeds.
const SPEEDS: &[(u32, libc::speed_t)] = &[
    (1200, libc::B1200),
    (2400, libc::B2400),
    (4800, libc::B4800),
    (9600, libc::B9600),
    (19_200, libc::B19200),
    (38_400, libc::B38400),
    (57_600, libc::B57600),
    (115_200, libc::B115200),
    (230_400, libc::B230400),
    (460_800, libc::B460800),
    (500_000, libc::B500000),
    (576_000, libc::B576000),
    (921_600, libc::B921600),
    (1_000_000, libc::B1000000),
    (1_500_000, libc::B1500000),
    (2_000_000, libc::B2000000),
    (3_000_000, libc::B3000000),
    (4_000_000, libc::B4000000),
];

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl SerialPort {
    /// Opens `path` (e.g. `/dev/ttyAMA0`, `/dev/ttyUSB0`) at `baud`.
    pub fn open(path: &str, baud: u32, read_timeout: Duration) -> Result<Self, SerialOpenError> {
        let err = |source| SerialOpenError {
            path: path.to_owned(),
            baud,
            source,
        };
        let speed = SPEEDS
            .iter()
            .find(|(b, _)| *b == baud)
            .map(|(_, s)| *s)
            .ok_or_else(|| {
                let rates: Vec<String> = SPEEDS.iter().map(|(b, _)| b.to_string()).collect();
                err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("not a standard rate ({})", rates.join(", ")),
                ))
            })?;
        let cpath = std::ffi::CString::new(path).map_err(|_| {
            err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "NUL in the path",
            ))
        })?;
        // SAFETY: a plain open(2) of a NUL-terminated path; the descriptor is owned by `file`.
        let fd = unsafe {
            libc::open(
                cpath.as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            )
        };
        check(fd).map_err(err)?;
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        configure(fd, speed).map_err(err)?;
        Ok(Self {
            file,
            path: path.to_owned(),
            timeout: read_timeout,
        })
    }

    /// A second handle on the same port (e.g. one for reading lines, one for writing).
    pub fn try_clone(&self) -> Result<Self, SerialOpenError> {
        let file = self.file.try_clone().map_err(|source| SerialOpenError {
            path: self.path.clone(),
            baud: self.baud_rate().unwrap_or(0),
            source,
        })?;
        Ok(Self {
            file,
            path: self.path.clone(),
            timeout: self.timeout,
        })
    }

    /// The device path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The baud rate the port reports.
    pub fn baud_rate(&self) -> io::Result<u32> {
        let t = get_attrs(self.file.as_raw_fd())?;
        // SAFETY: reads a field of an initialised termios.
        let speed = unsafe { libc::cfgetospeed(&t) };
        SPEEDS
            .iter()
            .find(|(_, s)| *s == speed)
            .map(|(b, _)| *b)
            .ok_or_else(|| io::Error::new(io::ErrorKind::Unsupported, "not a standard rate"))
    }

    /// Waits until the port is readable (true) or the read timeout passes (false); a hang-up is
    /// a broken pipe.
    fn wait_readable(&self) -> io::Result<bool> {
        let mut p = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = self.timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        check(n)?;
        if n > 0 && p.revents & libc::POLLIN == 0 {
            // Hung up or invalid, nothing left to read.
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        Ok(n > 0)
    }
}

fn get_attrs(fd: libc::c_int) -> io::Result<libc::termios> {
    // SAFETY: termios is plain data; tcgetattr fills it for a tty and fails otherwise.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    check(unsafe { libc::tcgetattr(fd, &mut t) })?;
    Ok(t)
}

/// Exclusive use, raw 8N1 without flow control at `speed`, reads returning what is there.
fn configure(fd: libc::c_int, speed: libc::speed_t) -> io::Result<()> {
    // SAFETY: ioctl(TIOCEXCL) takes no argument; the termios calls get a valid fd and struct.
    unsafe {
        check(libc::ioctl(fd, libc::TIOCEXCL))?;
        let mut t = get_attrs(fd)?;
        libc::cfmakeraw(&mut t);
        t.c_cflag &= !(libc::CSIZE | libc::PARENB | libc::CSTOPB | libc::CRTSCTS);
        t.c_cflag |= libc::CS8 | libc::CLOCAL | libc::CREAD;
        t.c_iflag &= !(libc::IXON | libc::IXOFF | libc::IXANY);
        t.c_cc[libc::VMIN] = 0;
        t.c_cc[libc::VTIME] = 0;
        check(libc::cfsetispeed(&mut t, speed))?;
        check(libc::cfsetospeed(&mut t, speed))?;
        check(libc::tcsetattr(fd, libc::TCSANOW, &t))?;
    }
    Ok(())
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
            match self.wait_readable() {
                Ok(false) => return Err(SerialIoError(io::ErrorKind::TimedOut.into())),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(SerialIoError(e)),
                Ok(true) => {}
            }
            match self.file.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Readable but nothing read: the other side hung up (a pty's master closed).
                Ok(0) => return Err(SerialIoError(io::ErrorKind::BrokenPipe.into())),
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
            match self.file.write(buf) {
                Ok(0) => return Err(SerialIoError(io::ErrorKind::WriteZero.into())),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other.map_err(SerialIoError),
            }
        }
    }

    fn flush(&mut self) -> Result<(), SerialIoError> {
        self.file.flush().map_err(SerialIoError)
    }
}
