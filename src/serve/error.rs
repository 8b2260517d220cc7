//! Errors of starting and running the service.

use std::path::PathBuf;

use crate::device::{ConfigError, OpenError, StartError};
use crate::predict::PredictError;
use crate::run::RunError;
use crate::train::TrainError;

/// Why the service could not start, or a part of it failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The run could not be read.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The model could not be loaded, or could not answer.
    #[error(transparent)]
    Predict(#[from] PredictError),
    /// Retraining failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The actions file is invalid (or does not fit the model).
    #[error(transparent)]
    Actions(#[from] ConfigError),
    /// A device of the actions file could not be opened.
    #[error(transparent)]
    Devices(#[from] StartError),
    /// The status LED, feedback button or serial port could not be opened.
    #[error("{what}: {source}")]
    Device {
        /// The device and its flag, e.g. `--status-led gpiochip0:22`.
        what: String,
        /// The backend's error.
        source: OpenError,
    },
    /// A file or socket of the service failed.
    #[error("{path}: {source}")]
    Io {
        /// The file, folder or socket address.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file of the service (journal, model pointer) is damaged.
    #[error("{path}: {message}")]
    Corrupt {
        /// The file (with `:LINE` for a journal line).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An entry could not be journalled: the disk or the journal's cap is full. Nothing was
    /// acknowledged, and the journal holds only complete entries.
    #[error("{path}: {message}")]
    Full {
        /// The journal.
        path: PathBuf,
        /// What is full.
        message: String,
    },
    /// A correction that cannot be learned as given (the service's correction check).
    #[error("{0}")]
    Rejected(String),
    /// Options that do not fit the model or each other.
    #[error("{0}")]
    Config(String),
}

impl ServeError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ServeError {
        let path = path.into();
        move |source| ServeError::Io { path, source }
    }
}
