//! edgetune: adapt transformer models to new tasks on the edge device itself.
//!
//! The data flow, one module per stage, imports running one way (see `docs/architecture.md`):
//! [`data`] (labelled examples, named tasks) -> [`metrics`] (scores) -> [`report`] (pictures of
//! scores, training curves and quantization fidelity, `report.html`) -> [`tokenize`] (sub-words
//! aligned to words) -> [`backbone`] (frozen ONNX encoder run by ONNX Runtime) -> [`features`]
//! (content-addressed cache) -> [`model`] (heads and unfrozen layers in candle) -> [`run`] (a trained
//! run on disk) -> [`train`] -> [`eval`] / [`infer`] -> [`onnx`] (import, quantize, merged export and
//! runtime) -> [`inspect`] (what a run, a model folder or a merged model holds) -> [`device`]
//! (actions on GPIO, PWM and I2C, the serial line) -> [`serve`] (the long-running service) ->
//! [`fleet`] (federated rounds on Flower).
//!
//! Under the stages, used by any of them: [`fsutil`] (atomic files, hashes), [`sys`] (process
//! facts), [`progress`] (progress bars and log lines of long steps), [`graph`] (the ONNX format),
//! [`nn`] (candle building blocks and fused kernels), [`hf`] (Hugging Face checkpoints).

pub mod fsutil;
pub mod graph;
pub mod hf;
pub mod nn;
pub mod progress;
pub mod sys;

pub mod backbone;
pub mod data;
pub mod device;
pub mod eval;
pub mod features;
pub mod fleet;
pub mod infer;
pub mod inspect;
pub mod metrics;
pub mod model;
pub mod onnx;
pub mod report;
pub mod run;
pub mod serve;
pub mod tokenize;
pub mod train;
