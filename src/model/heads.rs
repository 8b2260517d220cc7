//! The two kinds of task head, built in candle from differentiable operations only.

use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;

use super::config::{SentenceHeadConfig, TokenHeadConfig};
use crate::nn::kernels::ops::const_mul;
use crate::nn::{bigru, dropout, softmax_last, GruDir, LayerMix, Linear, ParamBuilder};

/// A sentence-level head (intent, sentiment, topic).
#[derive(Debug, Clone)]
pub struct SentenceHead {
    /// Mix of the cached hidden states.
    pub mix: LayerMix,
    /// Word attention scores.
    pub attn: Linear,
    /// The MLP's hidden layer.
    pub hidden: Linear,
    /// The classifier.
    pub out: Linear,
    /// Dropout before each dense layer during training.
    pub dropout: f32,
}

impl SentenceHead {
    /// Fresh parameters `mix`, `attn`, `hidden`, `out` under `vb`'s prefix (the task's name), in
    /// that order. `width`: the backbone width; `states`: the states mixed; `read`: the width of the
    /// token states it also reads (0 = none); `classes`: the labels.
    pub fn new(
        vb: &mut ParamBuilder,
        c: &SentenceHeadConfig,
        width: usize,
        states: usize,
        read: usize,
        classes: usize,
    ) -> Result<Self> {
        Ok(Self {
            mix: LayerMix::new(&mut vb.pp("mix"), states)?,
            attn: Linear::new(&mut vb.pp("attn"), width, 1)?,
            hidden: Linear::new(&mut vb.pp("hidden"), 2 * width + read, c.mlp_width)?,
            out: Linear::new(&mut vb.pp("out"), c.mlp_width, classes)?,
            dropout: c.dropout,
        })
    }

    /// `words: [B, W, K, H]`, `mask: [B, W]`, `pooled: [B, H]`, and the token states it reads
    /// (`[B, W, 2 * gru]`, see [`TokenHead::states`]) -> logits `[B, classes]`. `rng`: training
    /// (dropout).
    pub fn forward(
        &self,
        words: &Tensor,
        mask: &Tensor,
        pooled: &Tensor,
        read: Option<&Tensor>,
        mut rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
        let x = self.mix.forward(words)?;
        let scores = self.attn.forward(&x.tanh()?)?.squeeze(2)?; // [B, W]
        let neg = ((mask.ones_like()? - mask)? * -1e4)?;
        let a = softmax_last(&(scores + neg)?)?; // [B, W]
        let a = a.unsqueeze(1)?;
        let ctx = a.matmul(&x)?.squeeze(1)?; // [B, H]
        let feats = match read {
            Some(y) => Tensor::cat(&[pooled, &ctx, &a.matmul(y)?.squeeze(1)?], 1)?,
            None => Tensor::cat(&[pooled, &ctx], 1)?,
        };
        let feats = dropout(&feats, self.dropout, rng.as_deref_mut())?;
        let h = self.hidden.forward(&feats)?.gelu_erf()?;
        let h = dropout(&h, self.dropout, rng)?;
        self.out.forward(&h)
    }
}

/// A token-level head (slots, NER, part of speech).
#[derive(Debug, Clone)]
pub struct TokenHead {
    /// Mix of the cached hidden states.
    pub mix: LayerMix,
    /// Down-projection of the mixed states to the GRU width (halves the cost of the recurrent layer).
    pub proj: Linear,
    /// Forward GRU direction.
    pub fwd: GruDir,
    /// Backward GRU direction.
    pub bwd: GruDir,
    /// The per-word classifier.
    pub out: Linear,
    /// Dropout on the GRU's input and output during training.
    pub dropout: f32,
}

impl TokenHead {
    /// Fresh parameters `mix`, `proj`, `gru.fwd`, `gru.bwd`, `out` under `vb`'s prefix, in that
    /// order.
    pub fn new(
        vb: &mut ParamBuilder,
        c: &TokenHeadConfig,
        width: usize,
        states: usize,
        classes: usize,
    ) -> Result<Self> {
        let g = c.gru_units;
        Ok(Self {
            mix: LayerMix::new(&mut vb.pp("mix"), states)?,
            proj: Linear::new(&mut vb.pp("proj"), width, g)?,
            fwd: GruDir::new(&mut vb.pp("gru").pp("fwd"), g, g)?,
            bwd: GruDir::new(&mut vb.pp("gru").pp("bwd"), g, g)?,
            out: Linear::new(&mut vb.pp("out"), 2 * g, classes)?,
            dropout: c.dropout,
        })
    }

    /// `words: [B, W, K, H]`, `mask: [B, W]` -> logits `[B, W, classes]`.
    pub fn forward(
        &self,
        words: &Tensor,
        mask: &Tensor,
        mut rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
        let h = self.states(words, mask, rng.as_deref_mut())?;
        self.logits(&h, rng)
    }

    /// The recurrent states `[B, W, 2 * gru]` (forward then backward; zero at padding).
    pub fn states(
        &self,
        words: &Tensor,
        mask: &Tensor,
        mut rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
        let x = self.mix.forward(words)?;
        let x = dropout(&x, self.dropout, rng.as_deref_mut())?;
        let x = self.proj.forward(&x)?;
        let (_, width) = mask.dims2()?;
        let mask_values: Vec<f32> = mask.flatten_all()?.to_vec1()?;
        // Sentence length = one past the last word with features (padding and truncation cut the end).
        let lengths: Vec<usize> = mask_values
            .chunks(width.max(1))
            .map(|row| row.iter().rposition(|&m| m > 0.0).map_or(0, |p| p + 1))
            .collect();
        let h = bigru(&self.fwd, &self.bwd, &x, lengths, rng.is_some())?;
        // The mask is a constant: multiplied without building a gradient for it.
        let units = h.dim(2)?;
        const_mul(&h, mask_values, units)
    }

    /// Logits `[B, W, classes]` from [`TokenHead::states`].
    pub fn logits(&self, states: &Tensor, rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
        self.out.forward(&dropout(states, self.dropout, rng)?)
    }
}

/// The head of one task.
#[derive(Debug, Clone)]
pub enum Head {
    /// A sentence-level head.
    Sentence(SentenceHead),
    /// A token-level head.
    Token(TokenHead),
}
