//! Finding and reading splits and datasets.

use std::fs;
use std::path::{Path, PathBuf};

use super::error::DataError;
use super::example::{Dataset, Example, Labels, Split};
use super::format::{Format, SPLIT_EXTENSIONS};
use super::text::read_text;
use super::{conll, delimited, jointbert, jsonl};

/// How to read a split: the format (detected when `None`) and, for CoNLL, the names of its
/// columns (`--columns word,pos,chunk,ner`: the column named `word` or `token` holds the words,
/// `_` skips a column, every other column is a token task; without it, the first column holds the
/// words and the last one the `tags`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// The format, or `None` to detect it from the layout and extension.
    pub format: Option<Format>,
    /// CoNLL column names.
    pub columns: Option<Vec<String>>,
    /// TSV/CSV: the name of the text column in the header row (`--text-column`; default: any of
    /// `text`, `sentence`, `utterance`).
    pub text_column: Option<String>,
}

impl ReadOptions {
    /// Options with a format and no column names.
    pub fn format(format: Option<Format>) -> Self {
        Self {
            format,
            ..Self::default()
        }
    }
}

/// Parses the text of one split file of `format` (not JointBERT, which is a folder) as read from
/// `path` (named in errors): the parser behind [`load_split`] for in-memory text (fuzzing, tests).
pub fn parse_text(
    path: &Path,
    format: Format,
    text: &str,
    opts: &ReadOptions,
) -> Result<Vec<Example>, DataError> {
    let examples = match format {
        Format::Jsonl => jsonl::parse(path, text)?,
        Format::Conll => conll::parse(path, text, opts.columns.as_deref())?,
        Format::Tsv => delimited::parse_tsv(path, text, opts.text_column.as_deref())?,
        Format::Csv => delimited::parse_csv(path, text, opts.text_column.as_deref())?,
        Format::JointBert => {
            return Err(DataError::file(
                path,
                "a JointBERT split is a folder, not one text",
            ))
        }
    };
    check_consistent_tasks(&examples)?;
    Ok(examples)
}

/// Parses the three files of a JointBERT split given as texts (`seq.in`, `seq.out`, `label`; the
/// folder `dir` is named in errors): the parser behind [`load_split`] for in-memory text.
pub fn parse_jointbert(
    dir: &Path,
    seq_in: &str,
    seq_out: Option<&str>,
    label: Option<&str>,
) -> Result<Vec<Example>, DataError> {
    let examples = jointbert::parse(dir, seq_in, seq_out, label)?;
    check_consistent_tasks(&examples)?;
    Ok(examples)
}

/// Reads the split to evaluate: `path` is a dataset directory (its split `name`) or a single file or
/// JointBERT folder.
pub fn load_eval_split(path: &Path, name: &str, opts: &ReadOptions) -> Result<Split, DataError> {
    if path.is_dir() && !path.join("seq.in").is_file() {
        load_split(path, name, opts)?.ok_or_else(|| DataError::MissingSplit {
            dir: path.to_path_buf(),
            split: name.to_string(),
        })
    } else {
        read_file_split(path, opts)
    }
}

/// Loads split `name` from `dir`. Returns `Ok(None)` if no folder or file for the split exists.
///
/// With `format` given, the split is still found by the known layouts/extensions but parsed as
/// that format.
pub fn load_split(dir: &Path, name: &str, opts: &ReadOptions) -> Result<Option<Split>, DataError> {
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
        [path] => read_named(path, name, opts).map(Some),
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
pub fn read_file_split(path: &Path, opts: &ReadOptions) -> Result<Split, DataError> {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    read_named(path, &name, opts)
}

/// Loads `train` (required), `valid` (held out of train if absent) and `test` (optional) from `dir`.
///
/// When there is no `valid` split, `holdout_fraction` of train (rounded, at least 1 example, and
/// train keeps at least 1) is held out, chosen by a `ChaCha8Rng` seeded with `seed`; both parts
/// keep the file order. All splits must have the same tasks as train.
pub fn load_dataset(
    dir: &Path,
    opts: &ReadOptions,
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
    let train = load_split(dir, "train", opts)?.ok_or_else(|| DataError::MissingSplit {
        dir: dir.to_path_buf(),
        split: "train".to_string(),
    })?;
    let test = load_split(dir, "test", opts)?;
    let (train, valid, valid_held_out) = match load_split(dir, "valid", opts)? {
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

/// The task names of a set of labels, for messages.
fn tasks_name(labels: &Labels) -> String {
    let names: Vec<&str> = labels.task_names().into_iter().map(|(n, _)| n).collect();
    if names.is_empty() {
        "no labels".to_string()
    } else {
        format!("tasks {}", names.join(", "))
    }
}

/// The same task names, as sentence / token keys.
fn same_tasks(a: &Labels, b: &Labels) -> bool {
    a.sentence.keys().eq(b.sentence.keys()) && a.token.keys().eq(b.token.keys())
}

/// `other` must have the same tasks as `train`.
fn check_same_tasks(train: &Split, other: &Split) -> Result<(), DataError> {
    let (Some(t), Some(o)) = (train.examples.first(), other.examples.first()) else {
        return Ok(());
    };
    if !same_tasks(&t.labels, &o.labels) {
        return Err(DataError::file(
            &other.source,
            format!(
                "split \"{}\" has {}, but train ({}) has {}; all splits must have the same tasks",
                other.name,
                tasks_name(&o.labels),
                train.source.display(),
                tasks_name(&t.labels)
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

fn read_named(path: &Path, name: &str, opts: &ReadOptions) -> Result<Split, DataError> {
    let format = detect_format(path, opts.format)?;
    if opts.columns.is_some() && format != Format::Conll {
        return Err(DataError::file(
            path,
            format!("--columns names CoNLL columns, but this split is {format}"),
        ));
    }
    let (examples, error_file) = match format {
        Format::JointBert => (jointbert::read(path)?, path.join("seq.in")),
        Format::Jsonl => (jsonl::parse(path, &read_text(path)?)?, path.to_path_buf()),
        Format::Conll => (
            conll::parse(path, &read_text(path)?, opts.columns.as_deref())?,
            path.to_path_buf(),
        ),
        Format::Tsv => (
            delimited::parse_tsv(path, &read_text(path)?, opts.text_column.as_deref())?,
            path.to_path_buf(),
        ),
        Format::Csv => (
            delimited::parse_csv(path, &read_text(path)?, opts.text_column.as_deref())?,
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
    if let Some(bad) = examples
        .iter()
        .find(|e| !same_tasks(&e.labels, &first.labels))
    {
        return Err(DataError::at(
            &bad.origin.file,
            bad.origin.line,
            format!(
                "example has {}, but the first example (line {}) has {}; all examples of a split must have the same tasks",
                tasks_name(&bad.labels),
                first.origin.line,
                tasks_name(&first.labels)
            ),
        ));
    }
    Ok(())
}
