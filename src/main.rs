//! The `edgetune` command line. Flags are parsed into raw `clap` structs in [`cli`], validated into
//! library options there, and only then is any work started.

mod cli;

fn main() -> std::process::ExitCode {
    tune_allocator();
    cli::main()
}

/// Training allocates and frees tensors of a few hundred KiB to a few MiB at every step. glibc
/// serves blocks above its mmap threshold with fresh `mmap`s, so each such tensor costs page
/// faults and zeroing; keeping them on the heap (and not trimming it after every free) made an
/// epoch about 10% faster here. Memory is still returned when the process ends or the heap shrinks
/// by more than the trim threshold.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
    }
}
