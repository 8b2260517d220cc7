//! Where a backbone's files are: the ONNX graph and its tokenizer, given on the command line, by
//! `$EDGETUNE_MODEL`, or set up under `.models/`.

use std::path::{Path, PathBuf};

use super::error::BackboneError;

/// Environment variable naming the default model (a directory or an `.onnx` file).
pub const MODEL_ENV: &str = "EDGETUNE_MODEL";

/// Name of the default model directory that set-up creates under `.models/`.
pub const DEFAULT_MODEL_DIR: &str = "default";

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

/// Finds set-up's default model `.models/default` (see [`models_dir_candidates`]).
pub fn find_default_model() -> Result<ModelFiles, BackboneError> {
    match find_models_dir(DEFAULT_MODEL_DIR) {
        Some(candidate) => ModelFiles::resolve(&candidate),
        None => Err(BackboneError::NoDefault {
            looked: models_dir_candidates(DEFAULT_MODEL_DIR)
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            env: MODEL_ENV,
        }),
    }
}

/// Name of the Hugging Face checkpoint directory (fp32 weights) that set-up creates under `.models/`.
pub const DEFAULT_HF_DIR: &str = "minilm-hf";

/// Where set-up's `.models/{name}` may be, in order: beside the executable, in the checkout the
/// executable was built from (set-up's own folder), and in the working directory itself. Never an
/// ancestor of the working directory: a folder planted there (`/tmp/.models`) must not be picked up.
pub fn models_dir_candidates(name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(d) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        out.push(d.join(".models").join(name));
    }
    out.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(".models")
            .join(name),
    );
    if let Ok(cwd) = std::env::current_dir() {
        out.push(cwd.join(".models").join(name));
    }
    out.dedup();
    out
}

/// The first of [`models_dir_candidates`] that exists.
pub fn find_models_dir(name: &str) -> Option<PathBuf> {
    models_dir_candidates(name).into_iter().find(|p| p.is_dir())
}
