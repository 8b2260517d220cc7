//! Evaluating a finished run on a split: features from the cache (extracted on a miss), the model's
//! predictions, scores per task ([`crate::metrics`]) and a readable report.
//!
//! - [`run`]: [`evaluate_run`], [`evaluate_predictor`] (a merged model), [`check_shared_tasks`]; [`render`]: the aligned table of `eval`; [`error`]: [`EvalError`].

pub mod error;
mod render;
pub mod run;

pub use error::EvalError;
pub use render::render_table;
pub use run::{check_shared_tasks, evaluate_predictor, evaluate_run, RunEval};
