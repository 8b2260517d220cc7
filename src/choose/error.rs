//! Errors of `edgetune choose`.

use std::path::PathBuf;

/// What can stop a comparison (a failing candidate does not: it is reported with its error).
#[derive(Debug, thiserror::Error)]
pub enum ChooseError {
    /// A flag or the candidates are not usable; says which.
    #[error("{0}")]
    Invalid(String),
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The data could not be read.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// A backbone could not be found.
    #[error(transparent)]
    Backbone(#[from] crate::backbone::BackboneError),
    /// A measurement failed (in the measuring child).
    #[error("{0}")]
    Measure(String),
    /// The picture could not be drawn.
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
}

impl ChooseError {
    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        ChooseError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
