//! The top transformer layers of a BERT-family encoder in candle, trainable (`--unfreeze-top N`).
//!
//! The lower layers stay frozen in ONNX Runtime and their output (hidden state `first`) is cached as
//! usual; [`TopLayers`] runs layers `first..L` on it in candle, with every weight a [`Var`] in the
//! model's [`ParamSet`] (group [`Group::Layer`]`(i)`, named as in the Hugging Face checkpoint, e.g.
//! `encoder.layer.4.attention.self.query.weight`).
//!
//! Everything is differentiable: either candle primitives or custom ops with hand-written backward
//! passes, each tested against the primitive formulation. candle's fused `layer_norm`,
//! `softmax_last_dim`, `rms_norm` and rotary kernels have no backward pass (gradients would silently
//! stop at them), so layer norm is [`crate::heads::ops::LayerNormOp`], the attention core (scores,
//! masked softmax, context) [`super::attention::AttentionOp`], and GELU the exact (erf)
//! [`crate::heads::ops::GeluErfOp`]. See `tests/top_layers.rs` and `tests/grad_tests.rs`.

use candle_core::{Device, Result, Tensor, Var, D};
use rand_chacha::ChaCha8Rng;

use crate::heads::{dropout as seeded_dropout, Group, Param, ParamSet};
use crate::onnx::import::{BertConfig, Weights};

/// Additive attention bias on padding keys: the same value the imported ONNX graph uses
/// (`(1 - mask) * f32::MIN`), so that padded keys get exactly zero probability.
pub const MASK_BIAS: f32 = f32::MIN;

/// Errors while loading the layers.
#[derive(Debug, thiserror::Error)]
pub enum LayersError {
    /// A weight is missing or has the wrong shape.
    #[error(transparent)]
    Weights(#[from] crate::onnx::OnnxError),
    /// candle failed creating a tensor.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// The requested layers do not exist.
    #[error("cannot unfreeze from layer {first}: the model has {layers} layers (0..{layers})")]
    Range {
        /// The first requested layer.
        first: usize,
        /// The model's layer count.
        layers: usize,
    },
}

/// Creates a trainable parameter from checkpoint weights (looked up by its unprefixed HF name).
fn load_param(
    ps: &mut ParamSet,
    weights: &Weights,
    name: &str,
    shape: &[usize],
    group: Group,
    dev: &Device,
) -> std::result::Result<Tensor, LayersError> {
    let data = weights.get(name, shape)?;
    let var = Var::from_tensor(&Tensor::from_slice(data, shape, dev)?)?;
    let t = var.as_tensor().clone();
    ps.params.push(Param {
        name: name.to_string(),
        group,
        var,
    });
    Ok(t)
}

/// A dense layer `y = x W^T + b`, `W: [out, in]` (PyTorch layout).
#[derive(Debug, Clone)]
pub struct Dense {
    /// `[out, in]`.
    pub weight: Tensor,
    /// `[out]`.
    pub bias: Tensor,
}

impl Dense {
    /// Loads `{name}.weight` and `{name}.bias`.
    pub fn load(
        ps: &mut ParamSet,
        w: &Weights,
        name: &str,
        inp: usize,
        out: usize,
        group: Group,
        dev: &Device,
    ) -> std::result::Result<Self, LayersError> {
        let weight = load_param(ps, w, &format!("{name}.weight"), &[out, inp], group, dev)?;
        let bias = load_param(ps, w, &format!("{name}.bias"), &[out], group, dev)?;
        Ok(Self { weight, bias })
    }

    /// Applies the layer over the last dimension of `x` (any rank >= 2), as the fused
    /// [`crate::heads::ops::LinearOp`] (candle's `matmul(w.t()) + broadcast_add(b)` reduced the bias
    /// gradient and transposed the weight gradient through slow strided paths).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut dims = x.dims().to_vec();
        let inp = dims.pop().expect("rank >= 1");
        let y = x.reshape(((), inp))?.contiguous()?.apply_op3(
            &self.weight,
            &self.bias,
            crate::heads::ops::LinearOp,
        )?;
        dims.push(self.weight.dim(0)?);
        y.reshape(dims)
    }
}

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
    /// Loads `{name}.weight` and `{name}.bias` (or the older `gamma`/`beta`).
    pub fn load(
        ps: &mut ParamSet,
        w: &Weights,
        name: &str,
        hidden: usize,
        eps: f64,
        group: Group,
        dev: &Device,
    ) -> std::result::Result<Self, LayersError> {
        let weight = load_param(ps, w, &format!("{name}.weight"), &[hidden], group, dev)?;
        let bias = load_param(ps, w, &format!("{name}.bias"), &[hidden], group, dev)?;
        Ok(Self { weight, bias, eps })
    }

    /// `(x - mean) / sqrt(var + eps) * weight + bias` over the last dimension (biased variance, as
    /// PyTorch and ONNX compute it): the fused [`crate::heads::ops::LayerNormOp`], equal to
    /// [`LayerNorm::forward_reference`] in values and gradients (`tests/unfreeze.rs`).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let h = *dims.last().expect("rank >= 1");
        x.reshape(((), h))?
            .contiguous()?
            .apply_op3(
                &self.weight,
                &self.bias,
                crate::heads::ops::LayerNormOp {
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

/// Multi-head self-attention with its output projection, residual and layer norm
/// (HF `attention.self` + `attention.output`).
#[derive(Debug, Clone)]
pub struct BertAttention {
    /// `attention.self.query`.
    pub query: Dense,
    /// `attention.self.key`.
    pub key: Dense,
    /// `attention.self.value`.
    pub value: Dense,
    /// `attention.output.dense`.
    pub output: Dense,
    /// `attention.output.LayerNorm`.
    pub layer_norm: LayerNorm,
    /// Attention heads.
    pub heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

impl BertAttention {
    /// Loads `{prefix}.attention.*`.
    pub fn load(
        ps: &mut ParamSet,
        w: &Weights,
        cfg: &BertConfig,
        prefix: &str,
        group: Group,
        dev: &Device,
    ) -> std::result::Result<Self, LayersError> {
        let h = cfg.hidden_size;
        let p = |n: &str| format!("{prefix}.attention.{n}");
        Ok(Self {
            query: Dense::load(ps, w, &p("self.query"), h, h, group, dev)?,
            key: Dense::load(ps, w, &p("self.key"), h, h, group, dev)?,
            value: Dense::load(ps, w, &p("self.value"), h, h, group, dev)?,
            output: Dense::load(ps, w, &p("output.dense"), h, h, group, dev)?,
            layer_norm: LayerNorm::load(
                ps,
                w,
                &p("output.LayerNorm"),
                h,
                cfg.layer_norm_eps,
                group,
                dev,
            )?,
            heads: cfg.num_attention_heads,
            head_dim: h / cfg.num_attention_heads,
        })
    }

    /// `x`: `[B, T, H]`; `bias`: the additive key mask `[B, 1, 1, T]` from
    /// [`TopLayers::attention_bias`]. The attention core is the fused
    /// [`super::attention::AttentionOp`] (values and gradients equal to
    /// [`super::attention::attention_reference`], `tests/grad_tests.rs`). Dropout (seeded) applies
    /// to the output projection, before the residual.
    pub fn forward(
        &self,
        x: &Tensor,
        bias: &Tensor,
        dropout: Option<(f32, &mut ChaCha8Rng)>,
    ) -> Result<Tensor> {
        let q = self.query.forward(x)?;
        let k = self.key.forward(x)?;
        let v = self.value.forward(x)?;
        let ctx = super::attention::attention(&q, &k, &v, bias, self.heads)?;
        let mut out = self.output.forward(&ctx)?;
        if let Some((p, rng)) = dropout {
            out = seeded_dropout(&out, p, Some(rng))?;
        }
        self.layer_norm.forward(&(out + x)?)
    }
}

/// The feed-forward block: intermediate dense, exact (erf) GELU, output dense, residual, layer norm
/// (HF `intermediate` + `output`).
#[derive(Debug, Clone)]
pub struct BertFeedForward {
    /// `intermediate.dense`.
    pub intermediate: Dense,
    /// `output.dense`.
    pub output: Dense,
    /// `output.LayerNorm`.
    pub layer_norm: LayerNorm,
}

impl BertFeedForward {
    /// Loads `{prefix}.intermediate.*` and `{prefix}.output.*`.
    pub fn load(
        ps: &mut ParamSet,
        w: &Weights,
        cfg: &BertConfig,
        prefix: &str,
        group: Group,
        dev: &Device,
    ) -> std::result::Result<Self, LayersError> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            intermediate: Dense::load(
                ps,
                w,
                &format!("{prefix}.intermediate.dense"),
                h,
                i,
                group,
                dev,
            )?,
            output: Dense::load(ps, w, &format!("{prefix}.output.dense"), i, h, group, dev)?,
            layer_norm: LayerNorm::load(
                ps,
                w,
                &format!("{prefix}.output.LayerNorm"),
                h,
                cfg.layer_norm_eps,
                group,
                dev,
            )?,
        })
    }

    /// `x`: `[B, T, H]`. Dropout (seeded) applies to the output projection, before the residual.
    pub fn forward(&self, x: &Tensor, dropout: Option<(f32, &mut ChaCha8Rng)>) -> Result<Tensor> {
        let a = crate::heads::ops::gelu_erf(&self.intermediate.forward(x)?)?;
        let mut out = self.output.forward(&a)?;
        if let Some((p, rng)) = dropout {
            out = seeded_dropout(&out, p, Some(rng))?;
        }
        self.layer_norm.forward(&(out + x)?)
    }
}

/// One post-LN BERT transformer layer (`encoder.layer.{index}`).
#[derive(Debug, Clone)]
pub struct BertLayer {
    /// The layer's index in the encoder (0-based).
    pub index: usize,
    /// Self-attention block.
    pub attention: BertAttention,
    /// Feed-forward block.
    pub ffn: BertFeedForward,
}

impl BertLayer {
    /// Loads `encoder.layer.{index}.*` into `ps` as group [`Group::Layer`]`(index)`.
    pub fn load(
        ps: &mut ParamSet,
        w: &Weights,
        cfg: &BertConfig,
        index: usize,
        dev: &Device,
    ) -> std::result::Result<Self, LayersError> {
        let prefix = format!("encoder.layer.{index}");
        let group = Group::Layer(index);
        Ok(Self {
            index,
            attention: BertAttention::load(ps, w, cfg, &prefix, group, dev)?,
            ffn: BertFeedForward::load(ps, w, cfg, &prefix, group, dev)?,
        })
    }

    /// `x`: hidden state `index` `[B, T, H]`; `bias`: from [`TopLayers::attention_bias`]. Returns
    /// hidden state `index + 1`.
    pub fn forward(
        &self,
        x: &Tensor,
        bias: &Tensor,
        mut dropout: Option<(f32, &mut ChaCha8Rng)>,
    ) -> Result<Tensor> {
        let a = self.attention.forward(x, bias, reborrow(&mut dropout))?;
        self.ffn.forward(&a, dropout)
    }
}

/// Lends out an optional `(p, rng)` pair for one call, keeping it for the next.
fn reborrow<'a>(d: &'a mut Option<(f32, &mut ChaCha8Rng)>) -> Option<(f32, &'a mut ChaCha8Rng)> {
    d.as_mut().map(|(p, rng)| (*p, &mut **rng))
}

/// The top transformer layers `first..L` of a BERT-family encoder, trainable.
#[derive(Debug, Clone)]
pub struct TopLayers {
    /// Index of the lowest loaded layer; its input is hidden state `first`.
    pub first: usize,
    /// Layers `first..L`, bottom to top.
    pub layers: Vec<BertLayer>,
}

impl TopLayers {
    /// Loads layers `first..cfg.num_hidden_layers` from checkpoint weights (with or without a `bert.`
    /// prefix), adding their 16 tensors per layer to `ps` as [`Var`]s in group
    /// [`Group::Layer`]`(i)`, named by their unprefixed HF names. `first == L` loads nothing (the
    /// forward pass is then the identity).
    pub fn load(
        ps: &mut ParamSet,
        weights: &Weights,
        cfg: &BertConfig,
        first: usize,
        dev: &Device,
    ) -> std::result::Result<Self, LayersError> {
        let l = cfg.num_hidden_layers;
        if first > l {
            return Err(LayersError::Range { first, layers: l });
        }
        let layers = (first..l)
            .map(|i| BertLayer::load(ps, weights, cfg, i, dev))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Self { first, layers })
    }

    /// The additive attention bias `[B, 1, 1, T]` of a `[B, T]` mask (1 = token, 0 = padding):
    /// 0 on tokens, [`MASK_BIAS`] on padding.
    pub fn attention_bias(mask: &Tensor) -> Result<Tensor> {
        let (b, t) = mask.dims2()?;
        let m = f64::from(MASK_BIAS);
        mask.detach().affine(-m, m)?.reshape((b, 1, 1, t))
    }

    /// Runs the layers on hidden state `first` (`hidden`: `[B, T, H]` f32) with `mask` `[B, T]` f32
    /// (1 = token, 0 = padding); returns the last hidden state `[B, T, H]`. With `dropout`
    /// `Some((p, rng))`, seeded dropout applies to each attention and FFN output (training).
    pub fn forward(
        &self,
        hidden: &Tensor,
        mask: &Tensor,
        mut dropout: Option<(f32, &mut ChaCha8Rng)>,
    ) -> Result<Tensor> {
        let bias = Self::attention_bias(mask)?;
        let mut x = hidden.clone();
        for layer in &self.layers {
            x = layer.forward(&x, &bias, reborrow(&mut dropout))?;
        }
        Ok(x)
    }
}

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
