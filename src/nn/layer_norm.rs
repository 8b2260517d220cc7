//! Layer normalisation, trainable (candle's fused `layer_norm` has no backward pass).

use candle_core::{Result, Tensor, D};

use super::kernels::layer_norm::LayerNormOp;
use super::params::ParamBuilder;

/// Layer normalisation over the last dimension, from differentiable primitives (candle's fused
/// `layer_norm` has no backward pass).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    /// Scale (`gamma`), `[hidden]`.
    pub weight: Tensor,
    /// Shift (`beta`), `[hidden]`.
    pub bias: Tensor,
    /// Added to the variance.
    pub eps: f64,
}

impl LayerNorm {
    /// Pre-trained `weight` and `bias` (older checkpoints: `gamma`/`beta`, which the source
    /// resolves) under `vb`'s prefix.
    pub fn load(vb: &mut ParamBuilder, hidden: usize, eps: f64) -> Result<Self> {
        let weight = vb.load("weight", &[hidden])?;
        let bias = vb.load("bias", &[hidden])?;
        Ok(Self { weight, bias, eps })
    }

    /// `(x - mean) / sqrt(var + eps) * weight + bias` over the last dimension (biased variance, as
    /// PyTorch and ONNX compute it): the fused [`LayerNormOp`], equal to
    /// [`LayerNorm::forward_reference`] in values and gradients (`tests/train/grad_tests.rs`).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let h = *dims
            .last()
            .ok_or_else(|| candle_core::Error::Msg("LayerNorm: a scalar input".into()))?;
        x.reshape(((), h))?
            .contiguous()?
            .apply_op3(
                &self.weight,
                &self.bias,
                LayerNormOp {
                    eps: self.eps as f32,
                },
            )?
            .reshape(dims)
    }

    /// The same from candle primitives (the reference for the fused op).
    pub fn forward_reference(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let std = (var + self.eps)?.sqrt()?;
        centred
            .broadcast_div(&std)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}
