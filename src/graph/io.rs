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
///
/// Decoding is bounded: the header's fields are measured on the wire first, and a header over
/// [`MAX_HEADER_BYTES`] or [`MAX_HEADER_ENTRIES`] entries is refused before anything is decoded
/// (an empty repeated entry costs 2 bytes in the file and some 50 to 200 in memory).
pub fn load_model_header(path: &Path) -> Result<ModelProto, OnnxError> {
    let file = crate::fsutil::open_regular(path, crate::fsutil::Links::Follow)
        .map_err(|e| OnnxError::io(path, e))?;
    // SAFETY: the mapping is read-only and dropped before this function returns; a file truncated
    // meanwhile by another process is the documented hazard of any read through a mapping.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| OnnxError::io(path, e))?;
    let too_big = |message: String| OnnxError::Graph {
        path: path.display().to_string(),
        message,
    };
    let (bytes, entries) =
        header_extent(&map[..]).map_err(|m| too_big(format!("not an ONNX model: {m}")))?;
    if bytes > MAX_HEADER_BYTES || entries > MAX_HEADER_ENTRIES {
        return Err(too_big(format!(
            "its metadata and graph inputs/outputs take {bytes} bytes in {entries} entries (limits \
             {MAX_HEADER_BYTES} bytes, {MAX_HEADER_ENTRIES} entries); refused before decoding"
        )));
    }
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

/// Largest header decoded by [`load_model_header`]: 2 MiB of metadata and graph inputs/outputs (a
/// merged model's, labels included, is a few KiB).
pub const MAX_HEADER_BYTES: usize = 2 << 20;

/// Most entries (metadata pairs, graph inputs and outputs) decoded by [`load_model_header`].
pub const MAX_HEADER_ENTRIES: usize = 1 << 16;

/// A protobuf varint at `*at`, advancing past it.
fn varint(buf: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*at).ok_or("truncated varint")?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint longer than 10 bytes".into())
}

/// The fields of one message on the wire: `(field number, payload)` for length-delimited
/// fields; other wire types are skipped.
fn for_each_field<'a>(buf: &'a [u8], mut f: impl FnMut(u64, &'a [u8])) -> Result<(), String> {
    let mut at = 0usize;
    while at < buf.len() {
        let key = varint(buf, &mut at)?;
        let skip = match key & 7 {
            0 => {
                varint(buf, &mut at)?;
                0
            }
            1 => 8,
            5 => 4,
            2 => {
                let len = usize::try_from(varint(buf, &mut at)?).map_err(|_| "length overflow")?;
                let end = at
                    .checked_add(len)
                    .filter(|&e| e <= buf.len())
                    .ok_or("truncated field")?;
                f(key >> 3, &buf[at..end]);
                len
            }
            w => return Err(format!("unsupported wire type {w}")),
        };
        at = at
            .checked_add(skip)
            .filter(|&e| e <= buf.len())
            .ok_or("truncated field")?;
    }
    Ok(())
}

/// Bytes and entries of a model's header fields (`metadata_props`, the graph's `input` and
/// `output`), measured on the wire without decoding them.
fn header_extent(model: &[u8]) -> Result<(usize, usize), String> {
    let (mut bytes, mut entries) = (0usize, 0usize);
    let mut graphs = Vec::new();
    for_each_field(model, |field, payload| match field {
        14 => {
            bytes += payload.len();
            entries += 1;
        }
        7 => graphs.push(payload),
        _ => {}
    })?;
    for g in graphs {
        for_each_field(g, |field, payload| {
            if field == 11 || field == 12 {
                bytes += payload.len();
                entries += 1;
            }
        })?;
    }
    Ok((bytes, entries))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_of_repeated_empty_entries_is_refused_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crafted.onnx");
        // 200,000 empty metadata_props (field 14, length 0): 400 KB on disk.
        let bytes: Vec<u8> = std::iter::repeat_n([0x72u8, 0x00], 200_000)
            .flatten()
            .collect();
        std::fs::write(&path, &bytes).unwrap();
        let e = load_model_header(&path).unwrap_err().to_string();
        assert!(e.contains("refused before decoding"), "{e}");
        let mut m = ModelProto::default();
        set_metadata(&mut m, "k", "v");
        std::fs::write(&path, encode_model(&m)).unwrap();
        assert_eq!(
            metadata_value(&load_model_header(&path).unwrap(), "k"),
            Some("v")
        );
    }
}
