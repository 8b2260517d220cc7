//! edgetune: adapt transformer models to new tasks on the edge device itself.
//!
//! # Embedding
//!
//! The supported API is re-exported here. Without default features the crate is the inference
//! core: open a merged model (`edgetune export`'s output) and predict with it, with ONNX Runtime
//! and a tokenizer and nothing of training (`cargo build --lib --no-default-features`):
//!
//! ```no_run
//! use edgetune::{MergedModel, Predict, SessionOptions};
//!
//! # fn main() -> Result<(), edgetune::PredictError> {
//! let mut model = MergedModel::open("model.onnx".as_ref(), &SessionOptions::with_threads(1))?;
//! let p = model.predict("turn on the light in the kitchen")?;
//! if let Some((intent, prob)) = p.intent() {
//!     println!("{intent} ({prob:.2})");
//! }
//! for slot in p.slots() {
//!     println!("{}: {}", slot.kind, slot.text);
//! }
//! println!("{}", serde_json::to_string(&p).unwrap()); // `infer`'s JSON answer
//! # Ok(())
//! # }
//! ```
//!
//! `examples/embed.rs` runs it. With the feature `train` (a default), [`RunPredictor`] answers
//! with a trained run, and [`ModelPath`] opens either kind as a `Box<dyn Predict>`.
//!
//! # Modules
//!
//! The data flow, one module per stage, imports running one way (see `docs/architecture.md`):
//! [`data`] (labelled examples, named tasks) -> [`metrics`] (scores) -> `report` (pictures of
//! scores, training curves and quantization fidelity, `report.html`) -> [`tokenize`] (sub-words
//! aligned to words) -> [`backbone`] (frozen ONNX encoder run by ONNX Runtime) -> [`predict`] (from
//! probabilities to labels, the typed prediction and its JSON, the `Predict` trait) -> `features`
//! (content-addressed cache) -> `model` (heads and unfrozen layers in candle) -> `run` (a trained
//! run on disk) -> `train` -> `eval` -> [`onnx`] (import, quantize, merged export, and the merged
//! model) -> [`infer`] (answering lines with a run or a merged model) -> `inspect` (what a run, a
//! model folder or a merged model holds) -> `choose` (backbones compared by measurement on this
//! device) -> `device` (actions on GPIO, PWM and I2C, the serial
//! line) -> `serve` (the long-running service) -> `fleet` (federated rounds on Flower).
//!
//! Under the stages, used by any of them: [`fsutil`] (atomic files, hashes), [`sys`] (process
//! facts), `progress` (progress bars and log lines of long steps), [`graph`] (the ONNX format),
//! `nn` (candle building blocks and fused kernels), `hf` (Hugging Face checkpoints).
//!
//! Features: `train` (candle: everything from `features` to `eval`, `report`, `inspect`, the
//! import, quantize and export parts of `onnx`, the run predictor), `device` (embedded-hal),
//! `serve` (`train` + `device`), `linux` (real devices), `cli` (the `edgetune` binary); the
//! defaults are `cli` and `linux`.

#![warn(missing_docs)]

pub mod fsutil;
pub mod graph;
#[cfg(feature = "train")]
pub mod hf;
#[cfg(feature = "train")]
#[allow(missing_docs)] // Items of its own still undocumented; the lint is on everywhere else.
pub mod nn;
#[cfg(feature = "train")]
pub mod progress;
pub mod sys;

pub mod backbone;
#[cfg(feature = "train")]
pub mod choose;
pub mod data;
#[cfg(feature = "device")]
pub mod device;
#[cfg(feature = "train")]
pub mod eval;
#[cfg(feature = "train")]
#[allow(missing_docs)] // Items of its own still undocumented; the lint is on everywhere else.
pub mod features;
#[cfg(feature = "serve")]
pub mod fleet;
pub mod infer;
#[cfg(feature = "train")]
pub mod inspect;
pub mod metrics;
#[cfg(feature = "train")]
pub mod model;
pub mod onnx;
pub mod predict;
#[cfg(feature = "train")]
pub mod report;
#[cfg(feature = "train")]
#[allow(missing_docs)] // Items of its own still undocumented; the lint is on everywhere else.
pub mod run;
#[cfg(feature = "serve")]
pub mod serve;
pub mod tokenize;
#[cfg(feature = "train")]
pub mod train;

pub use backbone::{init_runtime, SessionOptions, Spinning};
pub use data::{TaskInfo, TaskKind};
pub use infer::ModelPath;
#[cfg(feature = "train")]
pub use infer::RunPredictor;
pub use onnx::merged::MergedModel;
pub use predict::{Predict, PredictError, Prediction, SlotSpan, TaskPrediction, Unanswered};
