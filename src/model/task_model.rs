//! The task model: optional unfrozen top backbone layers, then one head per task.
//!
//! Heads share no parameter unless a sentence head reads a token task's states
//! ([`SentenceHeadConfig::reads`](super::config::SentenceHeadConfig::reads)); so one head can be
//! frozen while the others train without changing the frozen head's predictions.

use candle_core::{Device, Result, Tensor};
use rand_chacha::ChaCha8Rng;

use super::batch::{Batch, TokenBatch};
use super::config::{HeadConfig, ModelConfig};
use super::heads::{Head, SentenceHead, TokenHead};
use super::top::Unfrozen;
use crate::nn::{Group, ParamBuilder, ParamSet};

/// The heads (and unfrozen layers) with their parameters.
#[derive(Debug, Clone)]
pub struct TaskModel {
    /// The architecture.
    pub config: ModelConfig,
    /// One head per task, in [`ModelConfig::tasks`] order.
    pub heads: Vec<Head>,
    /// Every trainable tensor: the heads' (group [`Group::Head`]`(task)`) and the unfrozen
    /// layers' (group [`Group::Layer`]`(i)`).
    pub params: ParamSet,
    /// The unfrozen top backbone layers (`--unfreeze-top`), whose parameters are in `params` too.
    pub top: Option<Unfrozen>,
}

/// Logits of one batch, per task (`None`: not asked for).
#[derive(Debug, Clone)]
pub struct TaskLogits {
    /// `[B, classes]` for a sentence task, `[B, W, classes]` for a token task.
    pub logits: Vec<Option<Tensor>>,
}

impl TaskModel {
    /// Builds freshly initialised heads (validating the architecture first); the same seed gives
    /// the same weights. Parameters are created task by task in order, each under the task's name.
    pub fn new(config: ModelConfig, seed: u64, dev: &Device) -> Result<Self> {
        config.validate().map_err(candle_core::Error::Msg)?;
        let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
        let mut params = ParamSet::default();
        let (w, k) = (config.backbone_width, config.mixed_states);
        let mut heads = Vec::with_capacity(config.tasks.len());
        for (i, t) in config.tasks.iter().enumerate() {
            let mut vb = ParamBuilder::new(&mut params, &mut rng, Group::Head(i), dev);
            let mut vb = vb.pp(&t.name);
            let head = match &t.head {
                HeadConfig::Sentence(c) => {
                    let read = config.reads(i).map_or(0, |r| match &config.tasks[r].head {
                        HeadConfig::Token(tc) => 2 * tc.gru_units,
                        HeadConfig::Sentence(_) => 0,
                    });
                    Head::Sentence(SentenceHead::new(&mut vb, c, w, k, read, t.labels.len())?)
                }
                HeadConfig::Token(c) => {
                    Head::Token(TokenHead::new(&mut vb, c, w, k, t.labels.len())?)
                }
            };
            heads.push(head);
        }
        Ok(Self {
            config,
            heads,
            params,
            top: None,
        })
    }

    /// The heads' word-level input from a batch of cached token states, through the unfrozen top
    /// layers (an error if there are none). `dropout`: training (the layers' dropout).
    pub fn token_inputs(
        &self,
        tb: &TokenBatch,
        dropout: Option<(f32, &mut ChaCha8Rng)>,
    ) -> Result<Batch> {
        let top = self.top.as_ref().ok_or_else(|| {
            candle_core::Error::Msg("token-level features need unfrozen top layers".into())
        })?;
        let (words, pooled) = top.word_inputs(
            &tb.states,
            &tb.token_mask,
            &tb.word_avg,
            &tb.sentence_avg,
            dropout,
        )?;
        Ok(Batch {
            words,
            mask: tb.word_mask.clone(),
            pooled,
            width: tb.width,
        })
    }

    /// Runs the heads of the tasks `want` selects on a batch. `rng`: training (dropout).
    ///
    /// Sentence heads run first, in task order, then token heads. A token task's states are
    /// computed once, when a sentence head that reads them first needs them or else for its own
    /// logits; when that token task is not asked for they are computed as at inference and
    /// detached, so a frozen token head passes no gradient back.
    pub fn forward(
        &self,
        b: &Batch,
        want: &[bool],
        mut rng: Option<&mut ChaCha8Rng>,
    ) -> Result<TaskLogits> {
        let n = self.heads.len();
        let asked = |i: usize| want.get(i).copied().unwrap_or(false);
        let mut states: Vec<Option<Tensor>> = vec![None; n];
        let mut logits: Vec<Option<Tensor>> = vec![None; n];
        for i in 0..n {
            let Head::Sentence(h) = &self.heads[i] else {
                continue;
            };
            if !asked(i) {
                continue;
            }
            let read = match self.config.reads(i) {
                Some(r) => {
                    if states[r].is_none() {
                        let Head::Token(th) = &self.heads[r] else {
                            return Err(candle_core::Error::Msg(format!(
                                "task {:?} reads {:?}, which is not a token task",
                                self.config.tasks[i].name, self.config.tasks[r].name
                            )));
                        };
                        states[r] = Some(if asked(r) {
                            th.states(&b.words, &b.mask, rng.as_deref_mut())?
                        } else {
                            th.states(&b.words, &b.mask, None)?.detach()
                        });
                    }
                    states[r].as_ref()
                }
                None => None,
            };
            // Not detached when the token task trains: this head's loss trains its GRU too
            // (measured on SNIPS, `--unfreeze-top 2`: test intent 98.43% joint, 97.86% detached).
            logits[i] = Some(h.forward(&b.words, &b.mask, &b.pooled, read, rng.as_deref_mut())?);
        }
        for j in 0..n {
            let Head::Token(h) = &self.heads[j] else {
                continue;
            };
            if !asked(j) {
                continue;
            }
            let s = match states[j].take() {
                Some(s) => s,
                None => h.states(&b.words, &b.mask, rng.as_deref_mut())?,
            };
            logits[j] = Some(h.logits(&s, rng.as_deref_mut())?);
        }
        Ok(TaskLogits { logits })
    }
}
