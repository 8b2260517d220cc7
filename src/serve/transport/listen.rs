//! Listening sockets: a Unix socket and a TCP port on the loopback interface.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use super::super::error::ServeError;

/// One client connection.
pub enum Conn {
    /// Over the Unix socket.
    Unix(UnixStream),
    /// Over TCP.
    Tcp(TcpStream),
}

impl Conn {
    /// A second handle on the same connection.
    pub fn try_clone(&self) -> io::Result<Conn> {
        Ok(match self {
            Conn::Unix(s) => Conn::Unix(s.try_clone()?),
            Conn::Tcp(s) => Conn::Tcp(s.try_clone()?),
        })
    }

    /// Ends the reading side: a read blocked on it returns the end of the stream (the client's
    /// requests in flight are still answered).
    pub fn shutdown_read(&self) {
        let _ = match self {
            Conn::Unix(s) => s.shutdown(Shutdown::Read),
            Conn::Tcp(s) => s.shutdown(Shutdown::Read),
        };
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(buf),
            Conn::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.flush(),
            Conn::Tcp(s) => s.flush(),
        }
    }
}

/// A listening socket.
pub enum Listener {
    /// A Unix socket and its path (removed when the service ends).
    Unix(UnixListener, PathBuf),
    /// A TCP socket and its bound address.
    Tcp(TcpListener, SocketAddr),
}

impl Listener {
    /// Listens on a Unix socket at `path`. A socket file left by a service that is gone is
    /// replaced; a live one (something answers on it) or another kind of file is an error.
    pub fn unix(path: &Path) -> Result<Self, ServeError> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(ServeError::Config(format!(
                    "--socket {}: exists and is not a socket; choose another path",
                    path.display()
                )));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(ServeError::Config(format!(
                    "--socket {}: another service is listening on it",
                    path.display()
                )));
            }
            std::fs::remove_file(path).map_err(ServeError::io(path))?;
        }
        let l = UnixListener::bind(path).map_err(ServeError::io(path))?;
        Ok(Listener::Unix(l, path.to_path_buf()))
    }

    /// Listens on `addr`, which must be a loopback address ([`check_loopback`]).
    pub fn tcp(addr: SocketAddr) -> Result<Self, ServeError> {
        check_loopback(addr)?;
        let l = TcpListener::bind(addr).map_err(ServeError::io(addr.to_string()))?;
        let bound = l.local_addr().map_err(ServeError::io(addr.to_string()))?;
        Ok(Listener::Tcp(l, bound))
    }

    /// Waits for the next connection.
    pub fn accept(&self) -> io::Result<Conn> {
        Ok(match self {
            Listener::Unix(l, _) => Conn::Unix(l.accept()?.0),
            Listener::Tcp(l, _) => {
                let (s, _) = l.accept()?;
                // Answers are single small writes: send each at once.
                s.set_nodelay(true)?;
                Conn::Tcp(s)
            }
        })
    }

    /// Unblocks a thread waiting in [`accept`](Self::accept) (by connecting to the socket).
    pub fn wake(&self) {
        let _ = match self {
            Listener::Unix(_, p) => UnixStream::connect(p).map(drop),
            Listener::Tcp(_, a) => TcpStream::connect(a).map(drop),
        };
    }

    /// `unix PATH` or `tcp ADDR`, for messages.
    pub fn describe(&self) -> String {
        match self {
            Listener::Unix(_, p) => format!("unix {}", p.display()),
            Listener::Tcp(_, a) => format!("tcp {a}"),
        }
    }

    /// The bound TCP address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(_, a) => Some(*a),
            Listener::Unix(..) => None,
        }
    }

    /// Removes the socket file (Unix).
    pub fn remove_file(&self) {
        if let Listener::Unix(_, p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// An error unless `addr` is a loopback address: the protocol has no authentication.
pub fn check_loopback(addr: SocketAddr) -> Result<(), ServeError> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    Err(ServeError::Config(format!(
        "--listen {addr}: only loopback addresses (127.0.0.1, ::1) are served: the protocol has \
         no authentication; put a proxy in front to serve a network"
    )))
}
