//! What answers lines: the [`Predict`] trait, which a run's predictor and a merged model share,
//! and the steps they share (tokenize, skip lines without words, decode, build the predictions).

use crate::data::TaskInfo;
use crate::tokenize::{Tokenized, WordTokenizer};

use super::decode::Decoded;
use super::error::PredictError;
use super::prediction::{Prediction, Unanswered};

/// A model that predicts every task of its own for lines of text.
///
/// Implemented by the merged model (`crate::onnx::merged::MergedModel`) and, with the feature
/// `train`, by a run's predictor (`crate::infer::RunPredictor`); both answer the same line with the
/// same [`Prediction`] (up to floating-point rounding between ONNX Runtime and candle).
pub trait Predict {
    /// The model's tasks, in its output order.
    fn tasks(&self) -> &[TaskInfo];

    /// Predicts each line, in order: a line without words gets [`Unanswered::EmptyInput`]. Lines are
    /// run together in length-sorted batches, so one call with many lines is faster than many
    /// calls (a dynamic-int8 backbone quantizes activations per batch: the figures depend on the
    /// batching, by a rounding).
    fn predict_batch(&mut self, texts: &[&str]) -> Result<Vec<Prediction>, PredictError>;

    /// Predicts one line.
    fn predict(&mut self, text: &str) -> Result<Prediction, PredictError> {
        let mut out = self.predict_batch(&[text])?;
        match (out.pop(), out.is_empty()) {
            (Some(p), true) => Ok(p),
            _ => Err(PredictError::Output(
                "the predictor did not give one prediction for one line".into(),
            )),
        }
    }
}

/// Sentences per model run when lines are predicted together.
pub const BATCH: usize = 32;

/// The predictions of `texts` for a model with `tasks`: each line is tokenized with `tokenizer`,
/// the lines with words are decoded together by `decode` (in input order, one [`Decoded`] each),
/// the others get [`Unanswered::EmptyInput`].
pub fn predict_lines(
    texts: &[&str],
    tasks: &[TaskInfo],
    tokenizer: &WordTokenizer,
    decode: impl FnOnce(&[Tokenized]) -> Result<Vec<Decoded>, PredictError>,
) -> Result<Vec<Prediction>, PredictError> {
    let toks = texts
        .iter()
        .map(|t| tokenizer.encode_text(t, &|| "input".into()))
        .collect::<Result<Vec<_>, _>>()?;
    let live: Vec<usize> = (0..texts.len())
        .filter(|&i| !toks[i].word_tokens.is_empty())
        .collect();
    let batch: Vec<Tokenized> = live.iter().map(|&i| toks[i].clone()).collect();
    let decoded = decode(&batch)?;
    if decoded.len() != batch.len() {
        return Err(PredictError::Output(format!(
            "{} decoded outputs for {} lines",
            decoded.len(),
            batch.len()
        )));
    }
    let mut out: Vec<Prediction> = texts
        .iter()
        .map(|t| Prediction::unanswered(*t, Unanswered::EmptyInput))
        .collect();
    for (&i, d) in live.iter().zip(&decoded) {
        let kept: Vec<bool> = toks[i].word_tokens.iter().map(|(s, e)| e > s).collect();
        out[i] = Prediction::from_decoded(texts[i], tasks, d, &kept, toks[i].truncated);
    }
    Ok(out)
}
