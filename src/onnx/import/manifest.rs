//! A model directory's files and its `manifest.json` (architecture, hashes, how it was made).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::verify::Verification;
use crate::fsutil;
use crate::graph::OnnxError;
use crate::hf::BertConfig;

/// File name of the fp32 backbone in a model directory.
pub const BACKBONE_FILE: &str = "backbone.onnx";
/// File name of the tokenizer in a model directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// File name of the manifest in a model directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Manifest written beside the backbone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Format marker.
    pub format: String,
    /// Architecture.
    pub config: BertConfig,
    /// Layers `L`.
    pub num_layers: usize,
    /// Width.
    pub hidden_size: usize,
    /// Graph inputs.
    pub inputs: Vec<String>,
    /// Graph outputs.
    pub outputs: Vec<String>,
    /// Source directory as given.
    pub source_dir: String,
    /// The checkpoint's layer count when the import kept only its first `num_layers` layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_layers: Option<usize>,
    /// sha256 of files in the model directory (backbone.onnx, tokenizer.json, later backbone.int8.onnx).
    pub files: BTreeMap<String, String>,
    /// sha256 of the source files.
    pub source_files: BTreeMap<String, String>,
    /// Self-verification figures.
    pub verification: Option<Verification>,
    /// Free-form additions (e.g. quantization report).
    #[serde(default)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Manifest {
    /// Reads `manifest.json` of a model directory.
    pub fn load(model_dir: &Path) -> Result<Self, OnnxError> {
        let p = model_dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&p).map_err(|e| OnnxError::io(&p, e))?;
        serde_json::from_str(&text).map_err(|e| OnnxError::Source {
            path: p,
            message: format!("invalid manifest: {e}"),
        })
    }

    /// Writes `manifest.json` atomically.
    pub fn save(&self, model_dir: &Path) -> Result<(), OnnxError> {
        let p = model_dir.join(MANIFEST_FILE);
        let text =
            serde_json::to_string_pretty(self).map_err(|e| OnnxError::Invalid(e.to_string()))?;
        fsutil::write_atomic(&p, text.as_bytes()).map_err(|e| OnnxError::io(&p, e))
    }
}

/// File name of the quantized backbone in a model directory.
pub const INT8_FILE: &str = "backbone.int8.onnx";

impl Manifest {
    /// The MatMuls the quantization recorded in this manifest kept in fp32, when the manifest
    /// describes the file `name` with hash `sha256` (else none: the record is about another file).
    pub fn kept_fp32(&self, name: &str, sha256: &str) -> Vec<String> {
        #[derive(Deserialize)]
        struct Summary {
            #[serde(default)]
            kept_fp32: Vec<String>,
        }
        #[derive(Deserialize)]
        struct Record {
            summary: Summary,
        }
        if self.files.get(name).map(String::as_str) != Some(sha256) {
            return Vec::new();
        }
        self.extra
            .get("quantization")
            .and_then(|q| serde_json::from_value::<Record>(q.clone()).ok())
            .map(|r| r.summary.kept_fp32)
            .unwrap_or_default()
    }
}
