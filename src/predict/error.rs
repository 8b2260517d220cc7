//! The error of predicting: opening a model, or answering with it.

use crate::backbone::BackboneError;
use crate::graph::OnnxError;
use crate::tokenize::TokenizeError;

/// Why a model could not be opened, or could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PredictError {
    /// A merged model: its file, metadata or tokenizer is missing or invalid, or ONNX Runtime
    /// failed to open or run it.
    #[error(transparent)]
    Model(#[from] OnnxError),
    /// The backbone of a run could not be loaded or run.
    #[error(transparent)]
    Backbone(#[from] BackboneError),
    /// A line could not be tokenized.
    #[error(transparent)]
    Tokenize(#[from] TokenizeError),
    /// A run: its folder is missing or invalid, or its task model failed (feature `train`; the
    /// source is a `crate::run::RunError` or a tensor error).
    #[error(transparent)]
    Run(Box<dyn std::error::Error + Send + Sync>),
    /// The model's task names collide with the keys of its answers (see
    /// [`check_answer_keys`](super::check_answer_keys)).
    #[error("{0}")]
    TaskNames(String),
    /// A predictor gave an unusable output (e.g. not one prediction per line).
    #[error("{0}")]
    Output(String),
    /// This build cannot do it (e.g. a run without the feature `train`).
    #[error("{0}")]
    Unsupported(String),
}
