//! The run directory: everything inference needs, written so that a half-written run is never
//! mistaken for a finished one.
//!
//! - `heads.safetensors`: the trained weights (plus unfrozen backbone layers, if any);
//! - `config.json`: [`RunConfig`], written last; it records the SHA-256 of the weights, so a run is
//!   complete exactly when `config.json` exists and the weights match it;
//! - `checkpoint/` while training (see `crate::train`).
//!
//! Everything read from a run is checked against itself before it is used: every size, count and
//! rate of `config.json` against its range ([`validate_config`]: the architecture's sizes before
//! allocation, the training record's settings), the weights' hash, every tensor's shape.
//!
//! - [`settings`]: the training settings a run records, their defaults and ranges;
//! - [`record`]: the training record (settings, kept epoch, history).

pub mod record;
pub mod settings;

pub use record::{EpochLog, TrainingRecord};
pub use settings::{SettingError, TrainSettings};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::backbone::layers::TopLayers;
use crate::backbone::ModelFiles;
use crate::data::{TaskKind, INTENT, TAGS};
use crate::features::FeatureSpec;
use crate::fsutil;
use crate::hf::{BertConfig, Weights};
use crate::metrics::Metrics;
use crate::model::{
    HeadConfig, ModelConfig, SentenceHeadConfig, TaskConfig, TaskModel, TokenHeadConfig, Unfrozen,
};
use crate::nn::{ParamBuilder, ParamSet};

/// File names inside a run directory.
pub const CONFIG_FILE: &str = "config.json";
/// Weights file name.
pub const WEIGHTS_FILE: &str = "heads.safetensors";
/// Version of the run-directory format written: 2 = named tasks. Format 1 (intent and slot heads)
/// is still read.
pub const RUN_FORMAT: u32 = 2;
/// Largest `config.json` read (a run's is a few KiB).
const MAX_CONFIG_BYTES: u64 = 64 << 20;
/// Token limits a run may record (a backbone's truncation length).
pub const TOKEN_LIMITS: std::ops::RangeInclusive<usize> = 3..=1 << 16;

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
    /// Its SHA-256.
    pub onnx_sha256: String,
    /// The `tokenizer.json` used.
    pub tokenizer: PathBuf,
    /// Its SHA-256.
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
    /// File name inside the run directory.
    pub file: String,
    /// Its SHA-256.
    pub sha256: String,
}

/// `config.json` of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    /// [`RUN_FORMAT`].
    pub format: u32,
    /// The edgetune that wrote it.
    pub edgetune_version: String,
    /// The backbone it was trained on.
    pub backbone: BackboneRef,
    /// The cached features (the heads' input, or with unfrozen layers their input).
    pub features: FeatureSpec,
    /// The fine-tuned top backbone layers (`--unfreeze-top`), stored in the weights file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_layers: Option<TopLayersRef>,
    /// The task model's architecture.
    pub model: ModelConfig,
    /// The weights file and its hash.
    pub weights: WeightsRef,
    /// How the run was trained: its settings (they reproduce the run with the same data) and the
    /// course of training.
    #[serde(serialize_with = "record::sorted")]
    pub training: TrainingRecord,
    /// Metrics by split name (`valid`, `test`).
    pub metrics: BTreeMap<String, Metrics>,
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
            Ok((
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .map_err(|e| candle_core::Error::Msg(format!("tensor `{n}`: {e}")))?,
            ))
        })
        .collect::<candle_core::Result<_>>()?;
    safetensors::serialize(views, None).map_err(|e| candle_core::Error::Msg(e.to_string()))
}

/// Reads safetensors `bytes` into `params`: every parameter must be present with its shape.
pub fn load_weights(bytes: &[u8], params: &ParamSet, path: &Path) -> Result<(), RunError> {
    load_weights_renamed(bytes, params, path, &|n| n.to_string())
}

/// [`load_weights`] where parameter `p` is stored under `stored(p)` (runs of format 1 name the
/// `tags` head `slot`).
pub fn load_weights_renamed(
    bytes: &[u8],
    params: &ParamSet,
    path: &Path,
    stored: &dyn Fn(&str) -> String,
) -> Result<(), RunError> {
    let corrupt = |message: String| RunError::Corrupt {
        path: path.to_path_buf(),
        message,
    };
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| corrupt(e.to_string()))?;
    for p in &params.params {
        let key = stored(&p.name);
        let view = st
            .tensor(&key)
            .map_err(|_| corrupt(format!("tensor `{key}` is missing")))?;
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
        if data.iter().any(|v| !v.is_finite()) {
            return Err(corrupt(format!("tensor `{key}` holds NaN or infinity")));
        }
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
    let json = serde_json::to_vec_pretty(&config).map_err(|e| RunError::Corrupt {
        path: cpath.clone(),
        message: format!("cannot serialize the run's config: {e}"),
    })?;
    fsutil::write_atomic(&cpath, &json).map_err(io(&cpath))?;
    Ok(config)
}

/// Reads `config.json` of a run, checking that it is a finished run and that its architecture is
/// sound (sizes within bounds, label lists non-empty and unique) before anything is allocated.
pub fn read_config(dir: &Path) -> Result<RunConfig, RunError> {
    let cpath = dir.join(CONFIG_FILE);
    if !dir.is_dir() {
        return Err(RunError::NotARun {
            path: dir.to_path_buf(),
            message: "no such directory".into(),
        });
    }
    if std::fs::symlink_metadata(&cpath).is_err() {
        return Err(RunError::NotARun {
            path: dir.to_path_buf(),
            message: format!(
                "no {CONFIG_FILE}; an interrupted `train` can be continued with --resume"
            ),
        });
    }
    let bytes = read_run_file(&cpath, MAX_CONFIG_BYTES)?;
    parse_config(&bytes, &cpath)
}

/// Parses and checks the bytes of a run's `config.json` (read from `cpath`, named in errors): the
/// format (1 or 2), the architecture's sizes and label lists, the heads against the features.
pub fn parse_config(bytes: &[u8], cpath: &Path) -> Result<RunConfig, RunError> {
    let corrupt = |message: String| RunError::Corrupt {
        path: cpath.to_path_buf(),
        message,
    };
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| corrupt(format!("line {}, column {}: {e}", e.line(), e.column())))?;
    let format = value.get("format").and_then(serde_json::Value::as_u64);
    let config: RunConfig = match format {
        Some(2) => serde_path_to_error::deserialize(value)
            .map_err(|e| corrupt(format!("field \"{}\": {}", e.path(), e.inner())))?,
        Some(1) => from_format1(value).map_err(corrupt)?,
        other => {
            return Err(corrupt(format!(
                "run format {} is not supported (expected 1 or {RUN_FORMAT})",
                other.map_or("(none)".to_string(), |f| f.to_string())
            )))
        }
    };
    validate_config(&config).map_err(|(field, m)| corrupt(format!("field \"{field}\": {m}")))?;
    Ok(config)
}

/// `Err((field, message))` unless `v` is in `range`.
fn field_in(
    field: &str,
    v: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Result<(), (String, String)> {
    if range.contains(&v) {
        Ok(())
    } else {
        Err((
            field.into(),
            format!("{v} is not in {}..={}", range.start(), range.end()),
        ))
    }
}

/// Hidden-state numbers: 1..=64 of them, each a state of a backbone of `layers` layers.
fn states_in(field: &str, states: &[usize], layers: usize) -> Result<(), (String, String)> {
    field_in(
        field,
        states.len(),
        1..=crate::model::config::limits::MAX_MIXED_STATES,
    )
    .map_err(|(f, m)| (f, format!("{} states: {m}", states.len())))?;
    for &s in states {
        field_in(field, s, 0..=layers)?;
    }
    Ok(())
}

/// Checks every size, count and rate of a run's config against its range and against each other,
/// before anything is allocated: the backbone's facts, the cached states, the fine-tuned layers,
/// the architecture ([`ModelConfig::validate`]), the weights file's name, the training record
/// ([`TrainingRecord::validate`]) and the metrics. `Err((field, message))` names the field as a
/// JSON path (`training.batch_size`).
pub fn validate_config(config: &RunConfig) -> Result<(), (String, String)> {
    use crate::model::config::limits::MAX_WIDTH;
    let b = &config.backbone;
    field_in(
        "backbone.layers",
        b.layers,
        1..=settings::limits::MAX_LAYERS,
    )?;
    field_in("backbone.hidden", b.hidden, 1..=MAX_WIDTH)?;
    field_in("backbone.max_tokens", b.max_tokens, TOKEN_LIMITS)?;
    states_in("features.states", &config.features.states, b.layers)?;
    config
        .model
        .validate()
        .map_err(|m| ("model".to_string(), m))?;
    if config.model.backbone_width != b.hidden {
        return Err((
            "model.backbone_width".into(),
            format!(
                "{}, but the backbone's width is {}",
                config.model.backbone_width, b.hidden
            ),
        ));
    }
    if let Some(t) = &config.top_layers {
        validate_top_layers(t, b)?;
    }
    let k = match &config.top_layers {
        Some(t) => t.head_states.len(),
        None => config.features.states.len(),
    };
    if k != config.model.mixed_states {
        return Err((
            "model.mixed_states".into(),
            format!(
                "the heads mix {}, but the features give {k} hidden states",
                config.model.mixed_states
            ),
        ));
    }
    if !is_plain_file_name(&config.weights.file) {
        return Err((
            "weights.file".into(),
            format!(
                "{:?} is not a file name inside the run",
                config.weights.file
            ),
        ));
    }
    validate_training(&config.training, b.layers)?;
    for (split, m) in &config.metrics {
        m.validate()
            .map_err(|(f, msg)| (format!("metrics.{split}.{f}"), msg))?;
    }
    Ok(())
}

/// The fine-tuned layers against the backbone: the same width and depth, states it has.
fn validate_top_layers(t: &TopLayersRef, b: &BackboneRef) -> Result<(), (String, String)> {
    let c = &t.config;
    c.validate()
        .map_err(|m| ("top_layers.config".to_string(), m))?;
    field_in("top_layers.first", t.first, 0..=b.layers.saturating_sub(1))?;
    states_in("top_layers.head_states", &t.head_states, b.layers)?;
    let same = [
        ("hidden_size", c.hidden_size, b.hidden),
        ("num_hidden_layers", c.num_hidden_layers, b.layers),
    ];
    for (field, v, backbone) in same {
        if v != backbone {
            return Err((
                format!("top_layers.config.{field}"),
                format!("{v}, but the backbone's is {backbone}"),
            ));
        }
    }
    field_in(
        "top_layers.config.intermediate_size",
        c.intermediate_size,
        1..=8 * crate::model::config::limits::MAX_WIDTH,
    )?;
    if !(c.layer_norm_eps.is_finite() && c.layer_norm_eps > 0.0 && c.layer_norm_eps < 1.0) {
        return Err((
            "top_layers.config.layer_norm_eps".into(),
            format!("{} is not in (0, 1)", c.layer_norm_eps),
        ));
    }
    Ok(())
}

/// The training record's ranges, and its states and unfrozen layers against the backbone's layers.
fn validate_training(t: &TrainingRecord, layers: usize) -> Result<(), (String, String)> {
    let field = |e: SettingError| (format!("training.{}", e.setting), e.message);
    t.validate().map_err(field)?;
    let s = &t.settings;
    if let Some(&bad) = s.hidden_states.iter().find(|&&h| h > layers) {
        return Err((
            "training.hidden_states".into(),
            format!("state {bad} does not exist in a backbone of {layers} layers"),
        ));
    }
    field_in("training.unfreeze_top", s.unfreeze_top, 0..=layers)
}

/// A file name with no folder part (`heads.safetensors`), so a run never points outside itself.
fn is_plain_file_name(name: &str) -> bool {
    let p = Path::new(name);
    matches!(p.components().collect::<Vec<_>>().as_slice(), [std::path::Component::Normal(n)] if *n == p.as_os_str())
}

/// The heads of a format-1 run (`heads`: intent and slot) as format 2's named tasks.
fn from_format1(mut v: serde_json::Value) -> Result<RunConfig, String> {
    #[derive(Deserialize)]
    struct Intent {
        hidden: usize,
        dropout: f32,
        #[serde(default)]
        slot_states: bool,
    }
    #[derive(Deserialize)]
    struct Slot {
        gru_hidden: usize,
        dropout: f32,
    }
    #[derive(Deserialize)]
    struct Heads1 {
        hidden: usize,
        states: usize,
        intents: Vec<String>,
        tags: Vec<String>,
        intent_head: Intent,
        slot_head: Slot,
    }
    let heads: Heads1 =
        serde_json::from_value(v["heads"].take()).map_err(|e| format!("field \"heads\": {e}"))?;
    let mut tasks = Vec::new();
    if !heads.intents.is_empty() {
        tasks.push(TaskConfig {
            name: INTENT.into(),
            kind: TaskKind::Sentence,
            labels: heads.intents,
            head: HeadConfig::Sentence(SentenceHeadConfig {
                mlp_width: heads.intent_head.hidden,
                dropout: heads.intent_head.dropout,
                reads: heads.intent_head.slot_states.then(|| TAGS.to_string()),
            }),
        });
    }
    if !heads.tags.is_empty() {
        tasks.push(TaskConfig {
            name: TAGS.into(),
            kind: TaskKind::Spans,
            labels: heads.tags,
            head: HeadConfig::Token(TokenHeadConfig {
                gru_units: heads.slot_head.gru_hidden,
                dropout: heads.slot_head.dropout,
            }),
        });
    }
    let obj = v.as_object_mut().ok_or("not a JSON object")?;
    obj.remove("heads");
    obj.insert(
        "model".into(),
        serde_json::to_value(ModelConfig {
            backbone_width: heads.hidden,
            mixed_states: heads.states,
            tasks,
        })
        .map_err(|e| e.to_string())?,
    );
    obj.insert("format".into(), 1.into());
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// Where a run's parameter is stored in its weights file: format 1 named the `tags` head `slot`.
fn stored_name(format: u32) -> impl Fn(&str) -> String {
    move |name: &str| match (format, name.strip_prefix("tags.")) {
        (1, Some(rest)) => format!("slot.{rest}"),
        _ => name.to_string(),
    }
}

/// Largest weights file read (the heads are a few MiB; fine-tuned top layers some hundreds).
const MAX_WEIGHTS_BYTES: u64 = 2 << 30;

/// Reads a file of a run: a regular file (a FIFO or device is refused without blocking), at most
/// `limit` bytes actually read.
fn read_run_file(path: &Path, limit: u64) -> Result<Vec<u8>, RunError> {
    fsutil::read_bounded(path, limit, fsutil::Links::Follow).map_err(|source| RunError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a file a run names ([`read_run_file`]), which must stay inside the run `dir` once every
/// link is resolved.
fn read_confined(dir: &Path, path: &Path, limit: u64) -> Result<Vec<u8>, RunError> {
    let real = fsutil::confined(dir, path).map_err(|source| RunError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_run_file(&real, limit)
}

/// Loads a finished run: its config and the model with its trained weights (hash-checked).
pub fn load_run(dir: &Path) -> Result<(RunConfig, TaskModel), RunError> {
    let config = read_config(dir)?;
    let wpath = dir.join(&config.weights.file);
    let bytes = read_confined(dir, &wpath, MAX_WEIGHTS_BYTES)?;
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
    // The heads' tensors are in the weights file: a config asking for more than the file holds is
    // refused before anything that size is allocated.
    let need: usize = (0..config.model.tasks.len())
        .map(|i| config.model.head_params(i))
        .sum::<usize>()
        .saturating_mul(4);
    if need > bytes.len() {
        return Err(RunError::Corrupt {
            path: dir.join(CONFIG_FILE),
            message: format!(
                "the heads it describes need {need} bytes of weights, but {} has {}",
                wpath.display(),
                bytes.len()
            ),
        });
    }
    let mut model =
        TaskModel::new(config.model.clone(), 0, &Device::Cpu).map_err(|e| RunError::Corrupt {
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
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
        let mut vb = ParamBuilder::new(
            &mut model.params,
            &mut rng,
            crate::nn::Group::Layer(0),
            &Device::Cpu,
        )
        .with_source(&w);
        let top =
            TopLayers::load(&mut vb, &t.config, t.first).map_err(|e| corrupt(e.to_string()))?;
        model.top = Some(Unfrozen {
            top,
            cached: config.features.states.clone(),
            head_states: t.head_states.clone(),
        });
    }
    load_weights_renamed(&bytes, &model.params, &wpath, &stored_name(config.format))?;
    Ok((config, model))
}

/// The backbone a run was trained on: `over` if given, else the recorded path, else set-up's default
/// model; whichever is used must have the recorded hashes (model and tokenizer).
pub fn backbone_files(rc: &RunConfig, over: Option<&Path>) -> Result<ModelFiles, RunError> {
    let wrong = |path: &Path, message: String| RunError::Corrupt {
        path: path.to_path_buf(),
        message,
    };
    let files = match over {
        Some(p) => ModelFiles::resolve(p).map_err(|e| wrong(p, e.to_string()))?,
        None if rc.backbone.onnx.is_file() && rc.backbone.tokenizer.is_file() => ModelFiles {
            onnx: rc.backbone.onnx.clone(),
            tokenizer: rc.backbone.tokenizer.clone(),
        },
        None => ModelFiles::from_arg(None).map_err(|e| {
            wrong(
                &rc.backbone.onnx,
                format!("the run's backbone is not here and the default cannot be used ({e}); pass --backbone"),
            )
        })?,
    };
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RunError::Io {
            path: path.clone(),
            source,
        }
    };
    let sha = fsutil::sha256_file(&files.onnx).map_err(io(&files.onnx))?;
    if sha != rc.backbone.onnx_sha256 {
        return Err(wrong(
            &files.onnx,
            format!(
                "not the backbone this run was trained on (sha256 {} vs recorded {}); pass --backbone with the right one",
                &sha[..12],
                &rc.backbone.onnx_sha256[..12.min(rc.backbone.onnx_sha256.len())]
            ),
        ));
    }
    let tsha = fsutil::sha256_file(&files.tokenizer).map_err(io(&files.tokenizer))?;
    if tsha != rc.backbone.tokenizer_sha256 {
        return Err(wrong(
            &files.tokenizer,
            "not the tokenizer this run was trained with (sha256 differs)".into(),
        ));
    }
    Ok(files)
}
