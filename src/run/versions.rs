//! The versions of a run: every model the run has had, each a complete run folder, and which one
//! answers (`docs/versions.md`).
//!
//! - version 0 is the run folder itself (what `train` wrote); it is never deleted;
//! - `RUN/versions/N/` (N >= 1): a complete run folder (`config.json`, weights) plus
//!   `version.json` ([`VersionRecord`]: made by, when, why, parent, corrections, decision),
//!   written under `RUN/versions/.tmp-N` and renamed when complete;
//! - `RUN/versions/current`: the number of the version that answers (`N` and a newline), replaced
//!   by rename; absent: version 0;
//! - runs served before versions existed keep `RUN/serve/models/gen-N` and `RUN/serve/current`
//!   (`models/gen-N`): they are read as versions N, and the first version added writes
//!   `RUN/versions/current`, which from then on wins.
//!
//! Every change takes `RUN/versions/.lock` (a short wait when another process holds it), so a
//! `rollback` beside a running `serve` never interleaves with its publish. A killed process leaves
//! at most a `.tmp-N` folder (removed by the next writer) or a finished version the pointer does
//! not name yet: the pointer always names a complete version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{RunConfig, RunError, CONFIG_FILE};
use crate::fsutil;
use crate::metrics::Metrics;

/// The versions folder inside a run.
pub const VERSIONS_DIR: &str = "versions";
/// The pointer file inside [`VERSIONS_DIR`].
pub const POINTER_FILE: &str = "current";
/// A version's record inside its folder.
pub const RECORD_FILE: &str = "version.json";
/// Prefix of a version folder still being written.
const TEMP_PREFIX: &str = ".tmp-";
/// Largest pointer or record file read.
const MAX_SMALL_FILE: u64 = 1 << 20;
/// The pointer of runs served before versions existed (`RUN/serve/current`).
const LEGACY_POINTER: &str = "serve/current";
/// Their model folders (`RUN/serve/models/gen-NNNNNN`).
const LEGACY_MODELS: &str = "serve/models";
/// Their record of the journal entries a model was trained with.
const LEGACY_TRAINED: &str = "trained.json";
/// How long a writer waits for the versions lock.
const LOCK_WAIT: Duration = Duration::from_secs(120);

/// What made a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MadeBy {
    /// `edgetune train` (version 0).
    Train,
    /// A retrain of `serve` on the owner's corrections.
    Retrain,
    /// `edgetune rollback`: a copy of an earlier version.
    Rollback,
    /// A fleet round (`edgetune fleet join`).
    Fleet,
}

impl MadeBy {
    /// Its name in `history`.
    pub fn name(self) -> &'static str {
        match self {
            MadeBy::Train => "train",
            MadeBy::Retrain => "retrain",
            MadeBy::Rollback => "rollback",
            MadeBy::Fleet => "fleet",
        }
    }
}

/// `version.json`: how a version came to be and what was decided about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// Its number.
    pub version: u64,
    /// What made it.
    pub made_by: MadeBy,
    /// When it was made (seconds since the Unix epoch).
    pub created: u64,
    /// Why it was made (e.g. `retrain of 3 corrections`, `rollback to 0`).
    pub why: String,
    /// The version it was trained from (or copied from, for a rollback).
    pub parent: Option<u64>,
    /// The last journal entry its training had taken (corrections after it are new to it).
    pub journal_seq: u64,
    /// The journal entries (corrections) it was trained with.
    #[serde(default)]
    pub corrections: Vec<u64>,
    /// Whether it was swapped in (made current) when it was made.
    pub swapped: bool,
    /// The swap decision's reason.
    pub decision: String,
    /// The held-out score of the version it was compared with, and its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_score: Option<f64>,
    /// Its held-out score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_score: Option<f64>,
}

impl VersionRecord {
    /// A record made now.
    pub fn new(made_by: MadeBy, why: impl Into<String>) -> Self {
        Self {
            version: 0,
            made_by,
            created: now(),
            why: why.into(),
            parent: None,
            journal_seq: 0,
            corrections: Vec::new(),
            swapped: false,
            decision: String::new(),
            old_score: None,
            new_score: None,
        }
    }
}

/// The safe-swap rule: a candidate replaces the serving version when its held-out score is at
/// most `margin` below the serving one's (and every correction it was asked to learn is learned,
/// which the caller folds into `learned`).
#[derive(Debug, Clone)]
pub struct SwapRule {
    /// The serving version's held-out score.
    pub old_score: f64,
    /// The candidate's.
    pub new_score: f64,
    /// Largest drop accepted.
    pub margin: f64,
    /// `Err(reason)` when the candidate fails a check of the caller's (corrections unlearned).
    pub learned: Result<(), String>,
}

impl SwapRule {
    /// `Ok(reason)` to swap, `Err(reason)` to keep the serving version.
    pub fn decide(&self) -> Result<String, String> {
        if self.new_score < self.old_score - self.margin {
            return Err(format!(
                "held-out score fell from {:.4} to {:.4}, more than the margin {}",
                self.old_score, self.new_score, self.margin
            ));
        }
        self.learned.clone()?;
        Ok(format!(
            "held-out score {:.4} -> {:.4} (margin {})",
            self.old_score, self.new_score, self.margin
        ))
    }
}

/// One line of `history`.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    /// Its number.
    pub version: u64,
    /// Its folder.
    pub dir: PathBuf,
    /// Whether it answers now.
    pub current: bool,
    /// Its record (version 0 and old runs' models get one made from what they hold).
    #[serde(flatten)]
    pub record: VersionRecord,
    /// Its recorded metrics by split.
    pub metrics: BTreeMap<String, Metrics>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a small regular file (a pointer or a record), not following a link, at most
/// [`MAX_SMALL_FILE`] bytes; `None` when it does not exist.
fn read_small(path: &Path) -> Result<Option<Vec<u8>>, RunError> {
    use std::io::Read;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    if !meta.is_file() {
        return Err(RunError::Corrupt {
            path: path.to_path_buf(),
            message: "not a regular file".into(),
        });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(io(path))?
        .take(MAX_SMALL_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(io(path))?;
    if bytes.len() as u64 > MAX_SMALL_FILE {
        return Err(RunError::Corrupt {
            path: path.to_path_buf(),
            message: format!("over {MAX_SMALL_FILE} bytes"),
        });
    }
    Ok(Some(bytes))
}

/// The versions of the run folder `root`.
#[derive(Debug, Clone)]
pub struct Versions {
    /// The run folder (version 0).
    pub root: PathBuf,
}

impl Versions {
    /// The versions of `root` (nothing is read or created).
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// `RUN/versions`.
    pub fn dir(&self) -> PathBuf {
        self.root.join(VERSIONS_DIR)
    }

    /// The pointer file.
    pub fn pointer(&self) -> PathBuf {
        self.dir().join(POINTER_FILE)
    }

    fn legacy_dir(&self, n: u64) -> PathBuf {
        self.root.join(LEGACY_MODELS).join(format!("gen-{n:06}"))
    }

    /// The folder of version `n` if it exists: the run for 0, `versions/N`, or an old run's
    /// `serve/models/gen-N`. A link is never taken for a version.
    pub fn find(&self, n: u64) -> Option<PathBuf> {
        if n == 0 {
            return Some(self.root.clone());
        }
        [self.dir().join(n.to_string()), self.legacy_dir(n)]
            .into_iter()
            .find(|d| std::fs::symlink_metadata(d).is_ok_and(|m| m.is_dir()))
    }

    /// Why a pointer naming version `n` is refused: no such folder, or one that is not a folder of
    /// the run (a link is never followed).
    fn missing(&self, n: u64) -> String {
        let there = [self.dir().join(n.to_string()), self.legacy_dir(n)]
            .iter()
            .any(|d| std::fs::symlink_metadata(d).is_ok());
        if there {
            format!("names version {n}, which is not a folder of the run (a link or a file)")
        } else {
            format!("names version {n}, which does not exist")
        }
    }

    /// The folder of version `n`, or an error listing the versions there are.
    pub fn folder(&self, n: u64) -> Result<PathBuf, RunError> {
        self.find(n).ok_or_else(|| RunError::NotARun {
            path: self.dir().join(n.to_string()),
            message: format!(
                "the run has no version {n} (versions: {})",
                self.numbers()
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    /// The numbers of the versions there are, 0 first.
    pub fn numbers(&self) -> Vec<u64> {
        let mut out = vec![0];
        let scan = |dir: PathBuf, prefix: &str, out: &mut Vec<u64>| {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                if let Some(n) = name
                    .strip_prefix(prefix)
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    if n > 0 && is_dir && e.path().join(CONFIG_FILE).is_file() {
                        out.push(n);
                    }
                }
            }
        };
        scan(self.dir(), "", &mut out);
        scan(self.root.join(LEGACY_MODELS), "gen-", &mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The version that answers and its folder: what `versions/current` names, else (an old
    /// run) what `serve/current` names, else version 0.
    pub fn current(&self) -> Result<(u64, PathBuf), RunError> {
        let corrupt = |path: PathBuf, message: String| RunError::Corrupt { path, message };
        let pointer = self.pointer();
        if let Some(bytes) = read_small(&pointer)? {
            let text = String::from_utf8_lossy(&bytes);
            let n: u64 = text.trim().parse().map_err(|_| {
                corrupt(
                    pointer.clone(),
                    format!("expected a version number, found {:?}", text.trim()),
                )
            })?;
            let dir = self
                .find(n)
                .ok_or_else(|| corrupt(pointer.clone(), self.missing(n)))?;
            return Ok((n, dir));
        }
        let legacy = self.root.join(LEGACY_POINTER);
        let Some(bytes) = read_small(&legacy)? else {
            return Ok((0, self.root.clone()));
        };
        let text = String::from_utf8_lossy(&bytes);
        let n = text
            .trim()
            .strip_prefix("models/gen-")
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                corrupt(
                    legacy.clone(),
                    format!("expected \"models/gen-N\", found {:?}", text.trim()),
                )
            })?;
        let dir = self
            .find(n)
            .ok_or_else(|| corrupt(legacy.clone(), self.missing(n)))?;
        Ok((n, dir))
    }

    /// The folder of version `n`, or of the current version when `None`.
    pub fn resolve(&self, n: Option<u64>) -> Result<(u64, PathBuf), RunError> {
        match n {
            Some(n) => Ok((n, self.folder(n)?)),
            None => self.current(),
        }
    }

    /// The record of version `n` (in `dir`): its `version.json`, else one made from what the
    /// folder holds (version 0: `train`; an old run's model: a retrain, with its `trained.json`).
    pub fn record(&self, n: u64, dir: &Path) -> Result<VersionRecord, RunError> {
        let path = dir.join(RECORD_FILE);
        if n > 0 {
            if let Some(bytes) = read_small(&path)? {
                return serde_json::from_slice(&bytes).map_err(|e| RunError::Corrupt {
                    path,
                    message: e.to_string(),
                });
            }
        }
        let created = std::fs::metadata(dir.join(CONFIG_FILE))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let mut r = if n == 0 {
            VersionRecord::new(MadeBy::Train, "edgetune train")
        } else {
            VersionRecord::new(MadeBy::Retrain, "a retrain of serve (before versions)")
        };
        r.version = n;
        r.created = created;
        r.swapped = true;
        r.parent = n.checked_sub(1);
        r.journal_seq = legacy_trained_through(dir)?;
        Ok(r)
    }

    /// Every version with its record and metrics, 0 first.
    pub fn list(&self) -> Result<Vec<VersionInfo>, RunError> {
        let (current, _) = self.current()?;
        let mut out = Vec::new();
        for n in self.numbers() {
            let dir = self.folder(n)?;
            let rc = super::read_config(&dir)?;
            out.push(VersionInfo {
                version: n,
                current: n == current,
                record: self.record(n, &dir)?,
                metrics: rc.metrics,
                dir,
            });
        }
        Ok(out)
    }

    /// Takes the versions lock, waiting up to two minutes for another writer.
    pub fn lock(&self) -> Result<fsutil::DirLock, RunError> {
        let dir = self.dir();
        fsutil::real_dir(&dir).map_err(io(&dir))?;
        let t0 = std::time::Instant::now();
        loop {
            match fsutil::DirLock::acquire(&dir) {
                Ok(l) => return Ok(l),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock && t0.elapsed() < LOCK_WAIT =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(io(&dir.join(".lock"))(e)),
            }
        }
    }

    /// Removes version folders left half-written by a killed process (holding the lock).
    fn clean_temp(&self) -> Result<(), RunError> {
        let dir = self.dir();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                let p = e.path();
                fsutil::remove_nofollow(&p).map_err(io(&p))?;
            }
        }
        Ok(())
    }

    /// The number the next version takes.
    pub fn next_number(&self) -> u64 {
        self.numbers().last().copied().unwrap_or(0) + 1
    }

    /// A fresh folder to write a version into (under a temporary name; see [`Self::add`]).
    pub fn temp_folder(&self) -> Result<PathBuf, RunError> {
        let dir = self.dir();
        fsutil::real_dir(&dir).map_err(io(&dir))?;
        let t = dir.join(format!(
            "{TEMP_PREFIX}{}-{}",
            std::process::id(),
            now_nanos()
        ));
        std::fs::create_dir_all(&t).map_err(io(&t))?;
        Ok(t)
    }

    /// Adds the complete run folder `temp` (from [`Self::temp_folder`]) as the next version with
    /// `record` (its number filled in), and makes it current when `record.swapped`. Returns the
    /// number and the folder.
    pub fn add(&self, temp: &Path, mut record: VersionRecord) -> Result<(u64, PathBuf), RunError> {
        let _lock = self.lock()?;
        let n = self.next_number();
        record.version = n;
        let rpath = temp.join(RECORD_FILE);
        let json = serde_json::to_vec_pretty(&record).map_err(|e| RunError::Corrupt {
            path: rpath.clone(),
            message: e.to_string(),
        })?;
        fsutil::write_atomic(&rpath, &json).map_err(io(&rpath))?;
        fsutil::sync_dir_itself(temp).map_err(io(temp))?;
        let dest = self.dir().join(n.to_string());
        std::fs::rename(temp, &dest).map_err(io(&dest))?;
        fsutil::sync_dir(&dest).map_err(io(&dest))?;
        fsutil::fault_point();
        if record.swapped {
            self.point_at(n)?;
        }
        Ok((n, dest))
    }

    /// Makes version `n` current (holding the lock).
    fn point_at(&self, n: u64) -> Result<(), RunError> {
        let pointer = self.pointer();
        fsutil::write_atomic(&pointer, format!("{n}\n").as_bytes()).map_err(io(&pointer))
    }

    /// Stores the run `config` + `weights` as the next version and swaps it in when the safe-swap
    /// `rule` allows (always when `rule` is `None`): the one call that adds a version (retrain,
    /// fleet round). Returns the number, the folder and whether it is now current.
    pub fn add_run(
        &self,
        config: RunConfig,
        weights: &[u8],
        mut record: VersionRecord,
        rule: Option<&SwapRule>,
    ) -> Result<(u64, PathBuf, bool), RunError> {
        self.prepare()?;
        let temp = self.temp_folder()?;
        let result = (|| {
            super::save_run(&temp, config, weights)?;
            if let Some(rule) = rule {
                record.old_score = Some(rule.old_score);
                record.new_score = Some(rule.new_score);
                let d = rule.decide();
                record.swapped = d.is_ok();
                record.decision = d.unwrap_or_else(|e| e);
            } else {
                record.swapped = true;
            }
            self.add(&temp, record.clone())
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&temp);
        }
        let (n, dir) = result?;
        Ok((n, dir, record.swapped))
    }

    /// Removes what killed writers left (holding the lock).
    pub fn prepare(&self) -> Result<(), RunError> {
        // A link at `versions/` or an old run's `serve/models/` is refused: nothing is written
        // or deleted where it points.
        for d in [self.dir(), self.root.join(LEGACY_MODELS)] {
            if std::fs::symlink_metadata(&d).is_ok() {
                fsutil::real_dir(&d).map_err(io(&d))?;
            }
        }
        if !self.dir().is_dir() {
            return Ok(());
        }
        let _lock = self.lock()?;
        self.clean_temp()
    }

    /// Makes version `to` current again: a new version, a copy of `to`, made by `rollback`.
    /// Returns the new version's number.
    pub fn rollback(&self, to: u64) -> Result<u64, RunError> {
        let from = self.folder(to)?;
        let source = self.record(to, &from)?;
        let rc = super::read_config(&from)?;
        let wpath = from.join(&rc.weights.file);
        let weights = std::fs::read(&wpath).map_err(io(&wpath))?;
        if fsutil::sha256_bytes(&weights) != rc.weights.sha256 {
            return Err(RunError::Corrupt {
                path: wpath,
                message: "the weights do not match their recorded hash".into(),
            });
        }
        let (current, _) = self.current()?;
        let mut record = VersionRecord::new(MadeBy::Rollback, format!("rollback to {to}"));
        record.parent = Some(to);
        record.journal_seq = source.journal_seq;
        record.corrections = source.corrections;
        record.decision = format!("rollback from version {current} to a copy of version {to}");
        let (n, _, _) = self.add_run(rc, &weights, record, None)?;
        Ok(n)
    }

    /// Deletes the oldest versions so that at most `keep` (at least 1) remain besides version 0,
    /// never the current one nor version 0. Returns the numbers deleted.
    pub fn prune(&self, keep: usize) -> Result<Vec<u64>, RunError> {
        let _lock = self.lock()?;
        let (current, _) = self.current()?;
        let mut numbers: Vec<u64> = self.numbers().into_iter().filter(|&n| n > 0).collect();
        let mut deleted = Vec::new();
        while numbers.len() > keep.max(1) {
            let Some(pos) = numbers.iter().position(|&n| n != current) else {
                break;
            };
            let n = numbers.remove(pos);
            if let Some(dir) = self.find(n) {
                // A version folder is a real folder inside the run ([`Self::find`] takes no link).
                let parent = dir.parent().map(Path::to_path_buf);
                std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
                if let Some(p) = parent {
                    fsutil::sync_dir_itself(&p).map_err(io(&p))?;
                }
            }
            deleted.push(n);
        }
        Ok(deleted)
    }
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The journal entry an old run's model recorded in `trained.json` (0 when absent).
fn legacy_trained_through(dir: &Path) -> Result<u64, RunError> {
    let path = dir.join(LEGACY_TRAINED);
    let Some(bytes) = read_small(&path)? else {
        return Ok(0);
    };
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["journal_seq"].as_u64())
        .ok_or_else(|| RunError::Corrupt {
            path,
            message: "expected {\"journal_seq\": N}".into(),
        })
}

/// The folder of version `version` of the run `run` (the current one when `None`), as the
/// commands that read a run (`infer`, `eval`, `export`, `bench`, `inspect`) take it. A folder that
/// is itself a version (`RUN/versions/N`) is taken as it is.
pub fn resolve(run: &Path, version: Option<u64>) -> Result<(u64, PathBuf), RunError> {
    let v = Versions::new(run);
    if version.is_none() && v.numbers() == [0] && !v.root.join(LEGACY_POINTER).exists() {
        return Ok((0, run.to_path_buf()));
    }
    v.resolve(version)
}

/// The run folder (version 0) a version folder belongs to: `RUN` for `RUN/versions/N` and
/// `RUN/serve/models/gen-N`, else the folder itself.
pub fn root_of(dir: &Path) -> PathBuf {
    let parent = dir.parent();
    let grand = parent.and_then(Path::parent);
    match (parent.and_then(Path::file_name), grand) {
        (Some(p), Some(g)) if p == VERSIONS_DIR && dir.join(RECORD_FILE).is_file() => {
            g.to_path_buf()
        }
        (Some(p), Some(g)) if p == "models" && g.file_name().is_some_and(|n| n == "serve") => {
            g.parent().map_or(dir.to_path_buf(), Path::to_path_buf)
        }
        _ => dir.to_path_buf(),
    }
}
