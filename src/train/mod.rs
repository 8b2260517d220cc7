//! Training the heads (and, optionally, the top backbone layers) on cached features.
//!
//! One epoch reads only the feature cache. Parameters are grouped ([`crate::nn::Group`]); a frozen
//! group gets no optimizer update (and is not even run when its loss does not matter). Every epoch
//! ends with a validation pass (early stopping keeps the best weights) and an atomic checkpoint, so
//! a killed run continues with `--resume` to the same result as an uninterrupted one.
//!
//! - [`settings`]: the settings and their defaults;
//! - [`data`]: batches and targets from the cache;
//! - [`init`]: the model training starts from, and what is frozen;
//! - [`schedule`]: example order and learning rates;
//! - [`fit`]: a run from start to finish (prepare, the epochs, finish); `epoch`: one epoch's
//!   steps, validation and checkpoint; [`session`]: what the epochs read and update; [`log`]: the
//!   one-line metrics, why training stopped, the profile; [`predict`]: labels from cached features;
//! - [`plots`]: the run's pictures and `report.html`;
//! - [`memory`]: the plan and `--max-memory`; [`checkpoint`], [`optim`].

pub mod checkpoint;
pub mod data;
mod epoch;
pub mod error;
pub mod fit;
pub mod init;
pub mod log;
pub mod memory;
pub mod optim;
pub mod plots;
pub mod predict;
pub mod schedule;
pub mod session;
pub mod settings;

pub use data::SplitData;
pub use error::TrainError;
pub use fit::{head_states, lock_run, train, TrainJob, TrainOutcome};
pub use init::{plan_model, Start};
pub use log::{fmt_metrics, stop_reason};
pub use memory::{fit_memory, plan, Plan};
pub use predict::predict_split;
pub use settings::{
    auto_epochs, default_heads, default_states, SettingError, TrainSettings, AUTO_STEPS,
};
