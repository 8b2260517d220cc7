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
}
