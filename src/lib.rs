//! edgetune: adapt transformer models to new tasks on the edge device itself.
//!
//! The data flow, one module per stage, imports running one way (see `docs/architecture.md`):
//! [`data`] (labelled examples, named tasks) -> [`metrics`] (scores) -> [`tokenize`] (sub-words
//! aligned to words) -> [`backbone`] (frozen ONNX encoder run by ONNX Runtime) -> [`features`]
//! (content-addressed cache) -> [`model`] (heads and unfrozen layers in candle) -> [`run`] (a trained
//! run on disk) -> [`train`] -> [`eval`] / [`infer`] -> [`onnx`] (import, quantize, merged export and
//! runtime) -> [`device`] (actions on GPIO, PWM and I2C, the serial line) -> [`serve`] (the
//! long-running service).
//!
//! Under the stages, used by any of them: [`fsutil`] (atomic files, hashes), [`sys`] (process
//! facts), [`graph`] (the ONNX format), [`nn`] (candle building blocks and fused kernels), [`hf`]
//! (Hugging Face checkpoints).

pub mod fsutil;
pub mod graph;
pub mod hf;
pub mod nn;
pub mod sys;

pub mod data;
pub mod metrics;
pub mod tokenize;
pub mod backbone;
pub mod features;
pub mod model;
pub mod run;
pub mod train;
pub mod eval;
pub mod infer;
pub mod onnx;
pub mod device;
pub mod serve;
