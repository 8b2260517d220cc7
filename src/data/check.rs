//! `edgetune data check`: what a dataset holds and what in it would mislead training, without a
//! backbone: per split and task the label counts, duplicated texts, texts with conflicting labels,
//! blank lines and overlong examples; across splits the one-label tasks (training refuses them)
//! and the valid/test labels train lacks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::DataError;
use super::example::{Dataset, Split, TaskInfo};
use super::load::{load_split, ReadOptions};

/// Examples listed by name in a report (duplicates, conflicts, long examples) before "and N more".
pub const LISTED: usize = 10;

/// The check of a dataset folder.
#[derive(Debug, Clone, Serialize)]
pub struct DataCheck {
    /// The dataset folder.
    pub dir: PathBuf,
    /// Each split found (train, valid, test), in that order.
    pub splits: Vec<SplitCheck>,
    /// What training refuses (a task with one label).
    pub errors: Vec<String>,
    /// What training accepts but scores wrongly (labels of valid/test that train lacks).
    pub warnings: Vec<String>,
}

/// The check of one split.
#[derive(Debug, Clone, Serialize)]
pub struct SplitCheck {
    /// `train`, `valid` or `test`.
    pub name: String,
    /// The file or folder read.
    pub source: PathBuf,
    /// Examples read.
    pub examples: usize,
    /// Per task: its kind and how many examples (sentence tasks) or words (token tasks) carry each
    /// label.
    pub tasks: BTreeMap<String, TaskCounts>,
    /// Texts that occur more than once: the text and how often (at most [`LISTED`]).
    pub duplicates: Vec<(String, usize)>,
    /// How many examples repeat an earlier text.
    pub duplicate_examples: usize,
    /// Texts with different labels for one task (at most [`LISTED`]).
    pub conflicts: Vec<Conflict>,
    /// How many texts have conflicting labels.
    pub conflicting_texts: usize,
    /// Blank lines in the file (skipped when reading).
    pub empty_lines: usize,
    /// Examples of more than `max_words` words: (line, words) (at most [`LISTED`]).
    pub long_examples: Vec<(usize, usize)>,
    /// How many examples are longer than `max_words` words.
    pub long_count: usize,
}

/// One task's labels in a split.
#[derive(Debug, Clone, Serialize)]
pub struct TaskCounts {
    /// `sentence`, `spans` or `tokens`.
    pub kind: &'static str,
    /// Examples (or words) per label.
    pub labels: BTreeMap<String, usize>,
}

/// A text given different labels for one task.
#[derive(Debug, Clone, Serialize)]
pub struct Conflict {
    /// The text (its words joined by spaces).
    pub text: String,
    /// The task.
    pub task: String,
    /// The labels it was given (sentence tasks), or its distinct tag sequences (token tasks).
    pub labels: Vec<String>,
}

/// Reads the splits of `dir` (valid and test when present; none is held out) and checks them.
/// `max_words`: the length above which an example counts as overlong.
pub fn check_data(
    dir: &Path,
    opts: &ReadOptions,
    max_words: usize,
) -> Result<DataCheck, DataError> {
    let train = load_split(dir, "train", opts)?.ok_or_else(|| DataError::MissingSplit {
        dir: dir.to_path_buf(),
        split: "train".into(),
    })?;
    let valid = load_split(dir, "valid", opts)?;
    let test = load_split(dir, "test", opts)?;
    let splits: Vec<SplitCheck> = [Some(&train), valid.as_ref(), test.as_ref()]
        .into_iter()
        .flatten()
        .map(|s| check_split(s, max_words))
        .collect();
    let dataset = Dataset {
        valid: valid.clone().unwrap_or_else(|| Split {
            examples: Vec::new(),
            ..train.clone()
        }),
        train,
        valid_held_out: valid.is_none(),
        test,
    };
    let errors = match dataset.check_tasks() {
        Ok(()) => Vec::new(),
        Err(e) => vec![e.to_string()],
    };
    Ok(DataCheck {
        dir: dir.to_path_buf(),
        splits,
        errors,
        warnings: dataset.unknown_labels(),
    })
}

/// The check of one split.
fn check_split(split: &Split, max_words: usize) -> SplitCheck {
    let tasks: BTreeMap<String, TaskCounts> = split
        .tasks()
        .iter()
        .map(|t: &TaskInfo| {
            let counts = TaskCounts {
                kind: t.kind.name(),
                labels: split.label_counts(&t.name),
            };
            (t.name.clone(), counts)
        })
        .collect();
    // Per text: how often, and per task the distinct labels given.
    let mut seen: BTreeMap<String, (usize, BTreeMap<String, Vec<String>>)> = BTreeMap::new();
    for e in &split.examples {
        let entry = seen.entry(e.words.join(" ")).or_default();
        entry.0 += 1;
        let labels = e
            .labels
            .sentence
            .iter()
            .map(|(k, v)| (k, v.clone()))
            .chain(e.labels.token.iter().map(|(k, v)| (k, v.join(" "))));
        for (task, label) in labels {
            let given = entry.1.entry(task.clone()).or_default();
            if !given.contains(&label) {
                given.push(label);
            }
        }
    }
    let dups: Vec<(String, usize)> = seen
        .iter()
        .filter(|(_, (n, _))| *n > 1)
        .map(|(t, (n, _))| (t.clone(), *n))
        .collect();
    let conflicts: Vec<Conflict> = seen
        .iter()
        .flat_map(|(text, (_, per_task))| {
            per_task
                .iter()
                .filter(|(_, l)| l.len() > 1)
                .map(|(task, labels)| Conflict {
                    text: text.clone(),
                    task: task.clone(),
                    labels: labels.clone(),
                })
        })
        .collect();
    let long: Vec<(usize, usize)> = split
        .examples
        .iter()
        .filter(|e| e.words.len() > max_words)
        .map(|e| (e.origin.line, e.words.len()))
        .collect();
    SplitCheck {
        name: split.name.clone(),
        source: split.source.clone(),
        examples: split.examples.len(),
        tasks,
        duplicate_examples: dups.iter().map(|(_, n)| n - 1).sum(),
        duplicates: dups.into_iter().take(LISTED).collect(),
        conflicting_texts: conflicts.len(),
        conflicts: conflicts.into_iter().take(LISTED).collect(),
        empty_lines: empty_lines(&split.source),
        long_count: long.len(),
        long_examples: long.into_iter().take(LISTED).collect(),
    }
}

/// Blank lines of a line-based file (0 for a JointBERT folder or a file that cannot be read).
/// In CoNLL files blank lines separate sentences, so only runs of two or more count there.
fn empty_lines(source: &Path) -> usize {
    if !source.is_file() {
        return 0;
    }
    let Ok(text) = std::fs::read_to_string(source) else {
        return 0;
    };
    let conll = matches!(
        source.extension().and_then(|e| e.to_str()),
        Some("conll" | "txt")
    );
    let mut count = 0;
    let mut previous_blank = true;
    for line in text.lines() {
        let blank = line.trim().is_empty();
        if blank && (!conll || previous_blank) {
            count += 1;
        }
        previous_blank = blank;
    }
    count
}

impl DataCheck {
    /// The report as text, one block per split.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for s in &self.splits {
            let _ = writeln!(
                out,
                "{} ({}): {} examples",
                s.name,
                s.source.display(),
                s.examples
            );
            for (task, t) in &s.tasks {
                let labels: Vec<String> =
                    t.labels.iter().map(|(l, n)| format!("{l} {n}")).collect();
                let _ = writeln!(
                    out,
                    "  {task} ({}, {} labels): {}",
                    t.kind,
                    t.labels.len(),
                    labels.join(", ")
                );
            }
            let _ = writeln!(
                out,
                "  duplicated texts: {} extra copies; conflicting labels: {} texts; empty lines: {}; long examples: {}",
                s.duplicate_examples, s.conflicting_texts, s.empty_lines, s.long_count
            );
            for (text, n) in &s.duplicates {
                let _ = writeln!(out, "    duplicate x{n}: {text}");
            }
            for c in &s.conflicts {
                let _ = writeln!(
                    out,
                    "    conflict ({}): {} -> {}",
                    c.task,
                    c.text,
                    c.labels.join(" | ")
                );
            }
            for (line, words) in &s.long_examples {
                let _ = writeln!(out, "    long: line {line}, {words} words");
            }
        }
        for e in &self.errors {
            let _ = writeln!(out, "error: {e}");
        }
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        out
    }
}
