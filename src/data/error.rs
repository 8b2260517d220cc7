//! The error of reading a dataset: always names the file or folder, and the 1-based line when the
//! problem is on one.

use std::path::{Path, PathBuf};

/// An error reading a dataset. The message always names the file or folder, and the 1-based line
/// when the problem is on one.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file or folder could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A problem on a specific line (bad JSON, bad tag, tag/word count mismatch, non-UTF-8 ...).
    #[error("{}:{line}: {message}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A problem with a file or folder as a whole (no examples, unknown format, mismatched tasks ...).
    #[error("{}: {message}", path.display())]
    File {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Two files or folders could both be the same split.
    #[error("{}: split \"{split}\" is ambiguous: both {} and {} exist; keep only one", dir.display(), first.display(), second.display())]
    Ambiguous {
        /// The dataset directory.
        dir: PathBuf,
        /// The split name.
        split: String,
        /// The first candidate.
        first: PathBuf,
        /// The second candidate.
        second: PathBuf,
    },
    /// A required split does not exist.
    #[error("{}: no \"{split}\" split (expected {split}/ with seq.in, or {split}.jsonl, {split}.txt, {split}.conll, {split}.tsv or {split}.csv)", dir.display())]
    MissingSplit {
        /// The dataset directory.
        dir: PathBuf,
        /// The split name.
        split: String,
    },
}

impl DataError {
    /// The file or folder the error is about.
    pub fn path(&self) -> &Path {
        match self {
            DataError::Io { path, .. }
            | DataError::Line { path, .. }
            | DataError::File { path, .. } => path,
            DataError::Ambiguous { dir, .. } | DataError::MissingSplit { dir, .. } => dir,
        }
    }

    /// The 1-based line the error is on, if it is about one line.
    pub fn line(&self) -> Option<usize> {
        match self {
            DataError::Line { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// An error on `line` of `path`.
    pub fn at(path: &Path, line: usize, message: impl Into<String>) -> DataError {
        DataError::Line {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }

    /// An error about `path` as a whole.
    pub fn file(path: &Path, message: impl Into<String>) -> DataError {
        DataError::File {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    /// An I/O error reading `path`.
    pub fn io(path: &Path, source: std::io::Error) -> DataError {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
