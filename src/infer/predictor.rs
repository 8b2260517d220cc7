//! Inference with a trained run: features straight from the backbone (no cache), the task model,
//! decoding to predictions.

use std::path::Path;

use crate::backbone::{Backbone, SessionOptions};
use crate::data::TaskInfo;
use crate::model::{decode_examples, DecodeError, TaskModel};
use crate::predict::{predict_lines, Decoded, Predict, PredictError, Prediction, BATCH};
use crate::run::{self, RunConfig, RunError};
use crate::tokenize::{Tokenized, WordTokenizer};

impl From<RunError> for PredictError {
    fn from(e: RunError) -> Self {
        PredictError::Run(Box::new(e))
    }
}

impl From<DecodeError> for PredictError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::Backbone(e) => PredictError::Backbone(e),
            e @ DecodeError::Tensor(_) => PredictError::Run(Box::new(e)),
        }
    }
}

/// A run loaded for inference: its model, its backbone and tokenizer.
pub struct RunPredictor {
    /// The run's config.
    pub rc: RunConfig,
    /// The task model.
    pub model: TaskModel,
    /// The tasks as the predictions name them.
    pub tasks: Vec<TaskInfo>,
    /// The run's tokenizer, truncating at its token limit.
    pub tokenizer: WordTokenizer,
    backbone: Backbone,
}

impl RunPredictor {
    /// Loads the run in `dir` and its backbone (`backbone`: an override, which must be the file the
    /// run was trained on).
    pub fn open(
        dir: &Path,
        backbone: Option<&Path>,
        opts: &SessionOptions,
    ) -> Result<Self, PredictError> {
        let (rc, model) = run::load_run(dir)?;
        Self::new(rc, model, backbone, opts)
    }

    /// A predictor for an already loaded run.
    pub fn new(
        rc: RunConfig,
        model: TaskModel,
        backbone: Option<&Path>,
        opts: &SessionOptions,
    ) -> Result<Self, PredictError> {
        let files = run::backbone_files(&rc, backbone)?;
        let tokenizer = WordTokenizer::from_file(&files.tokenizer, Some(rc.backbone.max_tokens))?;
        let mut states = rc.features.states.clone();
        if !states.contains(&rc.backbone.layers) {
            states.push(rc.backbone.layers);
        }
        let backbone = Backbone::load(&files, &states, tokenizer.pad_id(), opts)?;
        let tasks = model.config.tasks.iter().map(|t| t.info()).collect();
        Ok(Self {
            rc,
            model,
            tasks,
            tokenizer,
            backbone,
        })
    }

    /// Swaps in another model of the same run layout (new heads after retraining).
    pub fn replace_model(&mut self, rc: RunConfig, model: TaskModel) {
        self.tasks = model.config.tasks.iter().map(|t| t.info()).collect();
        self.rc = rc;
        self.model = model;
    }

    /// Runs the backbone and the model over tokenized examples in length-sorted batches; returns
    /// the decoded outputs and per-example kept-word flags, in input order.
    pub fn decode(
        &mut self,
        toks: &[Tokenized],
    ) -> Result<Vec<(Decoded, Vec<bool>)>, PredictError> {
        Ok(decode_examples(
            &mut self.backbone,
            &self.model,
            &self.rc.features.states,
            toks,
            BATCH,
        )?)
    }
}

impl Predict for RunPredictor {
    fn tasks(&self) -> &[TaskInfo] {
        &self.tasks
    }

    fn predict_batch(&mut self, texts: &[&str]) -> Result<Vec<Prediction>, PredictError> {
        let (backbone, model, states) = (&mut self.backbone, &self.model, &self.rc.features.states);
        predict_lines(texts, &self.tasks, &self.tokenizer, |batch| {
            let decoded = decode_examples(backbone, model, states, batch, BATCH)?;
            Ok(decoded.into_iter().map(|(d, _)| d).collect())
        })
    }
}
