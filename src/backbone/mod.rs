//! The frozen backbone: a BERT-style encoder in ONNX, run by ONNX Runtime.
//!
//! Any encoder with inputs `input_ids`, `attention_mask` (and optionally `token_type_ids`) and output
//! `last_hidden_state` works. Hidden states of lower layers are exposed as extra graph outputs at load
//! time (see [`crate::onnx::expose_hidden_states`]); the file on disk is never changed.
//!
//! [`layers`] rebuilds the top transformer layers in candle, trainable, for `--unfreeze-top N`.

pub mod attention;
pub mod layers;
pub mod runtime;

use std::path::{Path, PathBuf};

use ndarray::{Array2, Array3, ArrayViewD, Ix3};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;

pub use runtime::{init as init_runtime, session_builder, RuntimeError};

use crate::tokenize::Tokenized;

/// Environment variable naming the default model (a directory or an `.onnx` file).
pub const MODEL_ENV: &str = "EDGETUNE_MODEL";

/// Name of the default model directory that set-up creates under `.models/`.
pub const DEFAULT_MODEL_DIR: &str = "default";

/// Errors of the backbone.
#[derive(Debug, thiserror::Error)]
pub enum BackboneError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("model {path}: {message}")]
    Model { path: PathBuf, message: String },
    #[error(
        "no model given and no default model found (looked for .models/{DEFAULT_MODEL_DIR} beside the \
         executable and in the working directory and their parents); run the set-up (./setup.sh), pass \
         --model DIR or set {MODEL_ENV}"
    )]
    NoDefault,
    #[error("ONNX Runtime failed running {path}: {message}")]
    Run { path: PathBuf, message: String },
}

/// The files of a backbone: the ONNX graph and the tokenizer that goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    /// The ONNX encoder.
    pub onnx: PathBuf,
    /// Its `tokenizer.json`.
    pub tokenizer: PathBuf,
}

impl ModelFiles {
    /// Resolves a user's `--model` argument: an `.onnx` file (with `tokenizer.json` beside it) or a
    /// directory holding `backbone.int8.onnx`, `backbone.onnx` or `model.onnx` (first found) and
    /// `tokenizer.json`.
    pub fn resolve(path: &Path) -> Result<Self, BackboneError> {
        let err = |message: &str| BackboneError::Model {
            path: path.to_path_buf(),
            message: message.into(),
        };
        let (onnx, dir) = if path.is_dir() {
            let onnx = ["backbone.int8.onnx", "backbone.onnx", "model.onnx"]
                .iter()
                .map(|n| path.join(n))
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    err("directory holds no backbone.int8.onnx, backbone.onnx or model.onnx")
                })?;
            (onnx, path.to_path_buf())
        } else if path.is_file() {
            (
                path.to_path_buf(),
                path.parent().map(Path::to_path_buf).unwrap_or_default(),
            )
        } else {
            return Err(err("no such file or directory"));
        };
        let tokenizer = dir.join("tokenizer.json");
        if !tokenizer.is_file() {
            return Err(err("no tokenizer.json beside the model"));
        }
        Ok(Self { onnx, tokenizer })
    }

    /// The model given on the command line, else `$EDGETUNE_MODEL`, else set-up's default.
    pub fn from_arg(arg: Option<&Path>) -> Result<Self, BackboneError> {
        match arg {
            Some(p) => Self::resolve(p),
            None => match std::env::var_os(MODEL_ENV).filter(|v| !v.is_empty()) {
                Some(p) => Self::resolve(Path::new(&p)),
                None => find_default_model(),
            },
        }
    }
}

/// Finds `.models/default` beside the executable, or in the working directory, or any of their parents.
pub fn find_default_model() -> Result<ModelFiles, BackboneError> {
    match find_models_dir(DEFAULT_MODEL_DIR) {
        Some(candidate) => ModelFiles::resolve(&candidate),
        None => Err(BackboneError::NoDefault),
    }
}

/// Name of the Hugging Face checkpoint directory (fp32 weights) that set-up creates under `.models/`.
pub const DEFAULT_HF_DIR: &str = "minilm-hf";

/// Finds `.models/{name}` beside the executable, or in the working directory, or any of their
/// parents (the first found).
pub fn find_models_dir(name: &str) -> Option<PathBuf> {
    let mut roots = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(d) = exe.parent() {
            roots.push(d.to_path_buf());
        }
    }
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd);
    }
    for root in &roots {
        for dir in root.ancestors() {
            let candidate = dir.join(".models").join(name);
            if candidate.is_dir() {
                return Some(candidate);
            }
        }
    }
    None
}

/// ONNX Runtime session settings.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Intra-op threads (ONNX Runtime's own pool).
    pub threads: usize,
    /// Memory-pattern planning (reuses buffers across runs of the same shapes; costs memory on small boards).
    pub memory_pattern: bool,
    /// Let idle intra-op threads spin (default off: on a shared 2-core machine spinning threads
    /// competed with other work and doubled batch-1 latency, 9.7 vs 4.7 ms; they also burn power).
    pub spinning: bool,
    /// ONNX Runtime's CPU arena allocator (keeps freed buffers for reuse).
    pub arena: bool,
    /// Weight prepacking (faster MatMuls at the cost of a second, packed copy of the weights).
    pub prepacking: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            threads: default_threads(),
            memory_pattern: true,
            spinning: false,
            arena: true,
            prepacking: true,
        }
    }
}

/// All available cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Opens an ONNX Runtime session on model bytes.
pub fn open_session(
    bytes: &[u8],
    path: &Path,
    cfg: &SessionConfig,
) -> Result<Session, BackboneError> {
    let err = |e: ort::Error| BackboneError::Model {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut b = runtime::session_builder()?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| err(e.into()))?
        .with_intra_threads(cfg.threads.max(1))
        .map_err(|e| err(e.into()))?
        .with_inter_threads(1)
        .map_err(|e| err(e.into()))?
        .with_memory_pattern(cfg.memory_pattern)
        .map_err(|e| err(e.into()))?
        .with_intra_op_spinning(cfg.spinning)
        .map_err(|e| err(e.into()))?
        .with_prepacking(cfg.prepacking)
        .map_err(|e| err(e.into()))?;
    if !cfg.arena {
        b = b
            .with_execution_providers([ort::ep::CPU::default().with_arena_allocator(false).build()])
            .map_err(|e| err(e.into()))?;
    }
    b.commit_from_memory(bytes).map_err(err)
}

/// A loaded encoder that returns the hidden states it was asked for.
pub struct Backbone {
    session: Session,
    path: PathBuf,
    /// Hidden size.
    pub hidden: usize,
    /// Number of transformer layers.
    pub layers: usize,
    /// The hidden states returned by [`Backbone::run`], in this order (0 = embeddings, `layers` = last).
    pub states: Vec<usize>,
    output_names: Vec<String>,
    has_token_types: bool,
    pad_id: u32,
}

/// One batch's outputs.
pub struct BatchStates {
    /// One `[batch, tokens, hidden]` array per requested state, in [`Backbone::states`] order.
    pub states: Vec<Array3<f32>>,
}

impl Backbone {
    /// Loads the model, exposing the requested hidden states as outputs. `states` may include
    /// `layers` (the last hidden state); an empty list means the last one only.
    pub fn load(
        files: &ModelFiles,
        states: &[usize],
        pad_id: u32,
        cfg: &SessionConfig,
    ) -> Result<Self, BackboneError> {
        let path = files.onnx.clone();
        let merr = |message: String| BackboneError::Model {
            path: path.clone(),
            message,
        };
        let mut model = crate::onnx::load_model(&path).map_err(|e| merr(e.to_string()))?;
        let layers = crate::onnx::count_layers(&model).map_err(|e| merr(e.to_string()))?;
        let states: Vec<usize> = if states.is_empty() {
            vec![layers]
        } else {
            states.to_vec()
        };
        if let Some(bad) = states.iter().find(|&&s| s > layers) {
            return Err(merr(format!(
                "hidden state {bad} requested, but the model has {layers} layers (0..={layers})"
            )));
        }
        let lower: Vec<usize> = states.iter().copied().filter(|&s| s < layers).collect();
        let mut names_lower = Vec::new();
        if !lower.is_empty() {
            names_lower = crate::onnx::expose_hidden_states(&mut model, &lower)
                .map_err(|e| merr(e.to_string()))?;
        }
        let bytes = prost::Message::encode_to_vec(&model);
        drop(model);
        let session = open_session(&bytes, &path, cfg)?;
        drop(bytes);
        let input_names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        for needed in ["input_ids", "attention_mask"] {
            if !input_names.contains(&needed) {
                return Err(merr(format!(
                    "model has no input `{needed}` (inputs: {input_names:?})"
                )));
            }
        }
        let has_token_types = input_names.contains(&"token_type_ids");
        if let Some(extra) = input_names
            .iter()
            .find(|n| !["input_ids", "attention_mask", "token_type_ids"].contains(n))
        {
            return Err(merr(format!("unsupported model input `{extra}`")));
        }
        if !session
            .outputs()
            .iter()
            .any(|o| o.name() == "last_hidden_state")
        {
            return Err(merr("model has no output `last_hidden_state`".into()));
        }
        let mut lower_names = lower.iter().zip(names_lower);
        let output_names = states
            .iter()
            .map(|&s| {
                if s == layers {
                    "last_hidden_state".to_string()
                } else {
                    lower_names.next().expect("one name per lower state").1
                }
            })
            .collect();
        let mut me = Self {
            session,
            path,
            hidden: 0,
            layers,
            states,
            output_names,
            has_token_types,
            pad_id,
        };
        let probe = Tokenized {
            ids: vec![pad_id, pad_id],
            type_ids: vec![0, 0],
            word_tokens: vec![],
            truncated: false,
        };
        me.hidden = me.run(&[&probe])?.states[0].shape()[2];
        Ok(me)
    }

    /// Where each of `states` sits among [`BatchStates::states`], and where the last layer's state
    /// sits. Panics if a state was not requested at load time (a programming error).
    pub fn positions(&self, states: &[usize]) -> (Vec<usize>, usize) {
        let at = |s: usize| {
            self.states.iter().position(|&b| b == s).unwrap_or_else(|| {
                panic!("hidden state {s} was not loaded (have {:?})", self.states)
            })
        };
        (states.iter().map(|&s| at(s)).collect(), at(self.layers))
    }

    /// Runs one batch, padded to its longest member.
    pub fn run(&mut self, batch: &[&Tokenized]) -> Result<BatchStates, BackboneError> {
        let b = batch.len();
        let t = batch.iter().map(|x| x.ids.len()).max().unwrap_or(0).max(1);
        let mut ids = Array2::<i64>::from_elem((b, t), self.pad_id as i64);
        let mut mask = Array2::<i64>::zeros((b, t));
        let mut types = Array2::<i64>::zeros((b, t));
        for (r, x) in batch.iter().enumerate() {
            for (c, (&id, &ty)) in x.ids.iter().zip(&x.type_ids).enumerate() {
                ids[[r, c]] = id as i64;
                mask[[r, c]] = 1;
                types[[r, c]] = ty as i64;
            }
        }
        let rerr = |e: ort::Error| BackboneError::Run {
            path: self.path.clone(),
            message: e.to_string(),
        };
        let ids_v = TensorRef::from_array_view(&ids).map_err(rerr)?;
        let mask_v = TensorRef::from_array_view(&mask).map_err(rerr)?;
        let types_v = TensorRef::from_array_view(&types).map_err(rerr)?;
        let path = self.path.clone();
        let rerr = |e: ort::Error| BackboneError::Run {
            path: path.clone(),
            message: e.to_string(),
        };
        let outputs = if self.has_token_types {
            self.session
                .run(ort::inputs!["input_ids" => ids_v, "attention_mask" => mask_v, "token_type_ids" => types_v])
                .map_err(rerr)?
        } else {
            self.session
                .run(ort::inputs!["input_ids" => ids_v, "attention_mask" => mask_v])
                .map_err(rerr)?
        };
        let mut states = Vec::with_capacity(self.output_names.len());
        for name in &self.output_names {
            let v: ArrayViewD<f32> = outputs[name.as_str()]
                .try_extract_array::<f32>()
                .map_err(rerr)?;
            let v = v
                .into_dimensionality::<Ix3>()
                .map_err(|e| BackboneError::Run {
                    path: path.clone(),
                    message: format!("output `{name}` is not [batch, sequence, hidden]: {e}"),
                })?;
            states.push(v.to_owned());
        }
        Ok(BatchStates { states })
    }
}
