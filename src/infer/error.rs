//! Errors of inference.

use crate::backbone::BackboneError;
use crate::run::RunError;
use crate::tokenize::TokenizeError;

/// Errors of inference with a run or a merged model.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// The run could not be read.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The backbone could not be loaded or run.
    #[error(transparent)]
    Backbone(#[from] BackboneError),
    /// The tokenizer failed.
    #[error(transparent)]
    Tokenize(#[from] TokenizeError),
    /// A tensor computation failed.
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// Reading input failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}
