//! The unfrozen top backbone layers (`--unfreeze-top N`) and how the heads read their output.

use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;

use crate::backbone::layers::TopLayers;
use crate::nn::reborrow;

/// Dropout in the unfrozen layers during training (BERT's own `hidden_dropout_prob`).
pub const LAYER_DROPOUT: f32 = 0.1;

/// The unfrozen top layers together with what the heads read from them (`--unfreeze-top N`).
///
/// The feature cache holds token-level states `cached` (every head state `<= first` plus `first`
/// itself); the layers run on state `first` and produce states `first+1..=L`. [`Unfrozen::word_inputs`]
/// pools each state the heads read to words (the mean of each word's sub-tokens, as the cache does
/// for a frozen backbone) and stacks them to the heads' `[B, W, K, H]` input.
#[derive(Debug, Clone)]
pub struct Unfrozen {
    /// The trainable layers `first..L`.
    pub top: TopLayers,
    /// The cached token-level states, in cache order (contains `top.first`).
    pub cached: Vec<usize>,
    /// The hidden states the heads read, in their order.
    pub head_states: Vec<usize>,
}

impl Unfrozen {
    /// The token-level states the cache must hold for `head_states` when the layers above `first`
    /// are unfrozen: every head state `<= first`, and `first`, ascending.
    pub fn cached_states(head_states: &[usize], first: usize) -> Vec<usize> {
        let mut v: Vec<usize> = head_states
            .iter()
            .copied()
            .filter(|&s| s <= first)
            .collect();
        v.push(first);
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Runs the layers on a batch of cached token states and returns the heads' input:
    /// `([B, W, K, H]` word states, `[B, H]` pooled sentence embedding (mean of the last state over
    /// every token)), differentiable with respect to the layers' parameters. `dropout`: training.
    pub fn word_inputs(
        &self,
        states: &Tensor,
        token_mask: &Tensor,
        word_avg: &Tensor,
        sentence_avg: &Tensor,
        mut dropout: Option<(f32, &mut ChaCha8Rng)>,
    ) -> Result<(Tensor, Tensor)> {
        let cached_state = |s: usize| -> Result<Tensor> {
            let pos = self.cached.iter().position(|&c| c == s).ok_or_else(|| {
                candle_core::Error::Msg(format!(
                    "hidden state {s} is not among the cached states {:?}",
                    self.cached
                ))
            })?;
            states.narrow(2, pos, 1)?.squeeze(2)?.contiguous()
        };
        let first = self.top.first;
        let bias = TopLayers::attention_bias(token_mask)?;
        let mut outs: Vec<Tensor> = Vec::with_capacity(self.top.layers.len());
        let mut x = cached_state(first)?;
        for layer in &self.top.layers {
            x = layer.forward(&x, &bias, reborrow(&mut dropout))?;
            outs.push(x.clone());
        }
        let words = self
            .head_states
            .iter()
            .map(|&s| {
                let tokens = if s <= first {
                    cached_state(s)?
                } else {
                    outs[s - first - 1].clone()
                };
                word_avg.matmul(&tokens)
            })
            .collect::<Result<Vec<_>>>()?;
        let words = Tensor::stack(&words, 2)?;
        let pooled = sentence_avg.matmul(&x)?.squeeze(1)?;
        Ok((words, pooled))
    }
}
