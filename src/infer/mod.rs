//! Answering text lines with a model: a run ([`RunPredictor`], feature `train`) or a merged model
//! (`crate::onnx::merged::MergedModel`), chosen by [`ModelPath`].
//!
//! - `model_path`: the run-or-merged choice, opening it as a [`crate::predict::Predict`] and
//!   reading its tasks;
//! - `predictor`: a run loaded for inference (feature `train`);
//! - `lines`: reading lines from a stream with a hard length limit ([`StreamLineReader`]);
//! - `latency`: the utterances and quantiles latency measurements use.

mod latency;
mod lines;
mod model_path;
#[cfg(feature = "train")]
mod predictor;

pub use latency::{percentile, BENCH_SENTENCES};
pub use lines::{StreamLine, StreamLineReader, MAX_LINE_BYTES};
pub use model_path::ModelPath;
#[cfg(feature = "train")]
pub use predictor::RunPredictor;
