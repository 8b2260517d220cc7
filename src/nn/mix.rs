//! ELMo's scalar mix: a learned softmax-weighted sum of `K` hidden states.

use candle_core::{Result, Tensor};

use super::functional::softmax_last;
use super::kernels::ops::MixOp;
use super::params::{Init, ParamBuilder};

/// A learned softmax-weighted mix of `K` hidden states, scaled by `gamma`.
#[derive(Debug, Clone)]
pub struct LayerMix {
    /// `[K]` mixing logits.
    pub weights: Tensor,
    /// `[1]` scale.
    pub gamma: Tensor,
}

impl LayerMix {
    /// `weights` (zeros: an even mix) and `gamma` (one) under `vb`'s prefix.
    pub fn new(vb: &mut ParamBuilder, k: usize) -> Result<Self> {
        let weights = vb.var("weights", &[k], Init::Zeros)?;
        let gamma = vb.var("gamma", &[1], Init::Ones)?;
        Ok(Self { weights, gamma })
    }

    /// `[B, W, K, H]` -> `[B, W, H]` (the fused [`MixOp`]: candle's own formulation computed a
    /// gradient for the constant cached states too, the most expensive part of an epoch).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let w = softmax_last(&self.weights)?.broadcast_mul(&self.gamma)?;
        x.contiguous()?.apply_op2(&w, MixOp)
    }
}
