//! ONNX Runtime's optimized graph kept on disk, so that a process opening the same model again
//! skips graph optimization (a third of a merged model's session creation).
//!
//! An entry is the model as ONNX Runtime serialized it after its portable optimizations
//! ([`GraphOptimizationLevel::Level2`]: fusions into its own CPU operators, no hardware-specific
//! layouts); it is opened with optimization off. Entries are keyed by the model file's identity
//! (canonical path, device, inode, size, modification and change times), the library's identity
//! (path, size, modification time) and the optimization level, so a rewritten model, an updated
//! library or another setting never reads a stale entry. Entries are written to a temporary file
//! and renamed; an entry ONNX Runtime refuses is deleted and rebuilt; at most
//! [`MAX_ENTRIES`] are kept (least recently written removed first). The cache is an optimization:
//! when its folder cannot be written, the session is opened from the model itself.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;

use super::runtime::{init, open_session, ModelSource, SessionError, SessionOptions};

/// Entries kept in a cache folder.
pub const MAX_ENTRIES: usize = 4;

/// Sub-folder of the cache folder that holds the optimized graphs.
pub const SESSIONS_DIR: &str = "sessions";

/// What the cache did for one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheUse {
    /// No cache was asked for, or the model was not a file.
    Off,
    /// The optimized graph was read from the cache.
    Hit,
    /// The model was optimized and the result written to the cache.
    Written,
    /// The model was optimized; the cache could not be read or written (the reason).
    Unavailable(String),
}

/// Opens `model` through the cache in `dir`, with `opts`.
pub fn open_cached(
    model: &Path,
    opts: &SessionOptions,
    dir: &Path,
) -> Result<(Session, CacheUse), SessionError> {
    let key = match entry_key(model, opts) {
        Ok(k) => k,
        Err(e) => {
            let s = open_session(ModelSource::File(model), opts)?;
            return Ok((s, CacheUse::Unavailable(e)));
        }
    };
    let dir = dir.join(SESSIONS_DIR);
    let entry = dir.join(format!("{key}.onnx"));
    if entry.is_file() {
        let mut reopen = opts.clone();
        reopen.optimization = GraphOptimizationLevel::Disable;
        reopen.optimized_model_path = None;
        if let Ok(s) = open_session(ModelSource::File(&entry), &reopen) {
            return Ok((s, CacheUse::Hit));
        }
        // A damaged or foreign entry: rebuilt below.
        let _ = std::fs::remove_file(&entry);
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        let s = open_session(ModelSource::File(model), opts)?;
        return Ok((s, CacheUse::Unavailable(format!("{}: {e}", dir.display()))));
    }
    let tmp = dir.join(format!("{key}.onnx.tmp-{}", std::process::id()));
    let mut write = opts.clone();
    write.optimization = portable(&opts.optimization);
    write.optimized_model_path = Some(tmp.clone());
    let session = open_session(ModelSource::File(model), &write)?;
    let used = match publish(&tmp, &entry) {
        Ok(()) => {
            prune(&dir, &entry);
            CacheUse::Written
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            CacheUse::Unavailable(format!("{}: {e}", entry.display()))
        }
    };
    Ok((session, used))
}

/// The highest level whose result runs on any CPU of the architecture.
fn portable(level: &GraphOptimizationLevel) -> GraphOptimizationLevel {
    match level {
        GraphOptimizationLevel::Disable => GraphOptimizationLevel::Disable,
        GraphOptimizationLevel::Level1 => GraphOptimizationLevel::Level1,
        _ => GraphOptimizationLevel::Level2,
    }
}

/// Hex SHA-256 of everything that decides an entry's content.
fn entry_key(model: &Path, opts: &SessionOptions) -> Result<String, String> {
    let ident = |p: &Path| -> Result<String, String> {
        let canon = p.canonicalize().map_err(|e| format!("{}: {e}", p.display()))?;
        let m = std::fs::metadata(&canon).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(format!(
            "{}|{}|{}|{}|{}.{}|{}.{}",
            canon.display(),
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec()
        ))
    };
    let lib = init(None).map_err(|e| e.to_string())?;
    let text = format!(
        "edgetune {}\nmodel {}\nlibrary {}\nlevel {:?}\n",
        env!("CARGO_PKG_VERSION"),
        ident(model)?,
        ident(&lib)?,
        portable(&opts.optimization)
    );
    Ok(crate::fsutil::sha256_bytes(text.as_bytes()))
}

/// Makes the file ONNX Runtime wrote at `tmp` durable and visible as `entry`.
fn publish(tmp: &Path, entry: &Path) -> std::io::Result<()> {
    std::fs::File::open(tmp)?.sync_all()?;
    std::fs::rename(tmp, entry)?;
    crate::fsutil::sync_dir(entry)
}

/// Keeps the newest [`MAX_ENTRIES`] entries (always `keep`) and removes temporary files of
/// writers that are gone.
fn prune(dir: &Path, keep: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.rsplit_once(".onnx.tmp-").map(|(_, pid)| pid.to_string()) {
            let alive = pid
                .parse::<u32>()
                .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            if !alive {
                let _ = std::fs::remove_file(&p);
            }
        } else if name.ends_with(".onnx") && p != keep {
            let t = e.metadata().and_then(|m| m.modified());
            entries.push((t.unwrap_or(std::time::UNIX_EPOCH), p));
        }
    }
    entries.sort();
    let excess = (entries.len() + 1).saturating_sub(MAX_ENTRIES);
    for (_, p) in entries.into_iter().take(excess) {
        let _ = std::fs::remove_file(p);
    }
}
