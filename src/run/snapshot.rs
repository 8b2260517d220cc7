//! The training data of a run, kept with the run so that it can be trained again from any working
//! directory and after being copied to another machine (`RUN/data/`, see `docs/versions.md`).
//!
//! - `RUN/data/source.json`: a [`DataSource`]: how the data was read (format, `--columns`,
//!   hold-out fraction, `--tasks`), its files and their content hash;
//! - `RUN/data/files/`: a copy of the split files (`train.jsonl`, `valid/` ...), when their total
//!   size is at most the snapshot limit ([`DEFAULT_SNAPSHOT_LIMIT`]); over it, only the absolute
//!   path of the dataset folder and the hash are recorded, and [`DataSource::locate`] refuses data
//!   that changed since;
//! - `RUN/data/lineage/K/`: the same for the K-th `--init-from` ancestor (its data and the heads
//!   it had frozen: [`Lineage`]).
//!
//! The folder is written before training starts, each file atomically, `source.json` last: a run
//! either records its data completely or not at all.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::RunError;
use crate::data::{load_dataset, Dataset, Format, ReadOptions};
use crate::fsutil;

/// The run's data folder.
pub const DATA_DIR: &str = "data";
/// The record of the data inside [`DATA_DIR`].
pub const SOURCE_FILE: &str = "source.json";
/// The copied split files inside [`DATA_DIR`].
pub const FILES_DIR: &str = "files";
/// The `--init-from` ancestors' data inside [`DATA_DIR`].
pub const LINEAGE_DIR: &str = "lineage";
/// Default largest total size of the split files copied into a run: 64 MiB. Larger data is
/// recorded by absolute path and hash (a device's card is small; such data lives on a share).
pub const DEFAULT_SNAPSHOT_LIMIT: u64 = 64 << 20;
/// Largest `source.json` read.
const MAX_SOURCE_BYTES: u64 = 1 << 20;
/// Most files a dataset's splits may hold (a JointBERT folder has 3 per split).
const MAX_FILES: usize = 64;

/// Where a run's training data is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Stored {
    /// Copied into the run (`RUN/data/files`, or the lineage folder's `files`).
    Snapshot,
    /// Too large to copy: the dataset folder as an absolute path.
    External {
        /// The dataset folder.
        path: PathBuf,
    },
}

/// `RUN/data/source.json`: the training data of a run and how to read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSource {
    /// Where the files are.
    pub stored: Stored,
    /// The split files and folders' files, relative to the dataset folder, sorted.
    pub files: Vec<String>,
    /// SHA-256 over every file's relative name and content, in `files` order.
    pub sha256: String,
    /// Their total size.
    pub bytes: u64,
    /// The format given (`None`: detected, as at training).
    pub format: Option<Format>,
    /// CoNLL column names (`--columns`).
    pub columns: Option<Vec<String>>,
    /// TSV/CSV: the text column's name in the header row (`--text-column`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_column: Option<String>,
    /// The fraction of train held out when there is no valid split.
    pub holdout: f64,
    /// The tasks trained (`--tasks`; empty: every task of the data).
    pub tasks: Vec<String>,
    /// The dataset folder as given to `train` (for people; never read back).
    pub given: String,
}

/// One `--init-from` ancestor of a run (`RUN/data/lineage/K/lineage.json`, K = 1 the parent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    /// The ancestor run's folder, as it was when this run was trained.
    pub run: PathBuf,
    /// The tasks of its model.
    pub tasks: Vec<String>,
    /// The heads it kept frozen.
    pub frozen: Vec<String>,
    /// Whether its data was recorded (`lineage/K/source.json` beside this file).
    pub has_data: bool,
}

/// How the data of a run is read (the `train` flags that are about the data).
#[derive(Debug, Clone, Default)]
pub struct DataFlags {
    /// `--format`.
    pub format: Option<Format>,
    /// `--columns`.
    pub columns: Option<Vec<String>>,
    /// `--text-column`.
    pub text_column: Option<String>,
    /// `--holdout`.
    pub holdout: f64,
    /// `--tasks`.
    pub tasks: Vec<String>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The files of the dataset's splits relative to `dir` (a split file, or every regular file of a
/// JointBERT folder), sorted.
fn split_files(dir: &Path, dataset: &Dataset) -> Result<Vec<String>, RunError> {
    let mut out = Vec::new();
    for split in dataset.splits() {
        let src = &split.source;
        let rel = src.strip_prefix(dir).unwrap_or(src);
        let meta = std::fs::symlink_metadata(src).map_err(io(src))?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(src).map_err(io(src))? {
                let entry = entry.map_err(io(src))?;
                if entry.file_type().map_err(io(src))?.is_file() {
                    out.push(rel.join(entry.file_name()).display().to_string());
                }
            }
        } else {
            out.push(rel.display().to_string());
        }
    }
    out.sort();
    out.dedup();
    if out.len() > MAX_FILES {
        return Err(RunError::Corrupt {
            path: dir.to_path_buf(),
            message: format!("the splits hold {} files (at most {MAX_FILES})", out.len()),
        });
    }
    Ok(out)
}

/// SHA-256 over the relative names and contents of `files` in `dir`, and their total size.
fn hash_files(dir: &Path, files: &[String]) -> Result<(String, u64), RunError> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut bytes = 0;
    for f in files {
        let path = dir.join(f);
        let sha = fsutil::sha256_file(&path).map_err(io(&path))?;
        bytes += std::fs::metadata(&path).map_err(io(&path))?.len();
        h.update(f.as_bytes());
        h.update([0]);
        h.update(sha.as_bytes());
    }
    Ok((hex::encode(h.finalize()), bytes))
}

/// Copies `files` from `from` into `to` (each atomically).
fn copy_files(from: &Path, to: &Path, files: &[String]) -> Result<(), RunError> {
    for f in files {
        let dest = to.join(f);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let src = from.join(f);
        let bytes = std::fs::read(&src).map_err(io(&src))?;
        fsutil::write_atomic(&dest, &bytes).map_err(io(&dest))?;
    }
    Ok(())
}

/// Writes a [`DataSource`] as `folder/source.json`.
fn write_source(folder: &Path, source: &DataSource) -> Result<(), RunError> {
    let path = folder.join(SOURCE_FILE);
    let json = serde_json::to_vec_pretty(source).map_err(|e| RunError::Corrupt {
        path: path.clone(),
        message: e.to_string(),
    })?;
    fsutil::write_atomic(&path, &json).map_err(io(&path))
}

/// Records the dataset `dataset` read from `dir` with `flags` in the run folder `run`: the files
/// copied when their total size is at most `limit` bytes, else their absolute path and hash.
/// Replaces an earlier record (a `train --force` over an interrupted run).
pub fn record_data(
    run: &Path,
    dir: &Path,
    dataset: &Dataset,
    flags: &DataFlags,
    limit: u64,
) -> Result<DataSource, RunError> {
    let files = split_files(dir, dataset)?;
    let (sha256, bytes) = hash_files(dir, &files)?;
    let folder = run.join(DATA_DIR);
    if folder.exists() {
        std::fs::remove_dir_all(&folder).map_err(io(&folder))?;
    }
    std::fs::create_dir_all(&folder).map_err(io(&folder))?;
    let stored = if bytes <= limit {
        copy_files(dir, &folder.join(FILES_DIR), &files)?;
        Stored::Snapshot
    } else {
        Stored::External {
            path: std::fs::canonicalize(dir).map_err(io(dir))?,
        }
    };
    let source = DataSource {
        stored,
        files,
        sha256,
        bytes,
        format: flags.format,
        columns: flags.columns.clone(),
        text_column: flags.text_column.clone(),
        holdout: flags.holdout,
        tasks: flags.tasks.clone(),
        given: dir.display().to_string(),
    };
    write_source(&folder, &source)?;
    Ok(source)
}

/// Copies the data record of the `--init-from` run `parent` (and its own ancestors') into the
/// lineage folder of `run`, with the heads it had frozen. Parents written before runs recorded
/// their data are recorded without it.
pub fn record_lineage(
    run: &Path,
    parent: &Path,
    parent_tasks: Vec<String>,
    parent_frozen: Vec<String>,
) -> Result<(), RunError> {
    let lineage = run.join(DATA_DIR).join(LINEAGE_DIR);
    if lineage.exists() {
        std::fs::remove_dir_all(&lineage).map_err(io(&lineage))?;
    }
    let first = lineage.join("1");
    std::fs::create_dir_all(&first).map_err(io(&first))?;
    let parent_data = parent.join(DATA_DIR);
    let has_data = parent_data.join(SOURCE_FILE).is_file();
    if has_data {
        copy_tree(&parent_data, &first, &[LINEAGE_DIR])?;
    }
    // The parent's own ancestors become 2, 3, ...
    let mut k = 2;
    while parent_data
        .join(LINEAGE_DIR)
        .join((k - 1).to_string())
        .is_dir()
    {
        let from = parent_data.join(LINEAGE_DIR).join((k - 1).to_string());
        copy_tree(&from, &lineage.join(k.to_string()), &[])?;
        k += 1;
    }
    let record = Lineage {
        run: std::fs::canonicalize(parent).unwrap_or(parent.to_path_buf()),
        tasks: parent_tasks,
        frozen: parent_frozen,
        has_data,
    };
    let path = first.join("lineage.json");
    let json = serde_json::to_vec_pretty(&record).unwrap_or_default();
    fsutil::write_atomic(&path, &json).map_err(io(&path))
}

/// Copies the regular files under `from` into `to`, skipping the top-level entries in `skip`;
/// links are not followed.
fn copy_tree(from: &Path, to: &Path, skip: &[&str]) -> Result<(), RunError> {
    std::fs::create_dir_all(to).map_err(io(to))?;
    for entry in std::fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let t = entry.file_type().map_err(io(from))?;
        let (src, dest) = (entry.path(), to.join(&name));
        if t.is_dir() {
            copy_tree(&src, &dest, &[])?;
        } else if t.is_file() {
            let bytes = std::fs::read(&src).map_err(io(&src))?;
            fsutil::write_atomic(&dest, &bytes).map_err(io(&dest))?;
        }
    }
    Ok(())
}

impl DataSource {
    /// Reads `folder/source.json` (`folder`: `RUN/data` or a lineage folder); `None` when the run
    /// does not record its data (written before runs did).
    pub fn read(folder: &Path) -> Result<Option<Self>, RunError> {
        let path = folder.join(SOURCE_FILE);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let corrupt = |message: String| RunError::Corrupt {
            path: path.clone(),
            message,
        };
        if !meta.is_file() || meta.len() > MAX_SOURCE_BYTES {
            return Err(corrupt(format!(
                "not a regular file of at most {MAX_SOURCE_BYTES} bytes"
            )));
        }
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let source: DataSource =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&bytes))
                .map_err(|e| corrupt(format!("field \"{}\": {}", e.path(), e.inner())))?;
        if !(source.holdout > 0.0 && source.holdout < 1.0) {
            return Err(corrupt(format!(
                "field \"holdout\": {} is not in (0, 1)",
                source.holdout
            )));
        }
        for f in &source.files {
            let p = Path::new(f);
            if f.is_empty()
                || p.is_absolute()
                || p.components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(corrupt(format!(
                    "field \"files\": {f:?} is not a path inside the dataset"
                )));
            }
        }
        Ok(Some(source))
    }

    /// The dataset folder of this record, read from `folder` (`RUN/data` or a lineage folder):
    /// the copy inside the run, or the external folder when its files still have the recorded
    /// hash (else an error saying what changed).
    pub fn locate(&self, folder: &Path) -> Result<PathBuf, RunError> {
        let dir = match &self.stored {
            Stored::Snapshot => folder.join(FILES_DIR),
            Stored::External { path } => path.clone(),
        };
        let changed = |message: String| RunError::Corrupt {
            path: dir.clone(),
            message,
        };
        if !dir.is_dir() {
            return Err(changed(format!(
                "the run's training data is not here (recorded in {}); restore it or retrain with --data",
                folder.join(SOURCE_FILE).display()
            )));
        }
        let (sha, _) = hash_files(&dir, &self.files).map_err(|e| {
            changed(format!(
                "the run's training data is incomplete ({e}); restore it or retrain with --data"
            ))
        })?;
        if sha != self.sha256 {
            return Err(changed(format!(
                "the run's training data changed since it was trained (sha256 {} vs recorded {}); \
                 restore it or retrain with --data",
                &sha[..12],
                &self.sha256[..12.min(self.sha256.len())]
            )));
        }
        Ok(dir)
    }

    /// How the files are read (the format and `--columns` given at training).
    pub fn read_options(&self) -> ReadOptions {
        ReadOptions {
            format: self.format,
            columns: self.columns.clone(),
            text_column: self.text_column.clone(),
        }
    }

    /// Loads the dataset as `train` read it (its tasks selected), with `seed` for the hold-out.
    pub fn load(&self, folder: &Path, seed: u64) -> Result<Dataset, RunError> {
        let dir = self.locate(folder)?;
        let bad = |e: crate::data::DataError| RunError::Corrupt {
            path: e.path().to_path_buf(),
            message: e.to_string(),
        };
        let mut dataset =
            load_dataset(&dir, &self.read_options(), self.holdout, seed).map_err(bad)?;
        if !self.tasks.is_empty() {
            dataset.select_tasks(&self.tasks).map_err(bad)?;
        }
        Ok(dataset)
    }
}

/// The data folder of the run (version 0) `root`.
pub fn data_folder(root: &Path) -> PathBuf {
    root.join(DATA_DIR)
}

/// The lineage folders of the run `root` that record data, nearest ancestor first, with their
/// records.
pub fn lineage(root: &Path) -> Result<Vec<(PathBuf, Lineage)>, RunError> {
    let dir = root.join(DATA_DIR).join(LINEAGE_DIR);
    let mut out = Vec::new();
    for k in 1.. {
        let folder = dir.join(k.to_string());
        if !folder.is_dir() {
            break;
        }
        let path = folder.join("lineage.json");
        let record = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice::<Lineage>(&b).map_err(|e| RunError::Corrupt {
                path: path.clone(),
                message: e.to_string(),
            })?,
            // An ancestor's ancestors carry no lineage.json of their own position.
            Err(_) => Lineage {
                run: PathBuf::new(),
                tasks: Vec::new(),
                frozen: Vec::new(),
                has_data: folder.join(SOURCE_FILE).is_file(),
            },
        };
        out.push((folder, record));
    }
    Ok(out)
}
