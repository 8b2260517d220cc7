//! Inference: from text lines to JSON answers, with a run (backbone + task model) or, in
//! `crate::onnx::merged`, with a merged ONNX model.
//!
//! - [`predictor`]: a run loaded for inference;
//! - [`answer`]: the JSON answer of one line (shared with merged models and `serve`);
//! - [`lines`]: reading lines with a hard length limit;
//! - [`latency`]: the utterances and quantiles latency measurements use.

pub mod answer;
pub mod error;
pub mod latency;
pub mod lines;
pub mod predictor;

pub use answer::{answer, SlotSpan};
pub use error::InferError;
pub use latency::{percentile, BENCH_SENTENCES};
pub use lines::{Line, LineReader, MAX_LINE_BYTES};
pub use predictor::{decode_examples, RunPredictor, BATCH};
