//! A finished run on a split: its features (from the cache, extracted on a miss), its model's
//! predictions, and their scores per task.

use super::error::EvalError;
use crate::data::{Split, TaskInfo};
use crate::features::FeatureContext;
use crate::metrics::{evaluate, EvalReport};
use crate::model::TaskModel;
use crate::predict::Predict;
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

/// Refuses a split that shares no task with the model (`model`: its kind and path, for the
/// message); such an evaluation would score nothing.
pub fn check_shared_tasks(
    split: &Split,
    model: &str,
    model_tasks: &[TaskInfo],
) -> Result<(), EvalError> {
    let data: Vec<String> = split.tasks().into_iter().map(|t| t.name).collect();
    if model_tasks.iter().any(|t| data.contains(&t.name)) {
        return Ok(());
    }
    let names: Vec<&str> = model_tasks.iter().map(|t| t.name.as_str()).collect();
    Err(EvalError::NoSharedTask {
        data: split.source.display().to_string(),
        data_tasks: if data.is_empty() {
            "none".into()
        } else {
            data.join(", ")
        },
        model: model.to_string(),
        model_tasks: names.join(", "),
    })
}

/// Evaluates any predictor (a merged model: the file actually deployed) on `split` with the same
/// metrics as [`evaluate_run`]: each example's words, joined by spaces, are one line.
pub fn evaluate_predictor(
    predictor: &mut dyn Predict,
    split: &Split,
) -> Result<RunEval, EvalError> {
    const CHUNK: usize = 64;
    let lines: Vec<String> = split.examples.iter().map(|e| e.words.join(" ")).collect();
    let mut preds = Vec::with_capacity(lines.len());
    let mut truncated = 0;
    for chunk in lines.chunks(CHUNK) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        for p in predictor.predict_batch(&refs)? {
            truncated += usize::from(p.truncated);
            preds.push(p.labels());
        }
    }
    let tasks = predictor.tasks().to_vec();
    Ok(RunEval {
        report: evaluate(&split.examples, &preds, &tasks),
        truncated,
    })
}
