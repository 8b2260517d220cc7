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

    /// Whether the connection came over the Unix socket (the local, owner-only one).
    pub fn is_local(&self) -> bool {
        matches!(self, Conn::Unix(_))
    }

    /// Sets the time a read waits before failing (`None`: for ever).
    pub fn set_read_timeout(&self, t: Option<std::time::Duration>) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.set_read_timeout(t),
            Conn::Tcp(s) => s.set_read_timeout(t),
        }
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
    /// Listens on a Unix socket at `path`, created mode 0600 (its owner only) or, with `group`,
    /// 0660 and owned by that group. A socket file left by a service that is gone is replaced; a
    /// live one (something answers on it) or another kind of file is an error.
    pub fn unix(path: &Path, group: Option<&str>) -> Result<Self, ServeError> {
        let gid = group.map(group_id).transpose()?;
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
        // Created under a umask that leaves the owner only, so no other account can connect in
        // the moment between the bind and the chmod below.
        // SAFETY: umask(2) only swaps the process's file-creation mask.
        let old = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(path);
        // SAFETY: as above, restoring the mask.
        unsafe { libc::umask(old) };
        let l = bound.map_err(ServeError::io(path))?;
        let mode = match gid {
            Some(gid) => {
                std::os::unix::fs::lchown(path, None, Some(gid)).map_err(ServeError::io(path))?;
                0o660
            }
            None => 0o600,
        };
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(ServeError::io(path))?;
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

/// The id of the group named `name` (or a number), for `--socket-group`.
pub fn group_id(name: &str) -> Result<u32, ServeError> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    let unknown = || ServeError::Config(format!("--socket-group {name}: no such group"));
    let cname = std::ffi::CString::new(name).map_err(|_| unknown())?;
    let mut buf = vec![0 as libc::c_char; 1 << 16];
    // SAFETY: getgrnam_r fills `grp` and `buf` (of the length given) and sets `out` to `&grp` on
    // success; both outlive the call and only the gid is read.
    let gid = unsafe {
        let mut grp: libc::group = std::mem::zeroed();
        let mut out: *mut libc::group = std::ptr::null_mut();
        let r = libc::getgrnam_r(
            cname.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut out,
        );
        (r == 0 && !out.is_null()).then_some(grp.gr_gid)
    };
    gid.ok_or_else(unknown)
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
