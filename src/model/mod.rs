//! The task model: optional unfrozen top backbone layers, then one head per named task, on the
//! cached features.
//!
//! - [`config`]: the architecture (a run's `config.json` holds it), validated before building;
//! - [`batch`]: padded batches, the model's input;
//! - [`heads`]: the sentence head and the token head;
//! - [`top`]: the unfrozen layers and how the heads read them;
//! - [`task_model`]: the model and its forward pass;
//! - [`decode`]: from logits to labels.

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
pub use decode::{argmax, bio_viterbi, decode_batch, to_labels, token_ids, Decoded, TaskOutput};
pub use heads::{Head, SentenceHead, TokenHead};
pub use task_model::{TaskLogits, TaskModel};
pub use top::{Unfrozen, LAYER_DROPOUT};
