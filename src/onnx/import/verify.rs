//! The importer's self-check: the ONNX graph against an independent candle implementation of the
//! same architecture on the same weights ([`super::reference`]).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::reference::candle_reference;
use crate::backbone::raw::{self as runtime, EncoderBatch};
use crate::backbone::SessionOptions;
use crate::graph::OnnxError;
use crate::hf::{Architecture, BertConfig};

/// The candle model an architecture's import is verified against (named in reports).
pub fn reference_name(c: &BertConfig) -> &'static str {
    match c.architecture() {
        Ok(Architecture::Bert) | Err(_) => "candle-transformers BertModel",
        Ok(Architecture::Roberta) => "candle-transformers XLMRobertaModel",
        Ok(Architecture::MPNet) => "edgetune's candle MPNet",
    }
}

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

/// Compares an encoder ONNX file with the candle reference of `c`'s architecture on `sentences`
/// ([`reference_name`]).
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
