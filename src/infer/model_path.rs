//! The model that answers: a run folder or a merged model, one choice for `infer`, `serve`,
//! `actions check` and embedders.

use std::path::{Path, PathBuf};

use crate::backbone::SessionOptions;
use crate::data::TaskInfo;
use crate::onnx::merged::{MergedMeta, MergedModel};
use crate::predict::{Predict, PredictError};

/// Where a model is: a run folder or a merged model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelPath {
    /// A finished run folder (`config.json`, `heads.safetensors`): answers with its backbone and
    /// task model (feature `train`), and can learn from corrections in `serve`.
    Run(PathBuf),
    /// A merged model exported by `edgetune export` (with `tokenizer.json` beside it): answers
    /// only.
    Merged(PathBuf),
}

impl ModelPath {
    /// The folder or file.
    pub fn path(&self) -> &Path {
        match self {
            Self::Run(p) | Self::Merged(p) => p,
        }
    }

    /// Whether it is a run.
    pub fn is_run(&self) -> bool {
        matches!(self, Self::Run(_))
    }

    /// `"run"` or `"merged"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Run(_) => "run",
            Self::Merged(_) => "merged",
        }
    }

    /// The model's tasks, read without ONNX Runtime: a run's `config.json`, a merged model's
    /// metadata (its header only, not its weights).
    pub fn tasks(&self) -> Result<Vec<TaskInfo>, PredictError> {
        match self {
            Self::Merged(path) => Ok(MergedMeta::from_file(path)?.tasks),
            Self::Run(dir) => run_tasks(dir),
        }
    }

    /// Opens the model for prediction: a run with its backbone (`backbone`: an override, which
    /// must be the file the run was trained on; ignored for a merged model), a merged model with
    /// the tokenizer beside it.
    pub fn open(
        &self,
        backbone: Option<&Path>,
        opts: &SessionOptions,
    ) -> Result<Box<dyn Predict + Send>, PredictError> {
        match self {
            Self::Merged(path) => Ok(Box::new(MergedModel::open(path, opts)?)),
            Self::Run(dir) => open_run(dir, backbone, opts),
        }
    }
}

impl std::fmt::Display for ModelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind(), self.path().display())
    }
}

#[cfg(feature = "train")]
fn run_tasks(dir: &Path) -> Result<Vec<TaskInfo>, PredictError> {
    let rc = crate::run::read_config(dir)?;
    Ok(rc.model.tasks.iter().map(|t| t.info()).collect())
}

#[cfg(feature = "train")]
fn open_run(
    dir: &Path,
    backbone: Option<&Path>,
    opts: &SessionOptions,
) -> Result<Box<dyn Predict + Send>, PredictError> {
    Ok(Box::new(super::predictor::RunPredictor::open(
        dir, backbone, opts,
    )?))
}

#[cfg(not(feature = "train"))]
fn no_runs(dir: &Path) -> PredictError {
    PredictError::Unsupported(format!(
        "{}: answering with a run needs the feature `train`, which this build lacks; export it \
         (`edgetune export`) and open the merged model",
        dir.display()
    ))
}

#[cfg(not(feature = "train"))]
fn run_tasks(dir: &Path) -> Result<Vec<TaskInfo>, PredictError> {
    Err(no_runs(dir))
}

#[cfg(not(feature = "train"))]
fn open_run(
    dir: &Path,
    _backbone: Option<&Path>,
    _opts: &SessionOptions,
) -> Result<Box<dyn Predict + Send>, PredictError> {
    Err(no_runs(dir))
}
