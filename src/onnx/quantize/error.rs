//! Errors of quantization: the graph (its format), ONNX Runtime (calibration, fidelity and fusion
//! runs), the options, the per-layer chart.

use crate::backbone::raw::RawError;
use crate::graph::OnnxError;

/// Errors of quantizing a model or measuring it; each names the file or option concerned.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    /// Reading, writing or rewriting the ONNX graph failed (its format).
    #[error(transparent)]
    Graph(#[from] OnnxError),
    /// ONNX Runtime or the tokenizer failed on a calibration or measurement run.
    #[error(transparent)]
    Runtime(#[from] RawError),
    /// An option out of its range, a file that may not be overwritten, or a model the measurement
    /// does not fit.
    #[error("{0}")]
    Invalid(String),
    /// The per-layer fidelity chart could not be drawn.
    #[error("per-layer fidelity chart: {0}")]
    Report(#[from] crate::report::ReportError),
}

impl QuantizeError {
    /// A graph error for an in-memory model.
    pub fn graph(message: impl Into<String>) -> Self {
        QuantizeError::Graph(OnnxError::graph(message))
    }

    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        QuantizeError::Graph(OnnxError::io(path, source))
    }
}
