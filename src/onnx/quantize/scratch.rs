//! Scratch space for models ONNX Runtime must read from a file.

use super::error::QuantizeError;

/// A temporary folder, removed with its content when the guard drops (on every path).
pub fn temp_dir() -> Result<tempfile::TempDir, QuantizeError> {
    tempfile::Builder::new()
        .prefix("edgetune-ort-")
        .tempdir()
        .map_err(|e| QuantizeError::io(&std::env::temp_dir(), e))
}
