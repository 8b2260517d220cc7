//! The data of a retrain: the run's original training data plus the live corrections.
//!
//! - Train: the original train split, where a sentence whose words equal a correction's (case
//!   aside) takes the correction's labels for the tasks it gives (the device owner's word wins
//!   over the shipped data; the two labels on one input would otherwise fight), followed by each
//!   correction `copies` times (oversampling: one sentence among hundreds gets little gradient
//!   in a few epochs).
//! - Valid (what the training loop's early stopping scores): the original valid split plus the
//!   corrections once, so the kept epoch is one that has learned them.
//! - Held out (what the swap is decided on): the original valid split alone.
//!
//! Only the words of the train split's sentences matter to the feature cache, so relabelled
//! sentences keep their cached features and only the corrections are extracted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::data::{load_dataset, Dataset, Example, Origin, ReadOptions, Split, TaskInfo};
use crate::run::RunConfig;

use super::super::correction::Correction;
use super::super::error::ServeError;

/// Fraction of train held out for validation when the data has no valid split (`train`'s default).
pub const HOLDOUT: f64 = 0.1;

/// A retrain's splits.
pub struct RetrainData {
    /// What `train` trains and selects on (train with the corrections, valid with them).
    pub dataset: Dataset,
    /// The original train split, relabelled (the first part of `dataset.train`).
    pub base_train: Split,
    /// The corrections as a split, in journal order.
    pub corrections: Split,
    /// Their journal numbers, in the same order.
    pub seqs: Vec<u64>,
    /// The tasks each correction gives.
    pub given: Vec<Vec<String>>,
    /// The original valid split (the swap decision's held-out data).
    pub held_out: Split,
    /// How many train sentences took a correction's labels.
    pub overridden: usize,
    /// Copies of each correction in `dataset.train`.
    pub copies: usize,
}

/// The folder of the run's training data: `over` if given, else the folder of the recorded
/// `training.data` (the train split's file or folder).
pub fn data_dir(rc: &RunConfig, run: &Path, over: Option<&Path>) -> Result<PathBuf, ServeError> {
    if let Some(d) = over {
        return Ok(d.to_path_buf());
    }
    let recorded = rc.training.data.as_deref().ok_or_else(|| {
        ServeError::Config(format!(
            "{}: the run does not record its training data (training.data); pass --data DIR",
            run.join(crate::run::CONFIG_FILE).display()
        ))
    })?;
    let train = PathBuf::from(recorded);
    let dir = train
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    if !dir.is_dir() {
        return Err(ServeError::Config(format!(
            "the run's training data {} is not here (recorded in {}); pass --data DIR",
            dir.display(),
            run.join(crate::run::CONFIG_FILE).display()
        )));
    }
    Ok(dir)
}

/// The corrections a retrain can take, in journal order: each is judged again
/// ([`crate::serve::correction`]'s `validate`: labels of the model, valid BIO, no conflict with
/// one kept before it). A correction that fails is skipped, never failing the retrain; the second
/// value has one warning per skipped correction naming its journal line (`lines`: seq -> line).
pub fn replayable(
    corrections: &[(u64, Correction)],
    tasks: &[TaskInfo],
    journal: &Path,
    lines: &HashMap<u64, usize>,
) -> (Vec<(u64, Correction)>, Vec<String>) {
    let mut kept: Vec<(u64, Correction)> = Vec::with_capacity(corrections.len());
    let mut warnings = Vec::new();
    for (seq, c) in corrections {
        match super::super::correction::validate(c, tasks, &kept) {
            Ok(()) => kept.push((*seq, c.clone())),
            Err(why) => warnings.push(format!(
                "{}:{}: correction {seq} skipped by this retrain: {why}",
                journal.display(),
                lines.get(seq).map_or("?".to_string(), |l| l.to_string())
            )),
        }
    }
    (kept, warnings)
}

fn key(words: &[String]) -> Vec<String> {
    words.iter().map(|w| w.to_lowercase()).collect()
}

/// Loads the data in `dir` for a model with `tasks` and adds `corrections` (see the module docs).
pub fn build(
    dir: &Path,
    tasks: &[TaskInfo],
    seed: u64,
    corrections: &[(u64, Correction)],
    journal: &Path,
    copies: usize,
) -> Result<RetrainData, ServeError> {
    let mut dataset = load_dataset(dir, &ReadOptions::default(), HOLDOUT, seed)
        .map_err(|e| ServeError::Config(format!("the retrain's training data: {e}")))?;
    let names: Vec<String> = tasks.iter().map(|t| t.name.clone()).collect();
    dataset
        .select_tasks(&names)
        .map_err(|e| ServeError::Config(format!("the retrain's training data: {e}")))?;
    dataset.test = None;
    let held_out = dataset.valid.clone();

    let mut overridden = 0;
    for ex in &mut dataset.train.examples {
        let k = key(&ex.words);
        let mut hit = false;
        for (_, c) in corrections.iter().filter(|(_, c)| key(&c.words) == k) {
            for task in &c.given {
                if let Some(l) = c.labels.sentence.get(task) {
                    ex.labels.sentence.insert(task.clone(), l.clone());
                }
                if let Some(l) = c.labels.token.get(task) {
                    ex.labels.token.insert(task.clone(), l.clone());
                }
            }
            hit = true;
        }
        overridden += usize::from(hit);
    }
    let base_train = dataset.train.clone();
    let examples: Vec<Example> = corrections
        .iter()
        .map(|(seq, c)| Example {
            words: c.words.clone(),
            labels: c.labels.clone(),
            origin: Origin {
                file: journal.to_path_buf(),
                line: *seq as usize,
            },
        })
        .collect();
    let corrections_split = Split {
        name: "corrections".into(),
        source: journal.to_path_buf(),
        format: dataset.train.format,
        examples,
    };
    for _ in 0..copies {
        dataset
            .train
            .examples
            .extend(corrections_split.examples.iter().cloned());
    }
    dataset
        .valid
        .examples
        .extend(corrections_split.examples.iter().cloned());
    Ok(RetrainData {
        dataset,
        base_train,
        corrections: corrections_split,
        seqs: corrections.iter().map(|(s, _)| *s).collect(),
        given: corrections.iter().map(|(_, c)| c.given.clone()).collect(),
        held_out,
        overridden,
        copies,
    })
}
