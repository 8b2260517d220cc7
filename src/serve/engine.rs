//! The model that answers: a run (backbone + task model) or a merged model, loaded once; for a
//! run, its heads are replaced by retrained ones between two requests.

use std::collections::BTreeMap;
use std::path::Path;

use super::error::ServeError;
use crate::backbone::SessionOptions;
use crate::data::{TaskInfo, TaskKind};
use crate::infer::{ModelPath, RunPredictor};
use crate::metrics::Metrics;
use crate::model::TaskModel;
use crate::onnx::merged::MergedModel;
use crate::predict::{Predict, Prediction};
use crate::run::RunConfig;

/// A predictor the service answers with: any [`Predict`]; a run's can take retrained heads.
pub trait Served: Predict + Send {
    /// Replaces the task model by a retrained one of the same run layout; `false` when this model
    /// cannot take heads (a merged model).
    fn replace_heads(&mut self, rc: RunConfig, model: TaskModel) -> bool;
}

impl Served for RunPredictor {
    fn replace_heads(&mut self, rc: RunConfig, model: TaskModel) -> bool {
        self.replace_model(rc, model);
        true
    }
}

impl Served for MergedModel {
    fn replace_heads(&mut self, _rc: RunConfig, _model: TaskModel) -> bool {
        false
    }
}

/// The serving model and what `stats` reports about it.
pub struct Engine {
    predictor: Box<dyn Served>,
    /// 0 for the model given on the command line, N for the N-th swapped one.
    pub version: u64,
    /// The run folder (or merged-model file) answering.
    pub model: ModelPath,
    /// Its recorded metrics by split (a run's `config.json`; empty for a merged model).
    pub metrics: BTreeMap<String, Metrics>,
    /// Its tasks, in output order.
    pub tasks: Vec<TaskInfo>,
}

impl Engine {
    /// Loads `model` (`version`: its version number; `backbone`: a run's backbone override).
    pub fn open(
        model: &ModelPath,
        version: u64,
        backbone: Option<&Path>,
        opts: &SessionOptions,
    ) -> Result<Self, ServeError> {
        let (predictor, metrics): (Box<dyn Served>, _) = match model {
            ModelPath::Run(dir) => {
                let p = RunPredictor::open(dir, backbone, opts)?;
                let metrics = p.rc.metrics.clone();
                (Box::new(p), metrics)
            }
            ModelPath::Merged(path) => (Box::new(MergedModel::open(path, opts)?), BTreeMap::new()),
        };
        Ok(Self {
            version,
            model: model.clone(),
            metrics,
            tasks: predictor.tasks().to_vec(),
            predictor,
        })
    }

    /// The prediction of `text` (with each sentence task's logits, which the JSON answer writes
    /// on request).
    pub fn predict(&mut self, text: &str) -> Result<Prediction, ServeError> {
        Ok(self.predictor.predict(text)?)
    }

    /// Replaces the task model by a retrained one (same backbone, same tasks), now answering from
    /// the run folder `dir` as version `version`.
    pub fn swap(&mut self, rc: RunConfig, model: TaskModel, version: u64, dir: &Path) {
        let metrics = rc.metrics.clone();
        if self.predictor.replace_heads(rc, model) {
            self.metrics = metrics;
            self.tasks = self.predictor.tasks().to_vec();
            self.version = version;
            self.model = ModelPath::Run(dir.to_path_buf());
        }
    }
}

/// The first sentence task (whose probability decides `"unknown"`), if any.
pub fn intent_task(tasks: &[TaskInfo]) -> Option<&TaskInfo> {
    tasks.iter().find(|t| t.kind == TaskKind::Sentence)
}
