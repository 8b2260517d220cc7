//! Errors of evaluating a run.

use crate::features::FeatureError;
use crate::train::TrainError;

/// Errors of [`super::evaluate_run`]: the split's features or the model's predictions.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Extracting or reading the split's features failed.
    #[error(transparent)]
    Features(#[from] FeatureError),
    /// Predicting from the features failed.
    #[error(transparent)]
    Predict(#[from] TrainError),
    /// A merged model's prediction failed.
    #[error(transparent)]
    Answer(#[from] crate::predict::PredictError),
    /// The data has none of the model's tasks.
    #[error("{data}: the data's tasks ({data_tasks}) and the tasks of the {model} ({model_tasks}) have none in common; nothing to score")]
    NoSharedTask {
        /// The data file or folder.
        data: String,
        /// The data's tasks, comma-separated.
        data_tasks: String,
        /// `run` or `merged model`, and its path.
        model: String,
        /// The model's tasks, comma-separated.
        model_tasks: String,
    },
}
