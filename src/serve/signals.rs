//! SIGTERM and SIGINT as an event: blocked in every thread (call [`block_termination`] before any
//! thread starts, so every later thread inherits the mask) and received by one waiting thread.

use std::thread::JoinHandle;

/// The blocked termination signals, to wait for.
pub struct Termination {
    set: libc::sigset_t,
}

/// Blocks SIGTERM and SIGINT in the calling thread and every thread it starts from now on.
pub fn block_termination() -> std::io::Result<Termination> {
    // SAFETY: the set is initialised by sigemptyset before use; pthread_sigmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        Ok(Termination { set })
    }
}

impl Termination {
    /// Starts a thread that waits for SIGTERM or SIGINT and then calls `then` with its number.
    pub fn on_signal(
        self,
        then: impl FnOnce(i32) + Send + 'static,
    ) -> std::io::Result<JoinHandle<()>> {
        let set = self.set;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let mut sig: libc::c_int = 0;
                // SAFETY: `set` holds the blocked signals; sigwait writes the received one to `sig`.
                loop {
                    let rc = unsafe { libc::sigwait(&set, &mut sig) };
                    if rc == 0 {
                        break;
                    }
                }
                then(sig);
            })
    }
}
