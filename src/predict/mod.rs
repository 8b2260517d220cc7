//! Predictions: from a model's per-word probabilities to labels ([`decode`]), the typed answer to a
//! line ([`Prediction`], [`TaskPrediction`], [`SlotSpan`]) and its JSON ([`json`]), the [`Predict`]
//! trait a run's predictor and a merged model share, and its error ([`PredictError`]).
//!
//! Free of candle and of ONNX Runtime's sessions: the inference core a merged model needs.

pub mod decode;
pub mod error;
pub mod json;
pub mod prediction;
pub mod predictor;
#[cfg(test)]
mod tests;

pub use decode::{argmax, bio_viterbi, to_labels, token_ids, Decoded, TaskOutput};
pub use error::PredictError;
pub use json::{answer_key, check_answer_keys, PredictionJson, ANSWER_KEYS, SLOTS_KEY};
pub use prediction::{Prediction, SlotSpan, TaskPrediction, Unanswered};
pub use predictor::{predict_lines, Predict, BATCH};
