//! Datasets: reading labelled utterances in JointBERT, JSON lines, CoNLL and TSV/CSV formats.
//!
//! A dataset directory holds splits named `train`, `valid` and `test`. A split `NAME` is either a
//! JointBERT folder `NAME/` (`seq.in`, `seq.out`, `label`) or a single file `NAME.jsonl`,
//! `NAME.txt`/`NAME.conll` (CoNLL) or `NAME.tsv`/`NAME.csv`. Every problem with the input is
//! reported as a [`DataError`] naming the file and, when there is one, the 1-based line.
//!
//! Invariants of every loaded [`Example`]: `words` is non-empty, each word is non-empty and
//! contains no whitespace, `tags` (when present) has one valid BIO/IOB1 tag per word, `intent`
//! (when present) is non-empty, and at least one of `tags`/`intent` is present. Within a [`Split`]
//! every example has the same set of tasks.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod conll;
mod delimited;
mod jointbert;
mod jsonl;

/// The on-disk format of a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A folder with `seq.in` (words), `seq.out` (BIO tags) and `label` (intent), one example per line.
    JointBert,
    /// JSON lines: `{"text": ...}` or `{"words": [...], "tags": [...]}`, with an optional `"intent"`.
    Jsonl,
    /// CoNLL token files: token in the first column, tag in the last, blank lines between sentences.
    Conll,
    /// `label<TAB>text`, one example per line.
    Tsv,
    /// `label,text` with RFC 4180 quoting.
    Csv,
}

impl Format {
    /// All formats, in the order they are listed in messages.
    pub const ALL: [Format; 5] = [
        Format::JointBert,
        Format::Jsonl,
        Format::Conll,
        Format::Tsv,
        Format::Csv,
    ];

    /// The lowercase name used on the command line and in serialized form.
    pub fn name(self) -> &'static str {
        match self {
            Format::JointBert => "jointbert",
            Format::Jsonl => "jsonl",
            Format::Conll => "conll",
            Format::Tsv => "tsv",
            Format::Csv => "csv",
        }
    }

    /// The format a file extension stands for (`jsonl`, `txt`, `conll`, `tsv`, `csv`; case-insensitive).
    pub fn from_extension(ext: &str) -> Option<Format> {
        match ext.to_ascii_lowercase().as_str() {
            "jsonl" => Some(Format::Jsonl),
            "txt" | "conll" => Some(Format::Conll),
            "tsv" => Some(Format::Tsv),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// The file extensions a split file may have, in the order candidates are reported.
const SPLIT_EXTENSIONS: [&str; 5] = ["jsonl", "txt", "conll", "tsv", "csv"];

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error of [`Format::from_str`]: the name is not one of the known formats.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown data format \"{0}\" (expected one of: jointbert, jsonl, conll, tsv, csv)")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Format::ALL
            .into_iter()
            .find(|f| f.name() == lower)
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

/// Where an example comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Origin {
    /// The file the example was read from (for JointBERT, the folder's `seq.in`).
    pub file: PathBuf,
    /// 1-based line where the example starts.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One labelled utterance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    /// The words (non-empty, no whitespace inside a word).
    pub words: Vec<String>,
    /// One BIO tag per word, when the split has token tagging.
    pub tags: Option<Vec<String>>,
    /// The intent label, when the split has sentence classification.
    pub intent: Option<String>,
    /// Where the example starts.
    pub origin: Origin,
}

/// One split (train, valid, test, or a file given directly).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// The split's name (`train`, `valid`, `test`, or the file stem).
    pub name: String,
    /// The file or folder the split was read from.
    pub source: PathBuf,
    /// The format it was parsed as.
    pub format: Format,
    /// The examples, in file order (for a held-out split: in the train file's order).
    pub examples: Vec<Example>,
}

impl Split {
    /// True if every example has an intent.
    pub fn has_intent(&self) -> bool {
        self.examples.iter().all(|e| e.intent.is_some())
    }

    /// True if every example has tags.
    pub fn has_tags(&self) -> bool {
        self.examples.iter().all(|e| e.tags.is_some())
    }
}

/// A dataset: train, validation and optional test split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    /// The training split (minus the held-out examples when `valid_held_out`).
    pub train: Split,
    /// The validation split, read from disk or held out of train.
    pub valid: Split,
    /// True if `valid` was held out of the train split because the dataset has none.
    pub valid_held_out: bool,
    /// The test split, if the dataset has one.
    pub test: Option<Split>,
}

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
    pub(crate) fn at(path: &Path, line: usize, message: impl Into<String>) -> DataError {
        DataError::Line {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }

    /// An error about `path` as a whole.
    pub(crate) fn file(path: &Path, message: impl Into<String>) -> DataError {
        DataError::File {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    /// An I/O error reading `path`.
    pub(crate) fn io(path: &Path, source: std::io::Error) -> DataError {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Byte spans `(start, end)` of the whitespace-separated words of `text` (Unicode whitespace).
pub fn split_words(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, text.len()));
    }
    spans
}

/// Checks one BIO tag: `O`, `B-X` or `I-X` with a non-empty type `X` without whitespace.
/// On error, returns the reason.
pub fn validate_tag(tag: &str) -> Result<(), String> {
    if tag == "O" {
        return Ok(());
    }
    let kind = match tag.strip_prefix("B-").or_else(|| tag.strip_prefix("I-")) {
        Some(kind) => kind,
        None if tag.is_empty() => {
            return Err("empty tag (expected O, B-TYPE or I-TYPE)".to_string())
        }
        None => {
            return Err(format!(
                "malformed tag \"{tag}\" (expected O, B-TYPE or I-TYPE)"
            ))
        }
    };
    if kind.is_empty() {
        return Err(format!(
            "malformed tag \"{tag}\": empty slot type after \"{}\"",
            &tag[..2]
        ));
    }
    if kind.chars().any(char::is_whitespace) {
        return Err(format!(
            "malformed tag \"{tag}\": slot type contains whitespace"
        ));
    }
    Ok(())
}

/// Loads split `name` from `dir`. Returns `Ok(None)` if no folder or file for the split exists.
///
/// With `format` given, the split is still found by the known layouts/extensions but parsed as
/// that format.
pub fn load_split(
    dir: &Path,
    name: &str,
    format: Option<Format>,
) -> Result<Option<Split>, DataError> {
    let folder = dir.join(name);
    let mut candidates: Vec<PathBuf> = Vec::new();
    let mut bare_folder = None;
    if folder.is_dir() {
        if folder.join("seq.in").is_file() {
            candidates.push(folder.clone());
        } else {
            bare_folder = Some(folder.clone());
        }
    }
    for ext in SPLIT_EXTENSIONS {
        let file = dir.join(format!("{name}.{ext}"));
        if file.is_file() {
            candidates.push(file);
        }
    }
    match candidates.as_slice() {
        [] => match bare_folder {
            Some(f) => Err(DataError::file(
                &f,
                "folder has no seq.in, so it is not a JointBERT split (seq.in, seq.out, label)",
            )),
            None => Ok(None),
        },
        [path] => read_named(path, name, format).map(Some),
        [first, second, ..] => Err(DataError::Ambiguous {
            dir: dir.to_path_buf(),
            split: name.to_string(),
            first: first.clone(),
            second: second.clone(),
        }),
    }
}

/// Reads a single file or JointBERT folder given directly. The split is named after the file stem
/// (or the folder name). Without `format`, the format is detected from the layout/extension.
pub fn read_file_split(path: &Path, format: Option<Format>) -> Result<Split, DataError> {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    read_named(path, &name, format)
}

/// Loads `train` (required), `valid` (held out of train if absent) and `test` (optional) from `dir`.
///
/// When there is no `valid` split, `holdout_fraction` of train (rounded, at least 1 example, and
/// train keeps at least 1) is held out, chosen by a `ChaCha8Rng` seeded with `seed`; both parts
/// keep the file order. All splits must have the same tasks as train.
pub fn load_dataset(
    dir: &Path,
    format: Option<Format>,
    holdout_fraction: f64,
    seed: u64,
) -> Result<Dataset, DataError> {
    if !dir.is_dir() {
        return Err(match fs::metadata(dir) {
            Err(e) => DataError::io(dir, e),
            Ok(_) => DataError::file(
                dir,
                "not a directory (a dataset is a directory with train/valid/test splits)",
            ),
        });
    }
    let train = load_split(dir, "train", format)?.ok_or_else(|| DataError::MissingSplit {
        dir: dir.to_path_buf(),
        split: "train".to_string(),
    })?;
    let test = load_split(dir, "test", format)?;
    let (train, valid, valid_held_out) = match load_split(dir, "valid", format)? {
        Some(valid) => (train, valid, false),
        None => {
            let (train, valid) = hold_out(train, holdout_fraction, seed)?;
            (train, valid, true)
        }
    };
    for split in std::iter::once(&valid).chain(test.as_ref()) {
        check_same_tasks(&train, split)?;
    }
    Ok(Dataset {
        train,
        valid,
        valid_held_out,
        test,
    })
}

/// Splits `train` into (train, valid) deterministically.
fn hold_out(train: Split, fraction: f64, seed: u64) -> Result<(Split, Split), DataError> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;

    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(DataError::file(
            &train.source,
            format!("no valid split, and the hold-out fraction {fraction} is not between 0 and 1"),
        ));
    }
    let n = train.examples.len();
    if n < 2 {
        return Err(DataError::file(
            &train.source,
            format!("no valid split, and train has only {n} example, too few to hold one out; add a valid split"),
        ));
    }
    let n_valid = ((n as f64 * fraction).round() as usize).clamp(1, n - 1);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    let mut in_valid = vec![false; n];
    for &i in &order[..n_valid] {
        in_valid[i] = true;
    }
    let (mut kept, mut held) = (Vec::with_capacity(n - n_valid), Vec::with_capacity(n_valid));
    for (example, valid) in train.examples.into_iter().zip(in_valid) {
        if valid {
            held.push(example);
        } else {
            kept.push(example);
        }
    }
    let valid = Split {
        name: "valid".to_string(),
        source: train.source.clone(),
        format: train.format,
        examples: held,
    };
    Ok((
        Split {
            examples: kept,
            ..train
        },
        valid,
    ))
}

/// Describes a task set for messages.
fn tasks_name(intent: bool, tags: bool) -> &'static str {
    match (intent, tags) {
        (true, true) => "intent and tags",
        (true, false) => "intent only",
        (false, true) => "tags only",
        (false, false) => "no labels",
    }
}

/// `other` must have the same tasks as `train`.
fn check_same_tasks(train: &Split, other: &Split) -> Result<(), DataError> {
    let (ti, tt) = (train.has_intent(), train.has_tags());
    let (oi, ot) = (other.has_intent(), other.has_tags());
    if (ti, tt) != (oi, ot) {
        return Err(DataError::file(
            &other.source,
            format!(
                "split \"{}\" has {}, but train ({}) has {}; all splits must have the same tasks",
                other.name,
                tasks_name(oi, ot),
                train.source.display(),
                tasks_name(ti, tt)
            ),
        ));
    }
    Ok(())
}

/// Detects the format of `path` (a folder is JointBERT; a file by its extension), honouring an override.
fn detect_format(path: &Path, format: Option<Format>) -> Result<Format, DataError> {
    let meta = fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    if meta.is_dir() {
        return match format {
            None | Some(Format::JointBert) => Ok(Format::JointBert),
            Some(f) => Err(DataError::file(
                path,
                format!("is a folder (JointBERT layout), but the format was given as {f}"),
            )),
        };
    }
    match format {
        Some(Format::JointBert) => Err(DataError::file(
            path,
            "is a file, but the format was given as jointbert (a folder with seq.in, seq.out, label)",
        )),
        Some(f) => Ok(f),
        None => path
            .extension()
            .and_then(|e| e.to_str())
            .and_then(Format::from_extension)
            .ok_or_else(|| {
                DataError::file(
                    path,
                    "cannot tell the format from the file extension (known: .jsonl, .txt, .conll, .tsv, .csv); give the format explicitly",
                )
            }),
    }
}

fn read_named(path: &Path, name: &str, format: Option<Format>) -> Result<Split, DataError> {
    let format = detect_format(path, format)?;
    let (examples, error_file) = match format {
        Format::JointBert => (jointbert::read(path)?, path.join("seq.in")),
        Format::Jsonl => (jsonl::parse(path, &read_text(path)?)?, path.to_path_buf()),
        Format::Conll => (conll::parse(path, &read_text(path)?)?, path.to_path_buf()),
        Format::Tsv => (
            delimited::parse_tsv(path, &read_text(path)?)?,
            path.to_path_buf(),
        ),
        Format::Csv => (
            delimited::parse_csv(path, &read_text(path)?)?,
            path.to_path_buf(),
        ),
    };
    if examples.is_empty() {
        return Err(DataError::file(
            &error_file,
            format!("no examples (parsed as {format})"),
        ));
    }
    check_consistent_tasks(&examples)?;
    Ok(Split {
        name: name.to_string(),
        source: path.to_path_buf(),
        format,
        examples,
    })
}

/// Every example of a split must have the same tasks as the first one.
fn check_consistent_tasks(examples: &[Example]) -> Result<(), DataError> {
    let Some(first) = examples.first() else {
        return Ok(());
    };
    let tasks = |e: &Example| (e.intent.is_some(), e.tags.is_some());
    let want = tasks(first);
    if let Some(bad) = examples.iter().find(|e| tasks(e) != want) {
        let (bi, bt) = tasks(bad);
        return Err(DataError::at(
            &bad.origin.file,
            bad.origin.line,
            format!(
                "example has {}, but the first example (line {}) has {}; all examples of a split must have the same tasks",
                tasks_name(bi, bt),
                first.origin.line,
                tasks_name(want.0, want.1)
            ),
        ));
    }
    Ok(())
}

/// Reads a whole file as UTF-8 (a leading byte-order mark is dropped). Invalid UTF-8 is reported
/// with the line it is on.
pub(crate) fn read_text(path: &Path) -> Result<String, DataError> {
    let mut bytes = fs::read(path).map_err(|e| DataError::io(path, e))?;
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        bytes.drain(..3);
    }
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let valid = e.utf8_error().valid_up_to();
        let line = bytes[..valid].iter().filter(|&&b| b == b'\n').count() + 1;
        let column = valid
            - bytes[..valid]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1)
            + 1;
        DataError::at(
            path,
            line,
            format!(
                "invalid UTF-8 (byte 0x{:02X} at byte column {column})",
                bytes[valid]
            ),
        )
    })
}

/// Lines of `text` with their 1-based numbers; a trailing `\r` is dropped.
pub(crate) fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
}

/// `what: message`, or just `message` when `what` is empty.
fn prefixed(what: &str, message: &str) -> String {
    if what.is_empty() {
        message.to_string()
    } else {
        format!("{what}: {message}")
    }
}

/// Splits `text` into words; errors (naming `field`) if there are none.
pub(crate) fn words_of(
    text: &str,
    path: &Path,
    line: usize,
    field: &str,
) -> Result<Vec<String>, DataError> {
    let words: Vec<String> = split_words(text)
        .into_iter()
        .map(|(s, e)| text[s..e].to_string())
        .collect();
    if words.is_empty() {
        return Err(DataError::at(
            path,
            line,
            prefixed(field, "text has no words"),
        ));
    }
    Ok(words)
}

/// Validates a tag sequence against the words; `what` prefixes messages (e.g. `field "tags"`).
pub(crate) fn check_tags(
    tags: &[String],
    n_words: usize,
    path: &Path,
    line: usize,
    what: &str,
) -> Result<(), DataError> {
    if tags.len() != n_words {
        return Err(DataError::at(
            path,
            line,
            prefixed(what, &format!("{} tags for {n_words} words", tags.len())),
        ));
    }
    for (i, tag) in tags.iter().enumerate() {
        validate_tag(tag).map_err(|reason| {
            DataError::at(
                path,
                line,
                prefixed(what, &format!("tag {}: {reason}", i + 1)),
            )
        })?;
    }
    Ok(())
}

/// Validates an intent label (non-empty, no surrounding whitespace is kept).
pub(crate) fn clean_intent(
    intent: &str,
    path: &Path,
    line: usize,
    what: &str,
) -> Result<String, DataError> {
    let intent = intent.trim();
    if intent.is_empty() {
        return Err(DataError::at(
            path,
            line,
            prefixed(what, "empty intent label"),
        ));
    }
    Ok(intent.to_string())
}
