//! The heap bound of every fuzz target: a global allocator that counts the bytes held and aborts
//! the process (a crash for the fuzzer, with the input saved) as soon as a request would take the
//! heap over [`HEAP_LIMIT`]. Unlike an RSS limit sampled once a second, this catches a single
//! oversized allocation at the moment it is made, with its backtrace, whatever the sanitizer.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The most heap a target may hold at once, all allocations together (256 MiB).
pub const HEAP_LIMIT: usize = 256 << 20;

/// Counts and bounds the heap; see the module documentation.
pub struct BoundedAlloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static CALL_PEAK: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// Bytes held now.
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// The most bytes held at once since the start.
pub fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// The most bytes held at once since the last [`reset_call_peak`].
pub fn call_peak() -> usize {
    CALL_PEAK.load(Ordering::Relaxed)
}

/// The largest single allocation so far.
pub fn largest() -> usize {
    LARGEST.load(Ordering::Relaxed)
}

/// Restarts [`call_peak`] from the bytes held now (to measure one call).
pub fn reset_call_peak() {
    CALL_PEAK.store(live(), Ordering::Relaxed);
}

/// Accounts `grow` more bytes, aborting when that passes the limit.
fn take(grow: usize, request: usize) {
    let now = LIVE.fetch_add(grow, Ordering::Relaxed) + grow;
    if now > HEAP_LIMIT {
        over_limit(request, now);
    }
    PEAK.fetch_max(now, Ordering::Relaxed);
    CALL_PEAK.fetch_max(now, Ordering::Relaxed);
    LARGEST.fetch_max(request, Ordering::Relaxed);
}

fn give(shrink: usize) {
    LIVE.fetch_sub(shrink, Ordering::Relaxed);
}

/// A fixed buffer to format into without allocating (the allocator cannot call itself).
struct StackText {
    buf: [u8; 256],
    len: usize,
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Writes a line to stderr without allocating.
pub fn say(args: std::fmt::Arguments) {
    let mut text = StackText {
        buf: [0; 256],
        len: 0,
    };
    let _ = std::fmt::write(&mut text, args);
    // SAFETY: writes initialised bytes of a live buffer to file descriptor 2.
    unsafe {
        libc::write(2, text.buf.as_ptr().cast(), text.len);
    }
}

#[cold]
fn over_limit(request: usize, would_hold: usize) -> ! {
    say(format_args!(
        "\n==edgetune-fuzz== heap limit: an allocation of {request} bytes would hold {would_hold} bytes, over the bound of {HEAP_LIMIT}\n"
    ));
    std::process::abort()
}

// SAFETY: every call is forwarded to `System` with the same arguments; the counters only observe.
unsafe impl GlobalAlloc for BoundedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        take(layout.size(), layout.size());
        let p = System.alloc(layout);
        if p.is_null() {
            give(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        take(layout.size(), layout.size());
        let p = System.alloc_zeroed(layout);
        if p.is_null() {
            give(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        give(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old {
            take(new_size - old, new_size);
        }
        let p = System.realloc(ptr, layout, new_size);
        if p.is_null() {
            if new_size > old {
                give(new_size - old);
            }
        } else if new_size < old {
            give(old - new_size);
        }
        p
    }
}

/// Prints the heap figures when the process exits (the end of a fuzzing run or a replay).
pub fn report_at_exit() {
    extern "C" fn report() {
        say(format_args!(
            "==edgetune-fuzz== heap: peak {} bytes held at once, largest allocation {} bytes (bound {HEAP_LIMIT})\n",
            peak(),
            largest()
        ));
    }
    // SAFETY: registers a function without arguments that only writes to stderr.
    unsafe {
        libc::atexit(report);
    }
}
