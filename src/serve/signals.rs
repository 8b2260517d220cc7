//! SIGTERM and SIGINT as an event: a handler writes the signal's number into a pipe, and one
//! thread reads it.
//!
//! Blocking the signals and waiting with `sigwait` is not enough: a thread that waits in `ppoll`
//! or `pselect` with an empty signal mask (the serial port library does) unblocks them for the
//! duration of the wait, and the default action, ending the process, would run there. A handler
//! runs in whichever thread the signal lands on, and only writes one byte (async-signal-safe).

use std::sync::atomic::{AtomicI32, Ordering};
use std::thread::JoinHandle;

/// The write end of the pipe the handler writes to (-1 before [`catch_termination`]).
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_termination(sig: libc::c_int) {
    let fd = WRITE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = sig as u8;
        // SAFETY: write(2) is async-signal-safe; the byte lives on this stack frame. A full pipe
        // (a signal already waiting to be read) drops the byte, which changes nothing.
        unsafe {
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
    }
}

/// The termination signals, caught: see [`Termination::on_signal`].
pub struct Termination {
    read_fd: libc::c_int,
}

/// Installs the handler of SIGTERM and SIGINT (with `SA_RESTART`, so that interrupted system
/// calls resume). Call once, before the service starts.
pub fn catch_termination() -> std::io::Result<Termination> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`; sigaction reads a zero-initialised struct
    // whose handler is an extern "C" function that lives for the whole program.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let flags = libc::fcntl(fds[1], libc::F_GETFL);
        libc::fcntl(fds[1], libc::F_SETFL, flags | libc::O_NONBLOCK);
        WRITE_FD.store(fds[1], Ordering::SeqCst);
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_termination as extern "C" fn(libc::c_int) as usize;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        for sig in [libc::SIGTERM, libc::SIGINT] {
            if libc::sigaction(sig, &action, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(Termination { read_fd: fds[0] })
}

impl Termination {
    /// Starts a thread that waits for SIGTERM or SIGINT and then calls `then` with its number.
    pub fn on_signal(
        self,
        then: impl FnOnce(i32) + Send + 'static,
    ) -> std::io::Result<JoinHandle<()>> {
        let fd = self.read_fd;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let mut byte = 0u8;
                loop {
                    // SAFETY: reads one byte into `byte` from the pipe this thread owns.
                    let n = unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
                    if n == 1 {
                        break;
                    }
                    if n == 0 {
                        return;
                    }
                }
                then(i32::from(byte));
            })
    }
}
