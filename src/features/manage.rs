//! Seeing and bounding the feature cache (`edgetune cache list|prune|clear`, `train
//! --max-cache`): entries with their bytes and last use, removal by age or to a size budget
//! (least recently used first). An entry is removed by first renaming it to a temporary name in
//! the cache (one atomic step) and then deleting that, so no reader ever finds a partially deleted
//! entry: it finds the whole entry or none, and a missing entry is extracted again.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// One cache entry.
#[derive(Debug, Clone, Serialize)]
pub struct EntryInfo {
    /// Its key (the folder's name).
    pub key: String,
    /// Bytes of its files.
    pub bytes: u64,
    /// When it was last opened or written (the folder's modification time, set on each open), in
    /// seconds since the Unix epoch.
    pub last_used: u64,
    /// Examples it holds (for a composed entry: those of its parts).
    pub examples: usize,
    /// The keys of the entries it is composed of (empty for a plain entry).
    pub parts: Vec<String>,
}

/// What [`prune`] or [`clear`] removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Removed {
    /// The keys removed.
    pub keys: Vec<String>,
    /// Their bytes.
    pub bytes: u64,
    /// Bytes left in the cache.
    pub left_bytes: u64,
}

/// The entries of the cache `dir` (none if it does not exist), least recently used first.
/// Temporary folders of writers (`.KEY.PID-N.tmp`) are not entries.
pub fn list(dir: &Path) -> std::io::Result<Vec<EntryInfo>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in entries {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if name.starts_with('.') || !path.join("meta.json").is_file() {
            continue;
        }
        let meta: serde_json::Value = fs::read(path.join("meta.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let last_used = fs::metadata(&path)?
            .modified()?
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        out.push(EntryInfo {
            key: name,
            bytes: folder_bytes(&path),
            last_used,
            examples: meta["examples"].as_u64().unwrap_or(0) as usize,
            parts: serde_json::from_value(meta["parts"].clone()).unwrap_or_default(),
        });
    }
    out.sort_by(|a, b| (a.last_used, &a.key).cmp(&(b.last_used, &b.key)));
    Ok(out)
}

/// Bytes of the files in `dir` (not following links).
fn folder_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Removes the entries last used more than `older_than` ago, then the least recently used ones
/// until the cache holds at most `max_bytes` (entries named in `keep`, such as the ones a
/// running job just used, are removed last and only by `older_than`).
pub fn prune(
    dir: &Path,
    older_than: Option<Duration>,
    max_bytes: Option<u64>,
    keep: &[String],
) -> std::io::Result<Removed> {
    let entries = list(dir)?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
    let mut removed = Removed::default();
    let (kept, others): (Vec<&EntryInfo>, Vec<&EntryInfo>) =
        entries.iter().partition(|e| keep.contains(&e.key));
    for e in others.into_iter().chain(kept) {
        let old = older_than.is_some_and(|age| now.saturating_sub(e.last_used) > age.as_secs());
        let over = max_bytes.is_some_and(|m| total > m) && !keep.contains(&e.key);
        if old || over {
            remove_entry(dir, &e.key)?;
            total -= e.bytes;
            removed.bytes += e.bytes;
            removed.keys.push(e.key.clone());
        }
    }
    removed.left_bytes = total;
    Ok(removed)
}

/// Removes every entry (and leftover temporary folders of writers that no longer run).
pub fn clear(dir: &Path) -> std::io::Result<Removed> {
    let r = prune(dir, Some(Duration::ZERO), Some(0), &[])?;
    super::cache::remove_stale_temps(dir);
    let left = list(dir)?;
    let mut r = r;
    for e in left {
        remove_entry(dir, &e.key)?;
        r.bytes += e.bytes;
        r.keys.push(e.key);
    }
    r.left_bytes = 0;
    Ok(r)
}

/// Renames the entry `key` aside in one step, then deletes it; an entry already gone is fine.
fn remove_entry(dir: &Path, key: &str) -> std::io::Result<()> {
    let from = dir.join(key);
    let aside: PathBuf = dir.join(format!(".{key}.{}-rm.tmp", std::process::id()));
    match fs::rename(&from, &aside) {
        Ok(()) => fs::remove_dir_all(&aside),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
