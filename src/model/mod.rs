//! The task model: optional unfrozen top backbone layers, then one head per named task, on the
//! cached features.
//!
//! - [`config`]: the architecture (a run's `config.json` holds it), validated before building;
//! - [`batch`]: padded batches, the model's input;
//! - [`heads`]: the sentence head and the token head;
//! - [`top`]: the unfrozen layers and how the heads read them;
//! - [`task_model`]: the model and its forward pass;
//! - [`decode`]: the heads' outputs as decoded values (labels come from [`crate::predict`]).

pub mod batch;
pub mod config;
pub mod decode;
pub mod heads;
pub mod task_model;
pub mod top;

pub use batch::{make_batch, make_token_batch, Batch, TokenBatch};
pub use config::{
    HeadConfig, ModelConfig, SentenceHeadConfig, TaskConfig, TokenHeadConfig, DEFAULT_DROPOUT,
    DEFAULT_GRU_UNITS, DEFAULT_MLP_WIDTH,
};
pub use decode::{decode_batch, decode_examples, DecodeError};
// The decoding the task model shares with merged models lives in `predict` (candle-free); these
// names stay reachable here for the training code that reads them with the model.
pub use crate::predict::{argmax, bio_viterbi, to_labels, token_ids, Decoded, TaskOutput};
pub use heads::{Head, SentenceHead, TokenHead};
pub use task_model::{TaskLogits, TaskModel};
pub use top::{Unfrozen, LAYER_DROPOUT};
