//! Training: gradients, the task model, top layers, training runs (cached features and the real backbone), freezing, resume, the run folder and evaluation metrics.
//!
//! One test binary for this stage of the flow (see `tests/README.md`): each module is a former
//! `tests/NAME.rs` binary, its tests named `NAME::test`.

#[path = "../support/mod.rs"]
mod support;

mod freezing;
mod grad_tests;
mod metrics;
mod mpnet_layers;
mod multi_task;
mod resume;
mod run_format;
mod task_model;
mod top_layers;
mod top_layers_minilm;
mod train_cached;
mod unfreeze;
