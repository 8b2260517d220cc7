//! Training data in batches: the cached features of a split, padded, with each task's targets.

use candle_core::{Device, Tensor};
use rand_chacha::ChaCha8Rng;

use super::error::TrainError;
use crate::data::{Example, Split};
use crate::features::{ExampleRows, SplitFeatures, TokenRows, Unit};
use crate::model::{make_batch, make_token_batch, Batch, TaskModel, TokenBatch};

/// A split's examples with their cached features.
pub struct SplitData<'a> {
    /// The examples.
    pub split: &'a Split,
    /// Their features, in the same order.
    pub feats: SplitFeatures,
}

/// A batch read from the cache: the padded input, words per example, and per example which words
/// have features.
pub type ReadBatch = (Input, Vec<usize>, Vec<Vec<bool>>);

/// A padded batch as read from the cache.
pub enum Input {
    /// Word-level states: the heads' input as is (frozen backbone).
    Words(Batch),
    /// Token-level states: the unfrozen layers run first ([`TaskModel::token_inputs`]).
    Tokens(TokenBatch),
}

impl Input {
    /// Longest sentence in words.
    pub fn width(&self) -> usize {
        match self {
            Input::Words(b) => b.width,
            Input::Tokens(t) => t.width,
        }
    }

    /// The heads' input (running the unfrozen layers on token-level states; `dropout`: training).
    pub fn heads_input(
        self,
        model: &TaskModel,
        dropout: Option<(f32, &mut ChaCha8Rng)>,
    ) -> Result<Batch, TrainError> {
        Ok(match self {
            Input::Words(b) => b,
            Input::Tokens(t) => model.token_inputs(&t, dropout)?,
        })
    }
}

impl SplitData<'_> {
    /// Reads the features of example `i`.
    pub fn rows(&self, i: usize, scratch: &mut Vec<half::f16>) -> Result<ExampleRows, TrainError> {
        let mut rows = Vec::new();
        self.feats.read_rows(i, &mut rows, scratch)?;
        let words = self.feats.meta.rows[i] as usize;
        let kept = self.feats.meta.word_tokens[i]
            .iter()
            .take(words)
            .map(|(s, e)| e > s)
            .collect();
        Ok(ExampleRows {
            rows,
            words,
            kept,
            pooled: self.feats.pooled(i).to_vec(),
        })
    }

    /// Reads the token-level features of example `i` (a cache of [`Unit::Tokens`]).
    pub fn token_rows(
        &self,
        i: usize,
        scratch: &mut Vec<half::f16>,
    ) -> Result<TokenRows, TrainError> {
        let mut rows = Vec::new();
        self.feats.read_rows(i, &mut rows, scratch)?;
        let wt = &self.feats.meta.word_tokens[i];
        Ok(TokenRows {
            rows,
            tokens: self.feats.meta.rows[i] as usize,
            word_tokens: wt[..crate::tokenize::feature_words(wt)].to_vec(),
        })
    }

    /// Per word of example `i`: whether it has features (false when truncation cut it).
    pub fn kept(&self, i: usize) -> Vec<bool> {
        self.feats.meta.word_tokens[i]
            .iter()
            .map(|(s, e)| e > s)
            .collect()
    }

    /// Whether the cache holds token-level states (unfrozen top layers).
    pub fn is_tokens(&self) -> bool {
        self.feats.meta.spec.unit == Unit::Tokens
    }

    /// Reads examples `idx` and pads them into a batch for the heads (word level) or for the
    /// unfrozen layers (token level). Returns the batch, per example the words it covers (up to the
    /// last word with features), and per example every word's has-features flag.
    pub fn batch(
        &self,
        idx: &[usize],
        scratch: &mut Vec<half::f16>,
        dev: &Device,
    ) -> Result<ReadBatch, TrainError> {
        let k = self.feats.meta.spec.states.len();
        let h = self.feats.meta.hidden;
        if self.is_tokens() {
            let rows: Vec<TokenRows> = idx
                .iter()
                .map(|&i| self.token_rows(i, scratch))
                .collect::<Result<_, _>>()?;
            let refs: Vec<&TokenRows> = rows.iter().collect();
            let words = rows.iter().map(|r| r.word_tokens.len()).collect();
            let kept = idx.iter().map(|&i| self.kept(i)).collect();
            Ok((
                Input::Tokens(make_token_batch(&refs, k, h, dev)?),
                words,
                kept,
            ))
        } else {
            let rows: Vec<ExampleRows> = idx
                .iter()
                .map(|&i| self.rows(i, scratch))
                .collect::<Result<_, _>>()?;
            let refs: Vec<&ExampleRows> = rows.iter().collect();
            let b = make_batch(&refs, k, h, dev)?;
            let words = rows.iter().map(|r| r.words).collect();
            let kept = idx.iter().map(|&i| self.kept(i)).collect();
            Ok((Input::Words(b), words, kept))
        }
    }
}

/// The training targets of one task in one batch.
pub enum Target {
    /// Sentence task: class ids `[B]`.
    Sentence(Tensor),
    /// Token task: flat word indices into `[B * W]` and their class ids (words whose label the
    /// model lacks are left out).
    Token(Tensor, Tensor),
}

/// Targets of the tasks `train` selects (`None` for the others); `words`: per example the words the
/// batch covers (see [`SplitData::batch`]), `width`: the batch's width.
pub fn targets(
    model: &TaskModel,
    train: &[bool],
    ex: &[&Example],
    words: &[usize],
    width: usize,
    dev: &Device,
) -> Result<Vec<Option<Target>>, TrainError> {
    let mut out = Vec::with_capacity(model.config.tasks.len());
    for (i, task) in model.config.tasks.iter().enumerate() {
        if !train.get(i).copied().unwrap_or(false) {
            out.push(None);
            continue;
        }
        let missing = |e: &Example| {
            TrainError::Config(format!(
                "{}: example has no `{}` label, but that task trains",
                e.origin, task.name
            ))
        };
        if task.kind.is_token() {
            let (mut idx, mut tgt) = (Vec::new(), Vec::new());
            for (b, e) in ex.iter().enumerate() {
                let labels = e.labels.token.get(&task.name).ok_or_else(|| missing(e))?;
                // Words after the last one with features (cut by truncation) are not trained.
                for (w, t) in labels.iter().enumerate().take(words[b].min(width)) {
                    if let Some(id) = task.labels.iter().position(|x| x == t) {
                        idx.push((b * width + w) as u32);
                        tgt.push(id as u32);
                    }
                }
            }
            let n = idx.len();
            out.push(Some(Target::Token(
                Tensor::from_vec(idx, n, dev)?,
                Tensor::from_vec(tgt, n, dev)?,
            )));
        } else {
            let ids = ex
                .iter()
                .map(|e| {
                    let l = e
                        .labels
                        .sentence
                        .get(&task.name)
                        .ok_or_else(|| missing(e))?;
                    task.labels
                        .iter()
                        .position(|x| x == l)
                        .map(|p| p as u32)
                        .ok_or_else(|| {
                            TrainError::Config(format!(
                                "{}: label {l:?} of task `{}` is not among the model's labels",
                                e.origin, task.name
                            ))
                        })
                })
                .collect::<Result<Vec<u32>, _>>()?;
            out.push(Some(Target::Sentence(Tensor::from_vec(
                ids,
                ex.len(),
                dev,
            )?)));
        }
    }
    Ok(out)
}
