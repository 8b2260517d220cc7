//! Independent candle implementations the importer checks its ONNX graphs against: BERT and
//! XLM-R/RoBERTa are candle-transformers' own models; MPNet (which candle-transformers lacks) is
//! written here from Hugging Face's `modeling_mpnet.py` with candle's forward-only kernels, sharing
//! nothing with the graph builder but the bucket function ([`crate::hf::relative_position_bucket`],
//! itself checked against a NumPy transcription of Hugging Face's in `tests/mpnet_reference.py`).

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::VarBuilder;

use crate::backbone::raw::EncoderBatch;
use crate::graph::OnnxError;
use crate::hf::{relative_position_bucket, Architecture, BertConfig, MPNET_MAX_DISTANCE};

/// Runs the reference model of `c`'s architecture on a batch; returns last_hidden_state
/// `[batch*seq*hidden]`. Only the first `c.num_hidden_layers` layers of the checkpoint are read.
pub fn candle_reference(
    c: &BertConfig,
    safetensors_path: &Path,
    batch: &EncoderBatch,
) -> Result<Vec<f32>, OnnxError> {
    let err = |e: candle_core::Error| OnnxError::Source {
        path: safetensors_path.to_path_buf(),
        message: format!("candle: {e}"),
    };
    let dev = Device::Cpu;
    let bytes = std::fs::read(safetensors_path).map_err(|e| OnnxError::io(safetensors_path, e))?;
    let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &dev).map_err(err)?;
    let vb = match ["bert", "roberta", "mpnet", "model"]
        .iter()
        .find(|p| vb.contains_tensor(&format!("{p}.embeddings.word_embeddings.weight")))
    {
        Some(p) => vb.pp(*p),
        None => vb,
    };
    let shape = (batch.batch, batch.seq);
    let ids = Tensor::from_vec(batch.input_ids.clone(), shape, &dev).map_err(err)?;
    let tt = Tensor::from_vec(batch.token_type_ids.clone(), shape, &dev).map_err(err)?;
    let mask = Tensor::from_vec(batch.attention_mask.clone(), shape, &dev).map_err(err)?;
    let arch = c.architecture().map_err(OnnxError::Invalid)?;
    let out = match arch {
        Architecture::Bert => bert(c, vb, &ids, &tt, &mask),
        Architecture::Roberta => xlm_roberta(c, vb, &ids, &tt, &mask),
        Architecture::MPNet => mpnet_hidden_states(c, vb, &ids, &mask).and_then(|mut s| {
            s.pop()
                .ok_or_else(|| candle_core::Error::Msg("no layers".into()))
        }),
    }
    .map_err(err)?;
    out.flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(err)
}

fn bert(
    c: &BertConfig,
    vb: VarBuilder,
    ids: &Tensor,
    tt: &Tensor,
    mask: &Tensor,
) -> candle_core::Result<Tensor> {
    use candle_transformers::models::bert::{BertModel, Config, HiddenAct, PositionEmbeddingType};
    let cfg = Config {
        vocab_size: c.vocab_size,
        hidden_size: c.hidden_size,
        num_hidden_layers: c.num_hidden_layers,
        num_attention_heads: c.num_attention_heads,
        intermediate_size: c.intermediate_size,
        hidden_act: HiddenAct::Gelu,
        hidden_dropout_prob: 0.0,
        max_position_embeddings: c.max_position_embeddings,
        type_vocab_size: c.type_vocab_size,
        initializer_range: 0.02,
        layer_norm_eps: c.layer_norm_eps,
        pad_token_id: c.pad_id(),
        position_embedding_type: PositionEmbeddingType::Absolute,
        use_cache: false,
        classifier_dropout: None,
        model_type: None,
    };
    BertModel::load(vb, &cfg)?.forward(ids, tt, Some(mask))
}

fn xlm_roberta(
    c: &BertConfig,
    vb: VarBuilder,
    ids: &Tensor,
    tt: &Tensor,
    mask: &Tensor,
) -> candle_core::Result<Tensor> {
    use candle_transformers::models::xlm_roberta::{Config, XLMRobertaModel};
    let cfg = Config {
        hidden_size: c.hidden_size,
        layer_norm_eps: c.layer_norm_eps,
        attention_probs_dropout_prob: 0.0,
        hidden_dropout_prob: 0.0,
        num_attention_heads: c.num_attention_heads,
        position_embedding_type: "absolute".into(),
        intermediate_size: c.intermediate_size,
        hidden_act: candle_nn::Activation::Gelu,
        num_hidden_layers: c.num_hidden_layers,
        vocab_size: c.vocab_size,
        max_position_embeddings: c.max_position_embeddings,
        type_vocab_size: c.type_vocab_size,
        pad_token_id: c.pad_id() as u32,
    };
    XLMRobertaModel::new(&cfg, vb)?.forward(ids, mask, tt, None, None, None)
}

/// MPNet's hidden states `0..=L` (`[B, T, H]` each): embeddings with RoBERTa position ids, then
/// post-LN layers whose attention scores get the relative position bias and the additive mask
/// `(1 - mask) * f32::MIN`.
pub fn mpnet_hidden_states(
    c: &BertConfig,
    vb: VarBuilder,
    ids: &Tensor,
    mask: &Tensor,
) -> candle_core::Result<Vec<Tensor>> {
    let (h, eps) = (c.hidden_size, c.layer_norm_eps);
    let (b, t) = ids.dims2()?;
    let pad = c.pad_id() as f64;
    let e = vb.pp("embeddings");
    let word = candle_nn::embedding(c.vocab_size, h, e.pp("word_embeddings"))?;
    let pos = candle_nn::embedding(c.max_position_embeddings, h, e.pp("position_embeddings"))?;
    let real = ids.ne(c.pad_id() as i64)?.to_dtype(DType::F32)?;
    let pos_ids = (real.cumsum(1)? * &real)?
        .affine(1.0, pad)?
        .to_dtype(DType::U32)?;
    let x = (word.forward(ids)? + pos.forward(&pos_ids)?)?;
    let mut x = candle_nn::layer_norm(h, eps, e.pp("LayerNorm"))?.forward(&x)?;
    let heads = c.num_attention_heads;
    let table = vb.get(
        (c.relative_buckets(), heads),
        "encoder.relative_attention_bias.weight",
    )?;
    let buckets: Vec<u32> = (0..t as i64)
        .flat_map(|i| (0..t as i64).map(move |j| (i, j)))
        .map(|(i, j)| {
            relative_position_bucket(j - i, c.relative_buckets(), MPNET_MAX_DISTANCE) as u32
        })
        .collect();
    let buckets = Tensor::from_vec(buckets, t * t, ids.device())?;
    let position = table
        .index_select(&buckets, 0)?
        .reshape((t, t, heads))?
        .permute((2, 0, 1))?
        .unsqueeze(0)?;
    let mask_add =
        ((1.0 - mask.to_dtype(DType::F32)?)? * f64::from(f32::MIN))?.reshape((b, 1, 1, t))?;
    let bias = position.broadcast_add(&mask_add)?;
    let mut states = vec![x.clone()];
    for i in 0..c.num_hidden_layers {
        x = mpnet_layer(c, vb.pp(format!("encoder.layer.{i}")), &x, &bias)?;
        states.push(x.clone());
    }
    Ok(states)
}

/// One MPNet layer: `attention.attn.{q,k,v,o}`, `attention.LayerNorm`, `intermediate.dense`,
/// `output.dense`, `output.LayerNorm`.
fn mpnet_layer(
    c: &BertConfig,
    vb: VarBuilder,
    x: &Tensor,
    bias: &Tensor,
) -> candle_core::Result<Tensor> {
    let (h, eps, heads) = (c.hidden_size, c.layer_norm_eps, c.num_attention_heads);
    let (b, t, _) = x.dims3()?;
    let d = h / heads;
    let a = vb.pp("attention");
    let lin = |vb: VarBuilder, i: usize, o: usize| candle_nn::linear(i, o, vb);
    let split = |y: Tensor| -> candle_core::Result<Tensor> {
        y.reshape((b, t, heads, d))?.transpose(1, 2)?.contiguous()
    };
    let q = split(lin(a.pp("attn.q"), h, h)?.forward(x)?)?;
    let k = split(lin(a.pp("attn.k"), h, h)?.forward(x)?)?;
    let v = split(lin(a.pp("attn.v"), h, h)?.forward(x)?)?;
    let scores = (q.matmul(&k.t()?.contiguous()?)? / (d as f64).sqrt())?;
    let probs = candle_nn::ops::softmax(&scores.broadcast_add(bias)?, D::Minus1)?;
    let ctx = probs
        .matmul(&v)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b, t, h))?;
    let o = lin(a.pp("attn.o"), h, h)?.forward(&ctx)?;
    let x = candle_nn::layer_norm(h, eps, a.pp("LayerNorm"))?.forward(&(o + x)?)?;
    let f = lin(vb.pp("intermediate.dense"), h, c.intermediate_size)?
        .forward(&x)?
        .gelu_erf()?;
    let o = lin(vb.pp("output.dense"), c.intermediate_size, h)?.forward(&f)?;
    candle_nn::layer_norm(h, eps, vb.pp("output.LayerNorm"))?.forward(&(o + x)?)
}
