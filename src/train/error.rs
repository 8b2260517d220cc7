//! Errors of training.

use crate::data::DataError;
use crate::features::FeatureError;
use crate::run::RunError;

/// Errors of training: each names what is wrong and, for bad settings, the flag or file.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Extracting or reading features failed.
    #[error(transparent)]
    Features(#[from] FeatureError),
    /// Reading or writing the run or its checkpoint failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The data does not fit the settings (e.g. `--tasks` names a missing task).
    #[error(transparent)]
    Data(#[from] DataError),
    /// A tensor computation failed.
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// A setting outside its range, or not fitting the backbone (names the setting).
    #[error("setting {0}")]
    Setting(#[from] crate::run::SettingError),
    /// Settings that do not fit the data, the backbone or the `--init-from` run.
    #[error("{0}")]
    Config(String),
    /// Writing the run's pictures or report page failed.
    #[error("run report: {0}")]
    Report(#[from] crate::report::ReportError),
    /// Training diverged (a non-finite loss or weight).
    #[error("{0}")]
    Diverged(String),
}
