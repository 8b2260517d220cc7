//! Stopping: the stop, waiting for it, draining the requests in flight; and the service as the
//! transports' request handler.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::super::protocol::{self, RequestError};
use super::super::sync::lock;
use super::super::transport::stream::Handler;
use super::state::{Service, DRAIN_TIMEOUT};

impl Service {
    /// Stops taking requests: listeners close, connections stop reading (their requests in
    /// flight are still answered). [`wait`](Self::wait) returns.
    pub fn stop(&self) {
        if self.inner.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        for l in lock(&self.inner.listeners).iter() {
            l.wake();
        }
        for (_, c) in lock(&self.inner.clients).iter() {
            c.shutdown_read();
        }
        *lock(&self.inner.done) = true;
        self.inner.done_cv.notify_all();
    }

    /// Blocks until the service stops (a [`stop`](Self::stop), or every transport ended).
    pub fn wait(&self) {
        let mut done = lock(&self.inner.done);
        while !*done {
            done = self
                .inner
                .done_cv
                .wait(done)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// After [`stop`](Self::stop): waits (up to [`DRAIN_TIMEOUT`]) for the requests in flight and
    /// for the connections to answer what they had received, syncs the journal, ends pending
    /// pulses, turns the LED off and removes the socket file. Returns how many requests were still
    /// in flight (or connections still answering) at the timeout: 0 normally.
    pub fn finish(&self) -> usize {
        self.stop();
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        let busy = || *lock(&self.inner.in_flight) + lock(&self.inner.clients).len();
        while busy() > 0 && Instant::now() < deadline {
            let n = lock(&self.inner.in_flight);
            if *n > 0 {
                let _ = self.inner.idle.wait_timeout(n, Duration::from_millis(20));
            } else {
                drop(n);
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let left = busy();
        if let Some(j) = &self.inner.journal {
            if let Err(e) = lock(j).sync() {
                eprintln!("edgetune serve: {e}");
            }
        }
        if let Some(a) = lock(&self.inner.actions).as_mut() {
            for f in a.end_all() {
                eprintln!("edgetune serve: {f}");
            }
        }
        lock(&self.inner.led).take();
        for l in lock(&self.inner.listeners).iter() {
            l.remove_file();
        }
        left
    }
}

impl Handler for Service {
    fn handle(&self, line: &str, number: usize) -> Value {
        self.handle_line(line, number)
    }

    fn reject(&self, error: RequestError, number: usize) -> Value {
        self.inner.stats.error(error.code);
        protocol::error_reply(&error, number, None)
    }

    fn begin(&self) {
        *lock(&self.inner.in_flight) += 1;
    }

    fn end(&self) {
        let mut n = lock(&self.inner.in_flight);
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.inner.idle.notify_all();
        }
    }

    fn stopping(&self) -> bool {
        self.is_stopping()
    }
}
