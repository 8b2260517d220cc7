//! The run directory: everything inference needs, written so that a half-written run is never
//! mistaken for a finished one.
//!
//! - `heads.safetensors`: the trained weights (plus unfrozen backbone layers, if any);
//! - `config.json`: [`RunConfig`], written last; it records the SHA-256 of the weights, so a run is
//!   complete exactly when `config.json` exists and the weights match it;
//! - `checkpoint/` while training (see [`crate::train`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::backbone::layers::{TopLayers, Unfrozen};
use crate::features::FeatureSpec;
use crate::fsutil;
use crate::heads::{Heads, HeadsConfig, ParamSet};
use crate::onnx::import::{BertConfig, Weights};

/// File names inside a run directory.
pub const CONFIG_FILE: &str = "config.json";
/// Weights file name.
pub const WEIGHTS_FILE: &str = "heads.safetensors";
/// Version of the run-directory format.
pub const RUN_FORMAT: u32 = 1;

/// Errors reading or writing a run directory.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{path}: not a finished edgetune run ({message})")]
    NotARun { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Which backbone a run was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackboneRef {
    /// The ONNX file as resolved at training time.
    pub onnx: PathBuf,
    pub onnx_sha256: String,
    /// The `tokenizer.json` used.
    pub tokenizer: PathBuf,
    pub tokenizer_sha256: String,
    /// Transformer layers of the backbone.
    pub layers: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Token limit (truncation length).
    pub max_tokens: usize,
}

/// Reference to the weights file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightsRef {
    pub file: String,
    pub sha256: String,
}

/// `config.json` of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    pub format: u32,
    pub edgetune_version: String,
    pub backbone: BackboneRef,
    /// The cached features (the heads' input, or with unfrozen layers their input).
    pub features: FeatureSpec,
    /// The fine-tuned top backbone layers (`--unfreeze-top`), stored in the weights file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_layers: Option<TopLayersRef>,
    pub heads: HeadsConfig,
    pub weights: WeightsRef,
    /// Training settings as given (for the record; reproduces the run with the same data).
    pub training: serde_json::Value,
    /// Metrics by split name (`valid`, `test`).
    pub metrics: BTreeMap<String, serde_json::Value>,
}

/// The fine-tuned top layers of a run: layers `first..L` run in candle on cached state `first`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopLayersRef {
    /// The lowest fine-tuned layer; its input is hidden state `first`.
    pub first: usize,
    /// The hidden states the heads read (some from the cache, the others from the layers).
    pub head_states: Vec<usize>,
    /// The architecture of the checkpoint the layers came from.
    pub config: BertConfig,
    /// Where the initial fp32 weights came from (for the record and for export).
    pub hf_weights: PathBuf,
}

/// The hidden states a run's heads read.
pub fn head_states(rc: &RunConfig) -> Vec<usize> {
    match &rc.top_layers {
        Some(t) => t.head_states.clone(),
        None => rc.features.states.clone(),
    }
}

/// Serializes parameters to safetensors bytes (f32, names as in the [`ParamSet`]).
pub fn weights_bytes(params: &ParamSet) -> candle_core::Result<Vec<u8>> {
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for p in &params.params {
        let t = p.var.as_tensor();
        let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
        tensors.push((
            p.name.clone(),
            t.dims().to_vec(),
            bytemuck::cast_slice(&v).to_vec(),
        ));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .expect("sizes agree"),
            )
        })
        .collect();
    safetensors::serialize(views, None).map_err(|e| candle_core::Error::Msg(e.to_string()))
}

/// Reads safetensors `bytes` into `params`: every parameter must be present with its shape.
pub fn load_weights(bytes: &[u8], params: &ParamSet, path: &Path) -> Result<(), RunError> {
    let corrupt = |message: String| RunError::Corrupt {
        path: path.to_path_buf(),
        message,
    };
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| corrupt(e.to_string()))?;
    for p in &params.params {
        let view = st
            .tensor(&p.name)
            .map_err(|_| corrupt(format!("tensor `{}` is missing", p.name)))?;
        let want = p.var.as_tensor().dims().to_vec();
        if view.shape() != want.as_slice() || view.dtype() != safetensors::Dtype::F32 {
            return Err(corrupt(format!(
                "tensor `{}` is {:?} {:?}, expected F32 {want:?}",
                p.name,
                view.dtype(),
                view.shape()
            )));
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let t = Tensor::from_vec(data, want.as_slice(), &Device::Cpu)
            .map_err(|e| corrupt(e.to_string()))?;
        p.var.set(&t).map_err(|e| corrupt(e.to_string()))?;
    }
    Ok(())
}

/// Writes a run: the weights first, then `config.json` naming their hash (both atomically).
pub fn save_run(dir: &Path, mut config: RunConfig, weights: &[u8]) -> Result<RunConfig, RunError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RunError::Io {
            path: path.clone(),
            source,
        }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let wpath = dir.join(WEIGHTS_FILE);
    fsutil::write_atomic(&wpath, weights).map_err(io(&wpath))?;
    config.weights = WeightsRef {
        file: WEIGHTS_FILE.into(),
        sha256: fsutil::sha256_bytes(weights),
    };
    let cpath = dir.join(CONFIG_FILE);
    let json = serde_json::to_vec_pretty(&config).expect("config serializes");
    fsutil::write_atomic(&cpath, &json).map_err(io(&cpath))?;
    Ok(config)
}

/// Reads `config.json` of a run, checking that it is a finished run.
pub fn read_config(dir: &Path) -> Result<RunConfig, RunError> {
    let cpath = dir.join(CONFIG_FILE);
    if !dir.is_dir() {
        return Err(RunError::NotARun {
            path: dir.to_path_buf(),
            message: "no such directory".into(),
        });
    }
    let bytes = std::fs::read(&cpath).map_err(|_| RunError::NotARun {
        path: dir.to_path_buf(),
        message: format!("no {CONFIG_FILE}; an interrupted `train` can be continued with --resume"),
    })?;
    let config: RunConfig = serde_json::from_slice(&bytes).map_err(|e| RunError::Corrupt {
        path: cpath.clone(),
        message: format!("line {}, column {}: {e}", e.line(), e.column()),
    })?;
    if config.format != RUN_FORMAT {
        return Err(RunError::Corrupt {
            path: cpath,
            message: format!(
                "run format {} is not supported (expected {RUN_FORMAT})",
                config.format
            ),
        });
    }
    Ok(config)
}

/// Loads a finished run: its config and the heads with their trained weights (hash-checked).
pub fn load_run(dir: &Path) -> Result<(RunConfig, Heads), RunError> {
    let config = read_config(dir)?;
    let wpath = dir.join(&config.weights.file);
    let bytes = std::fs::read(&wpath).map_err(|source| RunError::Io {
        path: wpath.clone(),
        source,
    })?;
    let sha = fsutil::sha256_bytes(&bytes);
    if sha != config.weights.sha256 {
        return Err(RunError::Corrupt {
            path: wpath,
            message: format!(
                "content hash {sha} does not match {} recorded in {CONFIG_FILE}",
                config.weights.sha256
            ),
        });
    }
    let mut heads =
        Heads::new(config.heads.clone(), 0, &Device::Cpu).map_err(|e| RunError::Corrupt {
            path: dir.join(CONFIG_FILE),
            message: e.to_string(),
        })?;
    if let Some(t) = &config.top_layers {
        // The fine-tuned layers are in the run's own weights file (by their checkpoint names).
        let corrupt = |message: String| RunError::Corrupt {
            path: wpath.clone(),
            message,
        };
        let w = Weights::load(&wpath).map_err(|e| corrupt(e.to_string()))?;
        let top = TopLayers::load(&mut heads.params, &w, &t.config, t.first, &Device::Cpu)
            .map_err(|e| corrupt(e.to_string()))?;
        heads.top = Some(Unfrozen {
            top,
            cached: config.features.states.clone(),
            head_states: t.head_states.clone(),
        });
    }
    load_weights(&bytes, &heads.params, &wpath)?;
    Ok((config, heads))
}
