//! Import of Hugging Face BERT-family encoders (config.json + model.safetensors + tokenizer.json)
//! into an fp32 ONNX graph of standard operators, self-verified against an independent candle
//! implementation on the same weights. Supported: BERT, RoBERTa / XLM-R and MPNet
//! ([`crate::hf::Architecture`]), whole or cut to their first K layers.
//!
//! Output directory layout: `backbone.onnx`, `tokenizer.json`, `manifest.json`.

pub mod embeddings;
pub mod encoder;
pub mod job;
pub mod manifest;
pub mod ops;
pub mod reference;
pub mod relative;
pub mod verify;

pub use encoder::{build_encoder_graph, encoder_layer, LayerConstants};
pub use job::{import, parse_hidden_states, ImportOptions, ImportReport};
pub use manifest::{Manifest, BACKBONE_FILE, INT8_FILE, MANIFEST_FILE, TOKENIZER_FILE};
pub use reference::candle_reference;
pub use verify::{
    reference_name, verify_against_candle, Verification, VERIFY_SENTENCES, VERIFY_TOLERANCE,
};
