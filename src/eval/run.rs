//! A finished run on a split: its features (from the cache, extracted on a miss), its model's
//! predictions, and their scores per task.

use super::error::EvalError;
use crate::data::{Split, TaskInfo};
use crate::features::FeatureContext;
use crate::metrics::{evaluate, EvalReport};
use crate::model::TaskModel;
use crate::run::RunConfig;
use crate::train::{predict_split, SplitData};

/// The result of [`evaluate_run`].
pub struct RunEval {
    /// Scores and details per task.
    pub report: EvalReport,
    /// Examples whose tokens were truncated at the run's token limit.
    pub truncated: usize,
}

/// Evaluates a run's model on `split`: the tasks the split has are scored, the others left out.
pub fn evaluate_run(
    rc: &RunConfig,
    model: &TaskModel,
    split: &Split,
    ctx: &mut FeatureContext,
) -> Result<RunEval, EvalError> {
    let feats = ctx.load_or_extract(split, &rc.features)?;
    let truncated = feats.meta.truncated.len();
    let data = SplitData { split, feats };
    let preds = predict_split(model, &data, 128)?;
    let tasks: Vec<TaskInfo> = model.config.tasks.iter().map(|t| t.info()).collect();
    Ok(RunEval {
        report: evaluate(&split.examples, &preds, &tasks),
        truncated,
    })
}
