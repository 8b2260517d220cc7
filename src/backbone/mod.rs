//! The frozen backbone: a BERT-style encoder in ONNX run by ONNX Runtime.

pub mod runtime;

pub use runtime::{init as init_runtime, RuntimeError};
