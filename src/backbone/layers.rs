//! The top transformer layers of a BERT-family encoder (BERT, RoBERTa/XLM-R, MPNet) in candle,
//! trainable (`--unfreeze-top N`).
//!
//! The lower layers stay frozen in ONNX Runtime and their output (hidden state `first`) is cached as
//! usual; [`TopLayers`] runs layers `first..L` on it in candle, with every weight a trainable
//! parameter of the model (group [`Group::Layer`]`(i)`, named as in the Hugging Face checkpoint,
//! e.g. `encoder.layer.4.attention.self.query.weight`, MPNet's `encoder.layer.4.attention.attn.q.weight`).
//! MPNet's relative position bias table ([`RELATIVE_BIAS`]), which every layer of the encoder
//! shares, is one more parameter of group `Layer(first)`: the unfrozen layers share a fine-tuned
//! copy while the frozen ones below keep the checkpoint's.
//!
//! Everything is differentiable: either candle primitives or custom ops with hand-written backward
//! passes, each tested against the primitive formulation. candle's fused `layer_norm`,
//! `softmax_last_dim`, `rms_norm` and rotary kernels have no backward pass (gradients would silently
//! stop at them), so layer norm is [`crate::nn::LayerNorm`], the attention core (scores,
//! masked softmax, context) [`crate::nn::kernels::attention::AttentionOp`] (with MPNet's position
//! bias, which the fused op does not take, candle primitives and [`crate::nn::softmax_last`]), and
//! GELU the exact (erf) [`crate::nn::kernels::gelu::GeluErfOp`]. See `tests/train/top_layers.rs`,
//! `tests/train/mpnet_layers.rs` and `tests/train/grad_tests.rs`.

use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;

use crate::hf::{relative_bucket_table, Architecture, BertConfig, RELATIVE_BIAS};
use crate::nn::kernels::attention::attention;
use crate::nn::kernels::gelu::gelu_erf;
use crate::nn::{
    dropout as seeded_dropout, reborrow, softmax_last, Group, LayerNorm, Linear, ParamBuilder,
};

/// Additive attention bias on padding keys: the same value the imported ONNX graph uses
/// (`(1 - mask) * f32::MIN`), so that padded keys get exactly zero probability.
pub const MASK_BIAS: f32 = f32::MIN;

/// Errors while loading the layers.
#[derive(Debug, thiserror::Error)]
pub enum LayersError {
    /// A weight is missing or has the wrong shape, or candle failed creating a tensor.
    #[error("{0}")]
    Candle(#[from] candle_core::Error),
    /// The checkpoint's architecture is not supported.
    #[error("{0}")]
    Architecture(String),
    /// The requested layers do not exist.
    #[error("cannot unfreeze from layer {first}: the model has {layers} layers (0..{layers})")]
    Range {
        /// The first requested layer.
        first: usize,
        /// The model's layer count.
        layers: usize,
    },
}

/// MPNet's relative position bias: the trainable table `[buckets, heads]` every layer shares.
#[derive(Debug, Clone)]
pub struct RelativeBias {
    /// [`RELATIVE_BIAS`], `[buckets, heads]`.
    pub table: Tensor,
    /// Buckets (rows of the table).
    pub buckets: usize,
}

impl RelativeBias {
    /// Loads [`RELATIVE_BIAS`] (`vb` at the root of the checkpoint's names).
    pub fn load(vb: &mut ParamBuilder, cfg: &BertConfig) -> Result<Self> {
        let buckets = cfg.relative_buckets();
        let table = vb.load(RELATIVE_BIAS, &[buckets, cfg.num_attention_heads])?;
        Ok(Self { table, buckets })
    }

    /// The bias `[1, heads, T, T]` of `T` tokens: `table[bucket(j - i)]` for query `i`, key `j`
    /// (differentiable in the table).
    pub fn bias(&self, t: usize) -> Result<Tensor> {
        let by_distance = relative_bucket_table(t.max(1), self.buckets);
        let idx: Vec<u32> = (0..t)
            .flat_map(|i| (0..t).map(move |j| (j, i)))
            .map(|(j, i)| by_distance[j + t - 1 - i] as u32)
            .collect();
        let idx = Tensor::from_vec(idx, t * t, self.table.device())?;
        let heads = self.table.dim(1)?;
        self.table
            .index_select(&idx, 0)?
            .reshape((t, t, heads))?
            .permute((2, 0, 1))?
            .unsqueeze(0)
    }
}

/// Multi-head self-attention with its output projection, residual and layer norm
/// (HF `attention.self` + `attention.output`; MPNet's `attention.attn` + `attention.LayerNorm`).
#[derive(Debug, Clone)]
pub struct BertAttention {
    /// `attention.self.query`.
    pub query: Linear,
    /// `attention.self.key`.
    pub key: Linear,
    /// `attention.self.value`.
    pub value: Linear,
    /// `attention.output.dense`.
    pub output: Linear,
    /// `attention.output.LayerNorm`.
    pub layer_norm: LayerNorm,
    /// Attention heads.
    pub heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// MPNet: the position bias shared with the other layers.
    pub position: Option<RelativeBias>,
}

impl BertAttention {
    /// Loads the attention tensors under `vb`'s prefix (a layer's `encoder.layer.{i}`), named as
    /// `cfg`'s architecture names them; `position`: MPNet's shared bias.
    pub fn load(
        vb: &mut ParamBuilder,
        cfg: &BertConfig,
        position: Option<RelativeBias>,
    ) -> Result<Self> {
        let h = cfg.hidden_size;
        let names = cfg
            .architecture()
            .map_err(candle_core::Error::Msg)?
            .attention_names();
        Ok(Self {
            query: Linear::load(&mut vb.pp(names.query), h, h)?,
            key: Linear::load(&mut vb.pp(names.key), h, h)?,
            value: Linear::load(&mut vb.pp(names.value), h, h)?,
            output: Linear::load(&mut vb.pp(names.output), h, h)?,
            layer_norm: LayerNorm::load(&mut vb.pp(names.layer_norm), h, cfg.layer_norm_eps)?,
            heads: cfg.num_attention_heads,
            head_dim: h / cfg.num_attention_heads,
            position,
        })
    }

    /// `x`: `[B, T, H]`; `bias`: the additive key mask `[B, 1, 1, T]` from
    /// [`TopLayers::attention_bias`]. The attention core is the fused
    /// [`crate::nn::kernels::attention::AttentionOp`] (values and gradients equal to
    /// [`crate::nn::kernels::attention::attention_reference`], `tests/train/grad_tests.rs`). Dropout (seeded) applies
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
        let ctx = match &self.position {
            None => attention(&q, &k, &v, bias, self.heads)?,
            Some(p) => biased_attention(&q, &k, &v, bias, &p.bias(x.dim(1)?)?, self.heads)?,
        };
        let mut out = self.output.forward(&ctx)?;
        if let Some((p, rng)) = dropout {
            out = seeded_dropout(&out, p, Some(rng))?;
        }
        self.layer_norm.forward(&(out + x)?)
    }
}

/// Self-attention with a position bias from candle primitives: `softmax(q k^T / sqrt(d) +
/// position + mask) v`, `position` `[1, heads, T, T]` (trainable), `mask` the additive key mask
/// `[B, 1, 1, T]` (a constant). The same order of additions as Hugging Face's MPNet.
pub fn biased_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    position: &Tensor,
    heads: usize,
) -> Result<Tensor> {
    let (b, t, h) = q.dims3()?;
    let d = h / heads;
    let split = |x: &Tensor| -> Result<Tensor> {
        x.reshape((b, t, heads, d))?.transpose(1, 2)?.contiguous()
    };
    let (q, k, v) = (split(q)?, split(k)?, split(v)?);
    let scores = (q.matmul(&k.t()?.contiguous()?)? / (d as f64).sqrt())?;
    let scores = scores
        .broadcast_add(position)?
        .broadcast_add(&mask.detach().reshape((b, 1, 1, t))?)?;
    softmax_last(&scores)?
        .matmul(&v)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b, t, h))
}

/// The feed-forward block: intermediate dense, exact (erf) GELU, output dense, residual, layer norm
/// (HF `intermediate` + `output`).
#[derive(Debug, Clone)]
pub struct BertFeedForward {
    /// `intermediate.dense`.
    pub intermediate: Linear,
    /// `output.dense`.
    pub output: Linear,
    /// `output.LayerNorm`.
    pub layer_norm: LayerNorm,
}

impl BertFeedForward {
    /// Loads `intermediate.*` and `output.*` under `vb`'s prefix.
    pub fn load(vb: &mut ParamBuilder, cfg: &BertConfig) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            intermediate: Linear::load(&mut vb.pp("intermediate").pp("dense"), h, i)?,
            output: Linear::load(&mut vb.pp("output").pp("dense"), i, h)?,
            layer_norm: LayerNorm::load(
                &mut vb.pp("output").pp("LayerNorm"),
                h,
                cfg.layer_norm_eps,
            )?,
        })
    }

    /// `x`: `[B, T, H]`. Dropout (seeded) applies to the output projection, before the residual.
    pub fn forward(&self, x: &Tensor, dropout: Option<(f32, &mut ChaCha8Rng)>) -> Result<Tensor> {
        let a = gelu_erf(&self.intermediate.forward(x)?)?;
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
    /// Loads `encoder.layer.{index}.*` as group [`Group::Layer`]`(index)`; `vb` is at the root of
    /// the checkpoint's names. `position`: MPNet's shared bias.
    pub fn load(
        vb: &mut ParamBuilder,
        cfg: &BertConfig,
        index: usize,
        position: Option<RelativeBias>,
    ) -> Result<Self> {
        let mut vb = vb.in_group(Group::Layer(index));
        let mut vb = vb.pp(format!("encoder.layer.{index}"));
        Ok(Self {
            index,
            attention: BertAttention::load(&mut vb, cfg, position)?,
            ffn: BertFeedForward::load(&mut vb, cfg)?,
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

/// The top transformer layers `first..L` of a BERT-family encoder, trainable.
#[derive(Debug, Clone)]
pub struct TopLayers {
    /// Index of the lowest loaded layer; its input is hidden state `first`.
    pub first: usize,
    /// Layers `first..L`, bottom to top.
    pub layers: Vec<BertLayer>,
    /// MPNet: the position bias table the layers share.
    pub position: Option<RelativeBias>,
}

impl TopLayers {
    /// Loads layers `first..cfg.num_hidden_layers` from the builder's checkpoint weights (with or
    /// without a `bert.` prefix), 16 tensors per layer, group [`Group::Layer`]`(i)`, named by their
    /// unprefixed HF names; for MPNet also [`RELATIVE_BIAS`] (group `Layer(first)`, loaded first).
    /// `first == L` loads nothing (the forward pass is then the identity).
    pub fn load(
        vb: &mut ParamBuilder,
        cfg: &BertConfig,
        first: usize,
    ) -> std::result::Result<Self, LayersError> {
        let l = cfg.num_hidden_layers;
        if first > l {
            return Err(LayersError::Range { first, layers: l });
        }
        let arch = cfg.architecture().map_err(LayersError::Architecture)?;
        let position = if arch == Architecture::MPNet && first < l {
            Some(RelativeBias::load(
                &mut vb.in_group(Group::Layer(first)),
                cfg,
            )?)
        } else {
            None
        };
        let layers = (first..l)
            .map(|i| BertLayer::load(vb, cfg, i, position.clone()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            first,
            layers,
            position,
        })
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
