//! The service's folder inside the run it serves, `RUN/serve/`:
//! - `journal.jsonl`: the corrections;
//! - `models/gen-NNNNNN/`: each model that replaced the serving one (a run folder, written under a
//!   temporary name and renamed when complete);
//! - `models/gen-NNNNNN/trained.json`: `{"journal_seq": N}`, the last journal entry that model's
//!   retrain had taken (so `--retrain-every` counts the corrections after it across restarts);
//! - `.lock`: held by the service while it runs (one writer of the journal);
//! - `current`: the folder of the model to serve (`models/gen-NNNNNN`), replaced by rename; absent
//!   until the first swap (the run itself is then served, as version 0).
//!
//! A restart serves what `current` names, so the last swapped model survives any crash.
//!
//! Nothing here follows a symbolic link for writing or deleting: `serve/` and `serve/models/` must
//! be real folders, half-written models are removed without following links, `current` and
//! `trained.json` are read only as regular files (bounded) and the folder `current` names must be a
//! real folder inside the run. Errors name the file, never echo its content.

use std::fs;
use std::path::{Path, PathBuf};

use super::error::ServeError;
use crate::fsutil;

/// Folder of the service's files inside the run.
pub const SERVE_DIR: &str = "serve";
/// The journal's file name.
pub const JOURNAL_FILE: &str = "journal.jsonl";
/// The pointer's file name.
pub const CURRENT_FILE: &str = "current";
/// Folder of the swapped models.
pub const MODELS_DIR: &str = "models";
/// File of a swapped model recording the journal entries its retrain had taken.
pub const TRAINED_FILE: &str = "trained.json";
/// Prefix of a model folder still being written.
const TEMP_PREFIX: &str = ".tmp-";
/// Largest `current` or `trained.json` read (each is one short line).
const MAX_POINTER_BYTES: u64 = 4096;

fn bad_file(path: &Path, message: impl Into<String>) -> ServeError {
    ServeError::Corrupt {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Reads a small file of the serve folder: regular, not a link, bounded; `None` when missing.
fn read_small(path: &Path) -> Result<Option<String>, ServeError> {
    match fsutil::read_bounded_text(path, MAX_POINTER_BYTES, fsutil::Links::Refuse) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ServeError::io(path)(e)),
    }
}

/// The service's folder of a run.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The run given to `serve` (version 0).
    pub run: PathBuf,
    /// `RUN/serve`.
    pub dir: PathBuf,
}

impl Layout {
    /// The layout of `run` (nothing is created).
    pub fn new(run: &Path) -> Self {
        Self {
            run: run.to_path_buf(),
            dir: run.join(SERVE_DIR),
        }
    }

    /// Creates the folders and removes model folders left half-written by a crash.
    /// `serve/` and `serve/models/` must be real folders (a link there is refused, so nothing is
    /// written or deleted where it points).
    pub fn prepare(&self) -> Result<(), ServeError> {
        fsutil::real_dir(&self.dir).map_err(ServeError::io(&self.dir))?;
        let models = self.dir.join(MODELS_DIR);
        fsutil::real_dir(&models).map_err(ServeError::io(&models))?;
        for entry in fs::read_dir(&models).map_err(ServeError::io(&models))? {
            let entry = entry.map_err(ServeError::io(&models))?;
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                let p = entry.path();
                fsutil::remove_nofollow(&p).map_err(ServeError::io(&p))?;
            }
        }
        Ok(())
    }

    /// Records in the model folder `dir` that its retrain took the journal up to entry `seq`.
    pub fn write_trained_through(dir: &Path, seq: u64) -> Result<(), ServeError> {
        let path = dir.join(TRAINED_FILE);
        fsutil::write_atomic(&path, format!("{{\"journal_seq\": {seq}}}\n").as_bytes())
            .map_err(ServeError::io(&path))
    }

    /// The last journal entry the model in `dir` was trained with: 0 for the run itself or a
    /// model folder without the record.
    pub fn trained_through(dir: &Path) -> Result<u64, ServeError> {
        let path = dir.join(TRAINED_FILE);
        let Some(text) = read_small(&path)? else {
            return Ok(0);
        };
        serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["journal_seq"].as_u64())
            .ok_or_else(|| bad_file(&path, "expected {\"journal_seq\": N}"))
    }

    /// Takes the service's lock of the folder: an error when another `serve` runs on this run.
    pub fn lock(&self) -> Result<fsutil::DirLock, ServeError> {
        fsutil::real_dir(&self.dir).map_err(ServeError::io(&self.dir))?;
        fsutil::DirLock::acquire(&self.dir).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                ServeError::Config(format!(
                    "{}: another edgetune serve runs on this run (it holds {})",
                    self.run.display(),
                    self.dir.join(".lock").display()
                ))
            } else {
                ServeError::io(&self.dir.join(".lock"))(e)
            }
        })
    }

    /// The journal's path.
    pub fn journal(&self) -> PathBuf {
        self.dir.join(JOURNAL_FILE)
    }

    /// The model to serve and its version: what `current` names, else the run (version 0).
    pub fn current(&self) -> Result<(PathBuf, u64), ServeError> {
        let path = self.dir.join(CURRENT_FILE);
        let Some(text) = read_small(&path)? else {
            return Ok((self.run.clone(), 0));
        };
        let name = text.trim();
        // The content is not echoed: `current` replaced by another file must not show it.
        let version = name
            .strip_prefix(&format!("{MODELS_DIR}/gen-"))
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|&v| v > 0)
            .ok_or_else(|| {
                bad_file(
                    &path,
                    format!(
                        "expected one line \"{MODELS_DIR}/gen-N\" ({} bytes found)",
                        text.len()
                    ),
                )
            })?;
        let dir = self.dir.join(Self::name(version));
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => {
                return Err(bad_file(
                    &path,
                    format!("names {}, which is not a folder of the run", dir.display()),
                ))
            }
            Err(_) => {
                return Err(bad_file(
                    &path,
                    format!("names {}, which does not exist", dir.display()),
                ))
            }
        }
        fsutil::confined(&self.run, &dir).map_err(ServeError::io(&dir))?;
        Ok((dir, version))
    }

    fn name(version: u64) -> String {
        format!("{MODELS_DIR}/gen-{version:06}")
    }

    /// A fresh temporary folder for the model that would become `version`.
    pub fn temp_model(&self, version: u64) -> PathBuf {
        self.dir
            .join(MODELS_DIR)
            .join(format!("{TEMP_PREFIX}gen-{version:06}"))
    }

    /// Moves a finished model folder into place as `version` and points `current` at it.
    /// Returns its final path.
    pub fn publish(&self, temp: &Path, version: u64) -> Result<PathBuf, ServeError> {
        let dest = self.dir.join(Self::name(version));
        fsutil::remove_nofollow(&dest).map_err(ServeError::io(&dest))?;
        fs::rename(temp, &dest).map_err(ServeError::io(&dest))?;
        fsutil::sync_dir(&dest).map_err(ServeError::io(&dest))?;
        let pointer = self.dir.join(CURRENT_FILE);
        fsutil::write_atomic(&pointer, format!("{}\n", Self::name(version)).as_bytes())
            .map_err(ServeError::io(&pointer))?;
        Ok(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_and_points() {
        let run = tempfile::tempdir().unwrap();
        let l = Layout::new(run.path());
        l.prepare().unwrap();
        assert_eq!(l.current().unwrap(), (run.path().to_path_buf(), 0));
        let t = l.temp_model(1);
        fs::create_dir_all(&t).unwrap();
        let dest = l.publish(&t, 1).unwrap();
        assert_eq!(l.current().unwrap(), (dest.clone(), 1));
        fs::create_dir_all(l.temp_model(2)).unwrap();
        l.prepare().unwrap();
        assert!(!l.temp_model(2).exists(), "a half-written model is removed");
        fs::write(run.path().join("serve/current"), "models/gen-x").unwrap();
        assert!(l.current().is_err());
    }
}
