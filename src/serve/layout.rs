//! The service's files inside the run it serves:
//! - `RUN/serve/journal.jsonl`: the corrections;
//! - `RUN/serve/.lock`: held by the service while it runs (one writer of the journal);
//! - the models: the run's versions ([`crate::run::versions`]: `RUN/versions/N`, the pointer
//!   `RUN/versions/current`; runs served before versions existed keep `RUN/serve/models/gen-N`
//!   and `RUN/serve/current`, read as versions). A version records the last journal entry its
//!   retrain had taken (`journal_seq`), so `--retrain-every` counts the corrections after it
//!   across restarts.
//!
//! A restart serves the current version, so the last swapped model survives any crash.
//!
//! Nothing here follows a symbolic link for writing or deleting: `serve/` must be a real folder
//! (a link there is refused), and the versions' pointer and records are read bounded, as regular
//! files, never echoed in errors (`run::versions`).

use std::path::{Path, PathBuf};

use super::error::ServeError;
use crate::fsutil;
use crate::run::versions::{self, Versions};

/// Folder of the service's files inside the run.
pub const SERVE_DIR: &str = "serve";
/// The journal's file name.
pub const JOURNAL_FILE: &str = "journal.jsonl";

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

    /// The run's versions.
    pub fn versions(&self) -> Versions {
        Versions::new(&self.run)
    }

    /// Creates the service's folder and removes version folders left half-written by a crash.
    pub fn prepare(&self) -> Result<(), ServeError> {
        fsutil::real_dir(&self.dir).map_err(ServeError::io(&self.dir))?;
        self.versions().prepare()?;
        Ok(())
    }

    /// The last journal entry the model in `dir` (a version folder) was trained with: its
    /// record's `journal_seq`, 0 for the run itself.
    pub fn trained_through(dir: &Path) -> Result<u64, ServeError> {
        let root = versions::root_of(dir);
        if root == dir {
            return Ok(0);
        }
        // `versions/N` or an old run's `serve/models/gen-NNNNNN`.
        let n = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.trim_start_matches("gen-").parse::<u64>().ok())
            .unwrap_or(0);
        Ok(Versions::new(&root).record(n, dir)?.journal_seq)
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

    /// The model to serve and its version: the run's current version.
    pub fn current(&self) -> Result<(PathBuf, u64), ServeError> {
        let (n, dir) = self.versions().current()?;
        Ok((dir, n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::versions::{MadeBy, VersionRecord};

    #[test]
    fn versions_and_old_runs() {
        let run = tempfile::tempdir().unwrap();
        let l = Layout::new(run.path());
        l.prepare().unwrap();
        assert_eq!(l.current().unwrap(), (run.path().to_path_buf(), 0));
        // An old run: serve/models/gen-000001 named by serve/current.
        let gen = run.path().join("serve/models/gen-000001");
        std::fs::create_dir_all(&gen).unwrap();
        std::fs::write(gen.join("config.json"), "{}").unwrap();
        std::fs::write(gen.join("trained.json"), "{\"journal_seq\": 4}").unwrap();
        std::fs::write(run.path().join("serve/current"), "models/gen-000001\n").unwrap();
        assert_eq!(l.current().unwrap(), (gen.clone(), 1));
        assert_eq!(Layout::trained_through(&gen).unwrap(), 4);
        // A new version is numbered after it and wins.
        let v = l.versions();
        let t = v.temp_folder().unwrap();
        let mut r = VersionRecord::new(MadeBy::Retrain, "test");
        r.swapped = true;
        r.journal_seq = 7;
        let (n, dir) = v.add(&t, r).unwrap();
        assert_eq!(n, 2);
        assert_eq!(l.current().unwrap(), (dir.clone(), 2));
        assert_eq!(Layout::trained_through(&dir).unwrap(), 7);
        std::fs::create_dir_all(run.path().join("versions/.tmp-9")).unwrap();
        l.prepare().unwrap();
        assert!(
            !run.path().join("versions/.tmp-9").exists(),
            "a half-written version is removed"
        );
        std::fs::write(run.path().join("versions/current"), "x").unwrap();
        assert!(l.current().is_err());
    }
}
