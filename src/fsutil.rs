//! File-system helpers: atomic writes, content hashes, an exclusive lock on a folder, and the
//! fault-injection point the crash tests use (a no-op unless the `fault-injection` feature is on,
//! as it is only in test builds). [`safe`]: bounded reads of regular files, confined paths, and
//! writes and deletes that never follow a symbolic link.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
#[cfg(feature = "fault-injection")]
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

pub mod safe;
pub use safe::{
    check_char_device, confined, create_fresh, open_append, open_regular, read_bounded,
    read_bounded_text, read_limited, real_dir, remove_nofollow, Links,
};

/// Environment variable of the crash tests: `EDGETUNE_FAULT_AFTER=N` aborts the process (as a power
/// loss or `kill -9` would end it) right after the N-th file operation that passes [`fault_point`].
/// Read only in builds with the `fault-injection` feature (test builds).
#[cfg(feature = "fault-injection")]
pub const FAULT_ENV: &str = "EDGETUNE_FAULT_AFTER";

#[cfg(feature = "fault-injection")]
static FS_OPS: AtomicU64 = AtomicU64::new(0);

/// Marks the end of one file operation of a durable write (create, write, fsync, rename, remove).
/// With the `fault-injection` feature and [`FAULT_ENV`] set to N, the N-th call aborts the process.
#[cfg(feature = "fault-injection")]
pub fn fault_point() {
    let n = FS_OPS.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some(limit) = std::env::var(FAULT_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        if n == limit {
            eprintln!("{FAULT_ENV}={limit}: aborting after file operation {n}");
            std::process::abort();
        }
    }
}

/// Marks the end of one file operation of a durable write; without the `fault-injection` feature
/// it does nothing (no environment variable can abort a process that embeds the library).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn fault_point() {}

/// Writes `bytes` to `path` atomically: a temp file in the same directory, fsync, rename, fsync of the
/// directory. A reader sees either the old file or the complete new one, never a partial write.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// Like [`write_atomic`], but the content is produced by `fill`, which writes into the temp file.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut io::BufWriter<&File>) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        // Exclusive create after removing a leftover: never writes through a planted link.
        let file = safe::create_fresh(&tmp)?;
        fault_point();
        {
            let mut w = io::BufWriter::new(&file);
            fill(&mut w)?;
            w.flush()?;
        }
        fault_point();
        file.sync_all()?;
        fault_point();
        fs::rename(&tmp, path)?;
        fault_point();
        sync_dir(path)?;
        fault_point();
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The temp-file name used for an atomic write of `path` (same directory, so the rename is atomic).
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// fsyncs the directory holding `path`, so a completed rename survives a power loss.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

/// fsyncs the directory itself (after creating or removing entries in it).
pub fn sync_dir_itself(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// An exclusive, advisory lock on a folder (`flock` on `dir/.lock`), held until dropped. A second
/// process asking for it gets an error at once instead of writing the same folder.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock of `dir` (created if missing); `Err` with `ErrorKind::WouldBlock` when another
    /// process holds it.
    pub fn acquire(dir: &Path) -> io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        fs::create_dir_all(dir)?;
        let path = dir.join(".lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)?;
        #[cfg(unix)]
        {
            use std::os::unix::io::AsRawFd;
            // SAFETY: flock on a file descriptor this struct owns; no memory is shared.
            let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if r != 0 {
                let e = io::Error::last_os_error();
                return Err(if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                    io::Error::new(io::ErrorKind::WouldBlock, "locked by another process")
                } else {
                    e
                });
            }
        }
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Hex SHA-256 of a regular file's content, streamed (a FIFO or device is refused: it could
/// stream for ever).
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = safe::open_regular(path, safe::Links::Follow)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Hex SHA-256 of bytes.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "temp files left behind: {names:?}");
    }

    #[test]
    fn failed_fill_keeps_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        write_atomic(&p, b"old").unwrap();
        let err = write_atomic_with(&p, |w| {
            w.write_all(b"partial")?;
            Err(io::Error::other("boom"))
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&p).unwrap(), b"old");
    }
}
