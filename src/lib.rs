//! edgetune: adapt transformer models to new tasks on the edge device itself.
//!
//! The data flow, one module per stage:
//! text -> [`data`] (labelled examples) -> [`tokenize`] (sub-words aligned to words)
//! -> [`backbone`] (frozen ONNX encoder run by ONNX Runtime) -> [`features`] (content-addressed cache)
//! -> [`heads`] + [`train`] (candle) -> [`eval`] / [`infer`] -> [`onnx`] (merged export).

pub mod backbone;
pub mod data;
pub mod eval;
pub mod features;
pub mod fsutil;
pub mod heads;
pub mod infer;
pub mod onnx;
pub mod run;
pub mod tokenize;
pub mod train;
