//! The one error type of ONNX graph handling, import, quantization and export.

use std::path::{Path, PathBuf};

/// Errors of the ONNX module; each names the file (when there is one) and the problem.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bytes are not a valid ONNX protobuf.
    #[error("{path}: not a valid ONNX model: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The protobuf error.
        source: prost::DecodeError,
    },
    /// The model has no graph or a graph that this module cannot handle.
    #[error("{path}: {message}")]
    Graph {
        /// The model file, or a description of the in-memory model.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A source file (config.json, safetensors, tokenizer.json) is missing or malformed.
    #[error("{path}: {message}")]
    Source {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// ONNX Runtime failed to load or run a model.
    #[error("ONNX Runtime, {path}: {message}")]
    Runtime {
        /// The model file (or `<memory>`).
        path: String,
        /// The runtime's message.
        message: String,
    },
    /// The converted model disagrees with the reference implementation.
    #[error("{path}: verification failed: {message}")]
    Verify {
        /// The model file.
        path: PathBuf,
        /// The figures.
        message: String,
    },
    /// Invalid options.
    #[error("{0}")]
    Invalid(String),
}

impl OnnxError {
    /// A graph error for an in-memory model.
    pub fn graph(message: impl Into<String>) -> Self {
        OnnxError::Graph {
            path: "<model>".into(),
            message: message.into(),
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        OnnxError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
