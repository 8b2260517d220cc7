//! Reading and writing ONNX model files losslessly, and their `metadata_props`.

use std::path::Path;

use prost::Message;

use super::error::OnnxError;
use super::proto::{self, ModelProto};

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

/// The parts of a model that describe it without its weights: `metadata_props` and the graph's
/// inputs and outputs.
#[derive(Clone, PartialEq, prost::Message)]
struct ModelHeader {
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphHeader>,
    #[prost(message, repeated, tag = "14")]
    metadata_props: Vec<proto::StringStringEntryProto>,
}

/// A graph's inputs and outputs; nodes and initializers are skipped.
#[derive(Clone, PartialEq, prost::Message)]
struct GraphHeader {
    #[prost(message, repeated, tag = "11")]
    input: Vec<proto::ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    output: Vec<proto::ValueInfoProto>,
}

/// Reads only the metadata and the graph's inputs and outputs of the model file at `path`,
/// returned as a [`ModelProto`] whose graph has no nodes and no initializers. The file is mapped,
/// not read: fields outside the header are skipped by length, so their pages are never touched
/// and a model's weights cost neither a copy nor a parse.
pub fn load_model_header(path: &Path) -> Result<ModelProto, OnnxError> {
    let file = std::fs::File::open(path).map_err(|e| OnnxError::io(path, e))?;
    // SAFETY: the mapping is read-only and dropped before this function returns; a file truncated
    // meanwhile by another process is the documented hazard of any read through a mapping.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| OnnxError::io(path, e))?;
    let h = ModelHeader::decode(&map[..]).map_err(|source| OnnxError::Decode {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(ModelProto {
        graph: h.graph.map(|g| proto::GraphProto {
            input: g.input,
            output: g.output,
            ..Default::default()
        }),
        metadata_props: h.metadata_props,
        ..Default::default()
    })
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
