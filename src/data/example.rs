//! Labelled utterances, their tasks, splits and datasets.
//!
//! Invariants of every loaded [`Example`]: `words` is non-empty, each word is non-empty and
//! contains no whitespace, every token task has one label per word, every sentence label is
//! non-empty, and there is at least one label. Within a [`Split`] every example has the same tasks.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::format::Format;

/// The sentence task of intent classification (JointBERT's `label`, a TSV/CSV file without a
/// header): the name `eval`, `infer` and the merged model's legacy keys know it by.
pub const INTENT: &str = "intent";
/// The token task of BIO slot tagging (JointBERT's `seq.out`, CoNLL's last column): its labels are
/// always checked as BIO tags.
pub const TAGS: &str = "tags";

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

/// The labels of one utterance, by task name: what the data gives and what a model predicts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Labels {
    /// Sentence-level labels (`intent`, `sentiment`, ...).
    pub sentence: BTreeMap<String, String>,
    /// Token-level labels, one per word (`tags`, `pos`, ...).
    pub token: BTreeMap<String, Vec<String>>,
}

impl Labels {
    /// The `intent` label, if any.
    pub fn intent(&self) -> Option<&str> {
        self.sentence.get(INTENT).map(String::as_str)
    }

    /// The `tags` (BIO slot tags), if any.
    pub fn tags(&self) -> Option<&[String]> {
        self.token.get(TAGS).map(Vec::as_slice)
    }

    /// True when there is no label at all.
    pub fn is_empty(&self) -> bool {
        self.sentence.is_empty() && self.token.is_empty()
    }

    /// The task names, sentence tasks first, each group by name.
    pub fn task_names(&self) -> Vec<(&str, bool)> {
        self.sentence
            .keys()
            .map(|k| (k.as_str(), true))
            .chain(self.token.keys().map(|k| (k.as_str(), false)))
            .collect()
    }
}

/// One labelled utterance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    /// The words (non-empty, no whitespace inside a word).
    pub words: Vec<String>,
    /// The labels by task.
    pub labels: Labels,
    /// Where the example starts.
    pub origin: Origin,
}

impl Example {
    /// The `intent` label, if any.
    pub fn intent(&self) -> Option<&str> {
        self.labels.intent()
    }

    /// The `tags`, if any.
    pub fn tags(&self) -> Option<&[String]> {
        self.labels.tags()
    }
}

/// What a task predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// One label per sentence (intent, sentiment, topic): accuracy.
    Sentence,
    /// One BIO/IOB tag per word (slots, NER): span F1, BIO-constrained decoding.
    Spans,
    /// One label per word that is not BIO (part of speech, word attributes): per-token accuracy,
    /// arg-max decoding.
    Tokens,
}

impl TaskKind {
    /// True for the token-level kinds.
    pub fn is_token(self) -> bool {
        !matches!(self, TaskKind::Sentence)
    }

    /// The kind's name in messages and files.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Sentence => "sentence",
            TaskKind::Spans => "spans",
            TaskKind::Tokens => "tokens",
        }
    }
}

/// A task found in the data: its name, kind and labels (sorted; for token tasks `O` first when
/// present).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// The key or column that names it.
    pub name: String,
    /// What it predicts.
    pub kind: TaskKind,
    /// Its labels, in class-id order.
    pub labels: Vec<String>,
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
        self.examples.iter().all(|e| e.intent().is_some())
    }

    /// True if every example has tags.
    pub fn has_tags(&self) -> bool {
        self.examples.iter().all(|e| e.tags().is_some())
    }

    /// The split's tasks (those of its first example; every example has the same), sentence tasks
    /// first, each group by name. A token task is [`TaskKind::Spans`] when every label is a BIO tag
    /// (and always for [`TAGS`]), else [`TaskKind::Tokens`].
    pub fn tasks(&self) -> Vec<TaskInfo> {
        let Some(first) = self.examples.first() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for name in first.labels.sentence.keys() {
            let labels: BTreeSet<&str> = self
                .examples
                .iter()
                .filter_map(|e| e.labels.sentence.get(name).map(String::as_str))
                .collect();
            out.push(TaskInfo {
                name: name.clone(),
                kind: TaskKind::Sentence,
                labels: labels.into_iter().map(str::to_string).collect(),
            });
        }
        for name in first.labels.token.keys() {
            let mut labels: BTreeSet<&str> = self
                .examples
                .iter()
                .filter_map(|e| e.labels.token.get(name))
                .flatten()
                .map(String::as_str)
                .collect();
            let bio = name == TAGS || labels.iter().all(|l| super::text::validate_tag(l).is_ok());
            // A span task's decoding needs `O` (words outside every chunk, words cut by
            // truncation), so it is always class 0; for other token tasks it is first when present.
            let mut list = Vec::with_capacity(labels.len() + 1);
            if labels.remove("O") || bio {
                list.push("O".to_string());
            }
            list.extend(labels.into_iter().map(str::to_string));
            out.push(TaskInfo {
                name: name.clone(),
                kind: if bio {
                    TaskKind::Spans
                } else {
                    TaskKind::Tokens
                },
                labels: list,
            });
        }
        out
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

impl Dataset {
    /// The splits, train first.
    pub fn splits(&self) -> impl Iterator<Item = &Split> {
        [Some(&self.train), Some(&self.valid), self.test.as_ref()]
            .into_iter()
            .flatten()
    }

    /// Keeps only the tasks named in `keep` (`--tasks`); an error names a task the data lacks.
    pub fn select_tasks(&mut self, keep: &[String]) -> Result<(), super::error::DataError> {
        let have: Vec<String> = self.train.tasks().into_iter().map(|t| t.name).collect();
        if let Some(missing) = keep.iter().find(|k| !have.contains(k)) {
            return Err(super::error::DataError::file(
                &self.train.source,
                format!(
                    "--tasks names `{missing}`, but the data's tasks are: {}",
                    have.join(", ")
                ),
            ));
        }
        for split in [
            Some(&mut self.train),
            Some(&mut self.valid),
            self.test.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            for e in &mut split.examples {
                e.labels.sentence.retain(|k, _| keep.contains(k));
                e.labels.token.retain(|k, _| keep.contains(k));
            }
        }
        Ok(())
    }
}

impl Dataset {
    /// Warnings about data that trains without error but cannot give a useful model: a sentence
    /// task with one label, a token task whose every label is the same (all `O`), a valid split
    /// whose labels training never saw (early stopping would measure nothing).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let valid_tasks = self.valid.tasks();
        for t in self.train.tasks() {
            let distinct: std::collections::BTreeSet<&str> = match t.kind {
                TaskKind::Sentence => self
                    .train
                    .examples
                    .iter()
                    .filter_map(|e| e.labels.sentence.get(&t.name).map(String::as_str))
                    .collect(),
                _ => self
                    .train
                    .examples
                    .iter()
                    .filter_map(|e| e.labels.token.get(&t.name))
                    .flatten()
                    .map(String::as_str)
                    .collect(),
            };
            if distinct.len() <= 1 {
                let only = distinct.iter().next().copied().unwrap_or("");
                out.push(format!(
                    "task `{}` has a single label ({only:?}) in {}: its head cannot learn to tell anything apart",
                    t.name,
                    self.train.source.display()
                ));
            }
            if let Some(v) = valid_tasks.iter().find(|v| v.name == t.name) {
                let seen: std::collections::BTreeSet<&String> = t.labels.iter().collect();
                let meaningful: Vec<&String> = v
                    .labels
                    .iter()
                    .filter(|l| !(t.kind == TaskKind::Spans && l.as_str() == "O"))
                    .collect();
                if !meaningful.is_empty() && meaningful.iter().all(|l| !seen.contains(l)) {
                    out.push(format!(
                        "task `{}`: none of the valid split's labels occurs in train; its valid score (and early stopping) measures nothing",
                        t.name
                    ));
                }
            }
        }
        out
    }
}

impl Split {
    /// How many examples carry each label of task `name` (sentence tasks), or how many words
    /// (token tasks); empty if the split lacks the task.
    pub fn label_counts(&self, name: &str) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for e in &self.examples {
            if let Some(l) = e.labels.sentence.get(name) {
                *out.entry(l.clone()).or_default() += 1;
            }
            for l in e.labels.token.get(name).into_iter().flatten() {
                *out.entry(l.clone()).or_default() += 1;
            }
        }
        out
    }
}

impl Dataset {
    /// Refuses a task that cannot be learned: one with a single label in train (a sentence task
    /// whose every example has the same label, a token task whose every word has the same tag).
    pub fn check_tasks(&self) -> Result<(), super::error::DataError> {
        for t in self.train.tasks() {
            let counts = self.train.label_counts(&t.name);
            if counts.len() <= 1 {
                let only = counts.keys().next().map_or("", String::as_str);
                return Err(super::error::DataError::file(
                    &self.train.source,
                    format!(
                        "task `{}` has a single label ({only:?}) in every example: a head cannot learn anything from it; \
                         add examples of other labels, or leave the task out with --tasks",
                        t.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// One line per label of valid or test that train never has, per task: the model cannot
    /// predict it, so its examples count as wrong.
    pub fn unknown_labels(&self) -> Vec<String> {
        let mut out = Vec::new();
        let train: Vec<TaskInfo> = self.train.tasks();
        let others = [Some(&self.valid), self.test.as_ref()];
        for split in others.into_iter().flatten() {
            for t in &train {
                for (label, n) in split.label_counts(&t.name) {
                    if !t.labels.contains(&label) {
                        out.push(format!(
                            "{}: task `{}`: label `{label}` ({n} {}) is not in train; the model cannot predict it",
                            split.source.display(),
                            t.name,
                            if t.kind.is_token() { "words" } else { "examples" }
                        ));
                    }
                }
            }
        }
        out
    }
}
