//! The importer's self-check: the ONNX graph against candle-transformers' `BertModel` on the same
//! weights.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::backbone::raw::{self as runtime, EncoderBatch};
use crate::backbone::SessionOptions;
use crate::graph::OnnxError;
use crate::hf::BertConfig;

/// Tolerance of the self-verification (max |diff| of last_hidden_state and of pooled embeddings).
pub const VERIFY_TOLERANCE: f32 = 1e-4;

/// Sentences used for self-verification (varied lengths, so padding is exercised).
pub const VERIFY_SENTENCES: &[&str] = &[
    "Book a table for two at an Italian restaurant tonight.",
    "play some jazz",
    "What will the weather be like in Paris on Saturday afternoon, and should I bring an umbrella?",
    "Add this song to my workout playlist.",
    "rate this novel four out of six stars",
    "Hello!",
];

/// Figures of the self-verification.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// Sentences compared.
    pub sentences: usize,
    /// Max |ORT - candle| over last_hidden_state (real tokens and padding).
    pub max_abs_diff_hidden: f32,
    /// Max |ORT - candle| over mean-pooled embeddings.
    pub max_abs_diff_pooled: f32,
}

/// Runs candle-transformers' `BertModel` on a batch; returns last_hidden_state `[batch*seq*hidden]`.
pub fn candle_reference(
    c: &BertConfig,
    safetensors_path: &Path,
    batch: &EncoderBatch,
) -> Result<Vec<f32>, OnnxError> {
    use candle_core::{DType, Device, Tensor};
    use candle_transformers::models::bert::{BertModel, Config, HiddenAct, PositionEmbeddingType};
    let err = |e: candle_core::Error| OnnxError::Source {
        path: safetensors_path.to_path_buf(),
        message: format!("candle: {e}"),
    };
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
        pad_token_id: 0,
        position_embedding_type: PositionEmbeddingType::Absolute,
        use_cache: false,
        classifier_dropout: None,
        model_type: c.model_type.clone(),
    };
    let dev = Device::Cpu;
    let bytes = std::fs::read(safetensors_path).map_err(|e| OnnxError::io(safetensors_path, e))?;
    let vb =
        candle_nn::VarBuilder::from_buffered_safetensors(bytes, DType::F32, &dev).map_err(err)?;
    let model = BertModel::load(vb, &cfg).map_err(err)?;
    let shape = (batch.batch, batch.seq);
    let ids = Tensor::from_vec(batch.input_ids.clone(), shape, &dev).map_err(err)?;
    let tt = Tensor::from_vec(batch.token_type_ids.clone(), shape, &dev).map_err(err)?;
    let mask = Tensor::from_vec(batch.attention_mask.clone(), shape, &dev).map_err(err)?;
    let out = model.forward(&ids, &tt, Some(&mask)).map_err(err)?;
    out.flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(err)
}

/// Compares an encoder ONNX file with candle's `BertModel` on `sentences`.
pub fn verify_against_candle(
    onnx_path: &Path,
    c: &BertConfig,
    safetensors_path: &Path,
    tokenizer: &tokenizers::Tokenizer,
    sentences: &[&str],
    threads: Option<usize>,
) -> Result<Verification, OnnxError> {
    let max_len = c.max_position_embeddings.min(128);
    let batch = EncoderBatch::tokenize(tokenizer, sentences, max_len)?;
    if let Some(&bad) = batch
        .input_ids
        .iter()
        .find(|&&i| i < 0 || i as usize >= c.vocab_size)
    {
        return Err(OnnxError::Source {
            path: onnx_path.to_path_buf(),
            message: format!(
                "tokenizer produced id {bad} outside the vocabulary ({})",
                c.vocab_size
            ),
        });
    }
    let opts = SessionOptions::tooling(threads);
    let mut s = runtime::open_file(onnx_path, &opts)?;
    let o = runtime::run_encoder(&mut s, &batch, &["last_hidden_state"])?;
    let reference = candle_reference(c, safetensors_path, &batch)?;
    let h = c.hidden_size;
    let d_hidden = runtime::max_abs_diff(&o[0].data, &reference);
    let pa = runtime::mean_pool(&o[0].data, &batch.attention_mask, batch.batch, batch.seq, h);
    let pb = runtime::mean_pool(&reference, &batch.attention_mask, batch.batch, batch.seq, h);
    let d_pooled = pa
        .iter()
        .zip(&pb)
        .map(|(a, b)| runtime::max_abs_diff(a, b))
        .fold(0f32, f32::max);
    Ok(Verification {
        sentences: sentences.len(),
        max_abs_diff_hidden: d_hidden,
        max_abs_diff_pooled: d_pooled,
    })
}
