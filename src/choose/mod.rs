//! `edgetune choose`: which backbone (and how many unfrozen layers) to put on this board,
//! answered by measurement.
//!
//! For each candidate the same (optionally `--limit`ed) data is trained on with frozen heads (or
//! `--unfreeze-top N`), the run exported as the merged model the board would run, and that model
//! measured on this device: validation scores per task, batch-1 p50/p99 latency, cold start, peak
//! RSS while answering and while training, model bytes, extraction throughput. Every step runs in
//! a child `edgetune` process, so each figure is that process's own (peak RSS from `wait4`, cold
//! start from spawning the child to its first answer). Limits (`--max-latency`, `--max-memory`,
//! `--max-size`) rule candidates out, and the best validation score within them is recommended.
//!
//! - [`candidates`]: what is compared (backbones x unfrozen layers) and their names;
//! - [`child`]: running an `edgetune` child with its output streamed and its peak RSS;
//! - [`measure`]: the measuring children's own work (answering, extraction);
//! - [`job`]: the whole comparison, step by step, with progress and an ETA;
//! - [`summary`]: limits, the Pareto front, the recommendation, the table, JSON and picture.

pub mod candidates;
pub mod child;
pub mod error;
pub mod job;
pub mod measure;
pub mod summary;

pub use candidates::{parse_backbones, Candidate};
pub use error::ChooseError;
pub use job::{choose, ChooseOptions};
pub use measure::{measure_answers, measure_extraction, AnswerFigures, ExtractionFigures};
pub use summary::{CandidateResult, Choice, Limits};
