//! The merged model as a library: the contract of `edgetune export`'s output (inputs, outputs,
//! metadata keys; `contract`), running its session on a batch (`session`) and [`MergedModel`],
//! which answers with it (`infer --model`, `bench`, `serve`, embedders; `model`). The contract is
//! written out for other languages in `docs/merged-model.md`, with a reference client in
//! `examples/python/`.
//!
//! Inputs (`B` batch, `T` tokens, `W` words):
//! - `input_ids`, `attention_mask` (and `token_type_ids` when the backbone has it): int64
//!   `[B, T]`, padded with the pad id of metadata `edgetune.pad_id`;
//! - `word_pool`: float `[B, W, T]`; row `w` holds `1/n` at the `n` sub-tokens of word `w` (all
//!   zero for padding words and words cut by truncation): built from the tokenizer's word ids of
//!   the pre-tokenized words ([`MergedInputs::new`]);
//! - `word_mask`: float `[B, W]`, 1 for words with sub-tokens.
//!
//! Words are the line split on Unicode whitespace; tokens are truncated at `edgetune.max_tokens`
//! (words left without a token keep an empty range and decode to the task's first label).
//!
//! Outputs, per task `NAME` of metadata `edgetune.tasks` (`[{name, kind, labels}]`, the index of a
//! label being its class id): `NAME_logits` and `NAME_probs` (`[B, classes]` for a sentence task,
//! `[B, W, classes]` for a token task) and the arg-max `NAME_id` (int64 `[B]`) or `NAME_ids`
//! (int64 `[B, W]`). The token task `tags` is also output as `slot_logits`, `slot_probs`,
//! `slot_ids` (the names of format 1). Other metadata: `edgetune.format_version`,
//! `edgetune.tokenizer_sha256`, `edgetune.max_tokens`, `edgetune.pad_id`, `edgetune.states`.
//!
//! `*_ids` is the plain arg-max: span tasks are decoded outside the graph with the BIO-constrained
//! Viterbi of [`crate::predict::bio_viterbi`] (log-probabilities in f64 of the f32 probabilities
//! floored at 1e-12; the lowest tag id wins ties), and their chunks read with conlleval's rules.
//! A dynamic-int8 backbone quantizes activations per batch, so results depend on the batching:
//! [`MergedModel::decode`] runs length-sorted batches.

mod contract;
mod model;
mod session;

pub use contract::{
    output_names, MergedMeta, FORMAT_VERSION, MAX_MODEL_BYTES, META_FORMAT, META_INTENTS,
    META_MAX_TOKENS, META_PAD_ID, META_STATES, META_TAGS, META_TASKS, META_TOKENIZER_SHA,
};
pub use model::{MergedModel, OpenTimings};
pub use session::{decode_outputs, run_merged, MergedInputs, TaskArrays};
