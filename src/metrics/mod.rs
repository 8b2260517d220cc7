//! Scores: accuracy for sentence tasks, conlleval span F1 for BIO tasks, per-token accuracy for
//! other token tasks, and the all-tasks accuracy. Used by training (validation, early stopping)
//! and by evaluation.

pub mod prf;
pub mod score;
pub mod spans;

pub use prf::Prf;
pub use score::{evaluate, EvalReport, Metrics, TaskReport, TaskScore, NO_PREDICTION};
pub use spans::{spans, Span};
