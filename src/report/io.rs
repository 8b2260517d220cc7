//! Chart file names and atomic output.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::report::error::{ReportError, Result};

/// `stem` + `.ext` (appended, so `run.v2` becomes `run.v2.svg`).
pub(crate) fn with_ext(stem: &Path, ext: &str) -> PathBuf {
    let mut s: OsString = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Creates the folder that `path` will be written into.
pub(crate) fn ensure_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            fs::create_dir_all(dir).map_err(|e| ReportError::io("create directory", dir, e))
        }
        _ => Ok(()),
    }
}

/// Writes `bytes` to `path` atomically (see [`fsutil::write_atomic`]), creating its folder first.
/// Readers see the old file or the new one, never a half-written one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    ensure_parent(path)?;
    fsutil::write_atomic(path, bytes).map_err(|e| ReportError::io("write", path, e))
}
