//! ONNX models: lossless read/write, graph rewriting, import, quantization and merged export.
//!
//! The protobuf types come from the vendored `proto/onnx-ml.proto` (proto2), compiled at build time
//! by prost with protox (no `protoc`). proto2 `optional` scalars are `Option<T>`, so zero-valued
//! fields (an `axis = 0` attribute, a zero `dims` entry) survive a read/write round trip.

use std::path::{Path, PathBuf};

use prost::Message;

pub mod export;
pub mod graph;
pub mod hidden;
pub mod import;
pub mod quantize;
pub mod runtime;
pub mod top_layers;

pub use hidden::{count_layers, expose_hidden_states, hidden_state_name};

/// Generated protobuf types of the ONNX schema (package `onnx`): [`proto::ModelProto`],
/// [`proto::GraphProto`], [`proto::NodeProto`], [`proto::AttributeProto`], [`proto::TensorProto`], ...
#[allow(missing_docs, clippy::all)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

use proto::ModelProto;

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
    pub(crate) fn graph(message: impl Into<String>) -> Self {
        OnnxError::Graph {
            path: "<model>".into(),
            message: message.into(),
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        OnnxError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Reads an ONNX model file. Every field of the schema is kept, including zero-valued proto2 optionals.
pub fn load_model(path: &Path) -> Result<ModelProto, OnnxError> {
    let bytes = std::fs::read(path).map_err(|e| OnnxError::io(path, e))?;
    decode_model(&bytes).map_err(|source| OnnxError::Decode {
        path: path.to_path_buf(),
        source,
    })
}

/// Decodes an ONNX model from bytes.
pub fn decode_model(bytes: &[u8]) -> Result<ModelProto, prost::DecodeError> {
    ModelProto::decode(bytes)
}

/// Encodes an ONNX model to bytes.
pub fn encode_model(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

/// Writes an ONNX model atomically (temp file, fsync, rename). Models over protobuf's 2 GiB limit
/// are refused (external data is not supported).
pub fn save_model(path: &Path, model: &ModelProto) -> Result<(), OnnxError> {
    let len = model.encoded_len();
    if len >= i32::MAX as usize {
        return Err(OnnxError::Graph {
            path: path.display().to_string(),
            message: format!("model is {len} bytes, over protobuf's 2 GiB limit"),
        });
    }
    let bytes = model.encode_to_vec();
    crate::fsutil::write_atomic(path, &bytes).map_err(|e| OnnxError::io(path, e))
}

/// The model's `metadata_props` as (key, value) pairs, in file order.
pub fn model_metadata(model: &ModelProto) -> Vec<(String, String)> {
    model
        .metadata_props
        .iter()
        .map(|p| {
            (
                p.key.clone().unwrap_or_default(),
                p.value.clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// One `metadata_props` value, if present.
pub fn metadata_value<'m>(model: &'m ModelProto, key: &str) -> Option<&'m str> {
    model
        .metadata_props
        .iter()
        .find(|p| p.key.as_deref() == Some(key))
        .and_then(|p| p.value.as_deref())
}

/// Sets (replaces or appends) one `metadata_props` entry.
pub fn set_metadata(model: &mut ModelProto, key: &str, value: &str) {
    if let Some(p) = model
        .metadata_props
        .iter_mut()
        .find(|p| p.key.as_deref() == Some(key))
    {
        p.value = Some(value.to_string());
    } else {
        model.metadata_props.push(proto::StringStringEntryProto {
            key: Some(key.to_string()),
            value: Some(value.to_string()),
        });
    }
}
