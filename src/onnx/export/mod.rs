//! The merged export: a run into one ONNX model (backbone, word pooling, every task head), self-
//! checked against the training pipeline.
//!
//! - [`heads`]: the heads as ONNX nodes; [`merge`]: the whole graph and its metadata;
//! - [`splice`]: fine-tuned top layers into the backbone; [`verify`]: the self-check;
//! - [`job`]: [`export_run`], the command's whole work; [`error`]: [`ExportError`].

pub mod error;
pub mod heads;
pub mod job;
pub mod merge;
pub mod splice;
pub mod verify;

pub use error::ExportError;
pub use job::{export_run, ExportOptions, ExportReport, INT8_MIN_AGREEMENT, TOLERANCE};
pub use merge::{build_merged, MergeSpec};
pub use splice::{build_top_layers, splice_top_layers};
pub use verify::{verify, VerifyReport, SAMPLE_SENTENCES};
