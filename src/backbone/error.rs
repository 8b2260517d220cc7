//! Errors of the backbone.

use std::path::PathBuf;

use super::runtime::{RuntimeError, SessionError};

/// Errors of the backbone.
#[derive(Debug, thiserror::Error)]
pub enum BackboneError {
    /// ONNX Runtime's library could not be loaded.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// ONNX Runtime could not open the model.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The model is not a usable encoder.
    #[error("model {path}: {message}")]
    Model {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// No model was given and set-up's default is not there.
    #[error(
        "no backbone given and no default model found (looked for {looked}); run the set-up \
         (./setup.sh), pass --backbone DIR or set {env}"
    )]
    NoDefault {
        /// Where it looked.
        looked: String,
        /// The environment variable that names a default.
        env: &'static str,
    },
    /// ONNX Runtime failed running the model.
    #[error("ONNX Runtime failed running {path}: {message}")]
    Run {
        /// The model file.
        path: PathBuf,
        /// ONNX Runtime's message.
        message: String,
    },
}
