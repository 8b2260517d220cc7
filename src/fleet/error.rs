//! Errors of taking part in a fleet.

use std::path::PathBuf;

use crate::run::RunError;
use crate::serve::ServeError;
use crate::train::TrainError;

/// Why a fleet client could not join, or a round failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The SuperLink could not be reached, or broke the connection.
    #[error("SuperLink {address}: {message}")]
    Link {
        /// `HOST:PORT`.
        address: String,
        /// What went wrong.
        message: String,
    },
    /// The SuperLink answered something that is not the Fleet API of the pinned Flower version.
    #[error("SuperLink {address}: {message}")]
    Protocol {
        /// `HOST:PORT`.
        address: String,
        /// What was wrong with the answer.
        message: String,
    },
    /// The server's fleet task spec does not fit this device's run.
    #[error("the fleet's task spec does not fit this device's run {run}: {message}")]
    Spec {
        /// The device's run.
        run: PathBuf,
        /// Which part differs, both values.
        message: String,
    },
    /// A message from the server is malformed (missing record, bad array).
    #[error("message {message_id} ({message_type}): {message}")]
    Message {
        /// The Flower message id.
        message_id: String,
        /// Its type (`train`, `evaluate`, ...).
        message_type: String,
        /// What is wrong.
        message: String,
    },
    /// The run could not be read or written.
    #[error(transparent)]
    Run(#[from] RunError),
    /// Local training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The run's service folder (journal, versions) failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// A file of the client failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Options that do not fit each other or the run.
    #[error("{0}")]
    Config(String),
}

impl FleetError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> FleetError {
        let path = path.into();
        move |source| FleetError::Io { path, source }
    }
}

impl From<candle_core::Error> for FleetError {
    fn from(e: candle_core::Error) -> Self {
        FleetError::Train(TrainError::from(e))
    }
}

impl From<crate::features::FeatureError> for FleetError {
    fn from(e: crate::features::FeatureError) -> Self {
        FleetError::Train(TrainError::from(e))
    }
}
