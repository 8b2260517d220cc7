//! Errors of the export.

use crate::graph::OnnxError;
use crate::run::RunError;

/// Errors of the export; each names the run, file or figure concerned.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The run could not be read or its backbone is not the one it was trained on.
    #[error(transparent)]
    Run(#[from] RunError),
    /// Reading, building or writing a graph failed (its format).
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    /// Quantizing the fine-tuned layers failed.
    #[error(transparent)]
    Quantize(#[from] crate::onnx::quantize::QuantizeError),
    /// The backbone of the self-check's training pipeline could not be loaded or run.
    #[error(transparent)]
    Backbone(#[from] crate::backbone::BackboneError),
    /// ONNX Runtime could not open the candidate merged model.
    #[error(transparent)]
    Session(#[from] crate::backbone::runtime::SessionError),
    /// The tokenizer could not be loaded or a check sentence not encoded.
    #[error(transparent)]
    Tokenize(#[from] crate::tokenize::TokenizeError),
    /// The fine-tuned layers' weights could not be read.
    #[error(transparent)]
    Weights(#[from] crate::hf::HfError),
    /// The request does not fit the run or the target.
    #[error("{0}")]
    Invalid(String),
    /// The merged model disagrees with the training pipeline; nothing was written.
    #[error("self-check failed: {0}; nothing written")]
    Check(String),
}
