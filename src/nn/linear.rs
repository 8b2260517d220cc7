//! The dense layer, shared by the heads (fresh weights) and the unfrozen backbone layers
//! (pre-trained weights).

use candle_core::{Result, Tensor};

use super::kernels::ops::LinearOp;
use super::params::{Init, ParamBuilder};

/// A dense layer `y = x W^T + b` with `W: [out, in]` (PyTorch layout).
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[out, in]`.
    pub weight: Tensor,
    /// `[out]`.
    pub bias: Tensor,
}

impl Linear {
    /// Fresh `weight` (Xavier uniform) and `bias` (zeros) under `vb`'s prefix.
    pub fn new(vb: &mut ParamBuilder, inp: usize, out: usize) -> Result<Self> {
        let weight = vb.var("weight", &[out, inp], Init::Xavier)?;
        let bias = vb.var("bias", &[out], Init::Zeros)?;
        Ok(Self { weight, bias })
    }

    /// Pre-trained `weight` and `bias` under `vb`'s prefix.
    pub fn load(vb: &mut ParamBuilder, inp: usize, out: usize) -> Result<Self> {
        let weight = vb.load("weight", &[out, inp])?;
        let bias = vb.load("bias", &[out])?;
        Ok(Self { weight, bias })
    }

    /// Output width.
    pub fn out_features(&self) -> Result<usize> {
        self.weight.dim(0)
    }

    /// Applies the layer over the last dimension of `x` (any rank >= 1), as the fused [`LinearOp`]
    /// (candle's `matmul(w.t()) + broadcast_add(b)` reduced the bias gradient and transposed the
    /// weight gradient through slow strided paths).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut dims = x.dims().to_vec();
        let inp = dims
            .pop()
            .ok_or_else(|| candle_core::Error::Msg("Linear: a scalar input".into()))?;
        let y =
            x.reshape(((), inp))?
                .contiguous()?
                .apply_op3(&self.weight, &self.bias, LinearOp)?;
        dims.push(self.weight.dim(0)?);
        y.reshape(dims)
    }
}
