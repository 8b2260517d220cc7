//! Import of Hugging Face BERT-family encoders (config.json + model.safetensors + tokenizer.json)
//! into an fp32 ONNX graph of standard operators, self-verified against candle-transformers'
//! `BertModel` on the same weights.
//!
//! Output directory layout: `backbone.onnx`, `tokenizer.json`, `manifest.json`.

pub mod bert;
pub mod job;
pub mod manifest;
pub mod verify;

pub use bert::{bert_layer, build_bert_graph, LayerConstants};
pub use job::{import, parse_hidden_states, ImportOptions, ImportReport};
pub use manifest::{Manifest, BACKBONE_FILE, INT8_FILE, MANIFEST_FILE, TOKENIZER_FILE};
pub use verify::{
    candle_reference, verify_against_candle, Verification, VERIFY_SENTENCES, VERIFY_TOLERANCE,
};
