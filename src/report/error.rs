//! Error type of the report module.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while drawing or writing a report.
///
/// Input data never causes a panic: odd data (empty lists, NaN, zero counts)
/// is drawn as such, and only data that cannot be interpreted at all (for
/// example a confusion matrix with more rows than labels) is rejected with
/// [`ReportError::InvalidInput`].
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file-system operation failed; `path` names the file or folder.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was attempted ("write", "create directory", "rename", "read").
        action: &'static str,
        /// The file or folder the operation was about.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// The chart input cannot be interpreted (shape mismatch and the like).
    #[error("invalid chart input: {0}")]
    InvalidInput(String),
    /// The plotting backend reported an error while drawing.
    #[error("rendering {format} failed: {message}")]
    Render {
        /// "SVG" or "PNG".
        format: &'static str,
        /// The backend's message.
        message: String,
    },
    /// The embedded font could not be loaded or registered.
    #[error("font error: {0}")]
    Font(String),
    /// Serialising a JSON sidecar failed.
    #[error("cannot encode JSON sidecar: {0}")]
    Json(#[from] serde_json::Error),
}

impl ReportError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        ReportError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Result alias used throughout the report module.
pub type Result<T, E = ReportError> = std::result::Result<T, E>;
