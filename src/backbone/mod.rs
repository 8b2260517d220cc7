//! The frozen backbone: a BERT-style encoder in ONNX, run by ONNX Runtime.
//!
//! Any encoder with inputs `input_ids`, `attention_mask` (and optionally `token_type_ids`) and output
//! `last_hidden_state` works. Hidden states of lower layers are exposed as extra graph outputs at load
//! time (see [`crate::graph::expose_hidden_states`]); the file on disk is never changed.
//!
//! - [`runtime`]: finding and loading ONNX Runtime's library, session settings;
//! - [`files`]: where a backbone's files are;
//! - [`encoder`]: running the encoder for the hidden states the heads read;
//! - [`raw`]: running any encoder graph on raw token ids (checks and measurement);
//! - [`layers`]: the top transformer layers rebuilt in candle, trainable, for `--unfreeze-top N`.

pub mod encoder;
pub mod error;
pub mod files;
#[cfg(feature = "train")]
pub mod layers;
pub mod raw;
pub mod runtime;

pub use encoder::{Backbone, BatchStates};
pub use error::BackboneError;
pub use files::{
    find_default_model, find_models_dir, ModelFiles, DEFAULT_HF_DIR, DEFAULT_MODEL_DIR, MODEL_ENV,
};
pub use runtime::{
    default_threads, init as init_runtime, open_session, session_builder, RuntimeError,
    SessionError, SessionOptions, SessionSource, Spinning,
};
