//! The service's settings: every default declared once, here, with the reason for it.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::priority::Priority;

/// What the service answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelChoice {
    /// A run folder: answers with its backbone and task model, and can learn from corrections.
    Run(PathBuf),
    /// A merged model (`edgetune export`'s output, tokenizer.json beside it): answers only.
    Merged(PathBuf),
}

/// Settings of `edgetune serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The model.
    pub model: ModelChoice,
    /// Backbone override for a run (must be the one it was trained on).
    pub backbone: Option<PathBuf>,
    /// Threads of every pool (ONNX Runtime's intra-op pool, candle/rayon), for answering and for
    /// retraining alike.
    pub threads: usize,
    /// Answers whose intent probability (the first sentence task's) is below this get
    /// `"unknown": true`. See [`DEFAULT_MIN_PROB`].
    pub min_prob: f32,
    /// Read requests from standard input (answers on standard output).
    pub stdin: bool,
    /// Unix socket to listen on.
    pub socket: Option<PathBuf>,
    /// TCP address to listen on (loopback only).
    pub listen: Option<SocketAddr>,
    /// Serial port and baud rate to answer on (feature `linux`).
    pub serial: Option<(String, u32)>,
    /// Most clients connected at once (over the socket and TCP together); one more is answered
    /// with an error and closed.
    pub max_clients: usize,
    /// Retrain automatically after this many new corrections.
    pub retrain_every: Option<usize>,
    /// Memory budget of a retrain, in bytes ([`crate::train::fit_memory`]).
    pub max_memory: Option<usize>,
    /// The training data (default: the run's recorded `training.data`).
    pub data: Option<PathBuf>,
    /// Feature cache (default: [`crate::features::default_cache_dir`]).
    pub cache_dir: Option<PathBuf>,
    /// Largest drop of the held-out score a retrained model may have and still replace the
    /// serving one. See [`DEFAULT_SWAP_MARGIN`].
    pub swap_margin: f64,
    /// Epochs of a retrain. See [`DEFAULT_RETRAIN_EPOCHS`].
    pub retrain_epochs: usize,
    /// Copies of each correction among the training examples. See [`DEFAULT_CORRECTION_COPIES`].
    pub correction_copies: usize,
    /// Also write a merged model here after each swap (self-checked).
    pub export_on_swap: Option<PathBuf>,
    /// ONNX Runtime's intra-op threads spin while waiting for work. See
    /// [`DEFAULT_SPINNING`].
    pub spinning: bool,
    /// The retrain thread's priority. See [`DEFAULT_RETRAIN_PRIORITY`].
    pub retrain_priority: Priority,
}

/// Default of `--min-prob`: 0.8, the threshold that rejected more wrong answers than right ones on
/// both valid splits measured (docs/serve.md): on SNIPS valid it keeps 98.7% of the answers at
/// 99.28% precision (98.57% unfiltered), rejecting 5 wrong and 4 right ones, where 0.9 would
/// reject 14 right ones for one more wrong; on data/demo valid it rejects 1 of the 2 wrong answers
/// and 2 of the 78 right ones.
pub const DEFAULT_MIN_PROB: f32 = 0.8;

/// Default of `--swap-margin`: 0.02 of the held-out score ([`Metrics::score`], 0..1). Models of
/// the demo data that differ only in their seed (13 to 17) score 0.9708 to 0.9833 on its valid
/// split, and retrains with the default settings moved the score by -1.26 to +0.58 points
/// (docs/serve.md): a smaller margin would refuse models for noise. On a large valid split, where
/// the noise is smaller, a smaller margin can be given.
///
/// [`Metrics::score`]: crate::metrics::Metrics::score
pub const DEFAULT_SWAP_MARGIN: f64 = 0.02;

/// Default of `--retrain-epochs`: 4. From the serving heads, 2 epochs learned every correction
/// tried on the demo data and, with 8 copies, on SNIPS; 4 kept SNIPS' held-out score higher
/// (+0.58 points against +0.07) for about 3 s more on the demo data (docs/serve.md).
pub const DEFAULT_RETRAIN_EPOCHS: usize = 4;

/// Default of `--correction-copies`: 8. On SNIPS (13,084 training sentences) one copy of each of
/// 8 corrections left 3 of them unlearned after 2 epochs; 8 copies learned all 8 without a
/// held-out loss (docs/serve.md).
pub const DEFAULT_CORRECTION_COPIES: usize = 8;

/// Default intra-op spinning: off. `bench` on this 2-core machine (docs/serve.md): batch-1 p50
/// 2.5 to 3.1 ms without spinning, 6.7 to 10.5 ms with it, idle; 2.5 to 4.0 ms against 9.9 to
/// 10.4 ms with a retrain running at nice 19. Spinning threads only compete with the other work
/// for the cores, so neither state (idle or retraining) justifies them.
pub const DEFAULT_SPINNING: bool = false;

/// Default of `--retrain-priority`: nice 19. With `SCHED_IDLE` a demo retrain did not finish in
/// 300 s on this (shared, busy) machine, at nice 19 it took 88 s, at normal priority 15 s: the
/// idle class gives no guarantee of progress when anything else keeps the cores busy.
pub const DEFAULT_RETRAIN_PRIORITY: Priority = Priority::Nice;

/// Default of `--max-clients`.
pub const DEFAULT_MAX_CLIENTS: usize = 64;

impl ServeOptions {
    /// Options with every default for `model`, `threads` threads, reading standard input.
    pub fn new(model: ModelChoice, threads: usize) -> Self {
        Self {
            model,
            backbone: None,
            threads,
            min_prob: DEFAULT_MIN_PROB,
            stdin: true,
            socket: None,
            listen: None,
            serial: None,
            max_clients: DEFAULT_MAX_CLIENTS,
            retrain_every: None,
            max_memory: None,
            data: None,
            cache_dir: None,
            swap_margin: DEFAULT_SWAP_MARGIN,
            retrain_epochs: DEFAULT_RETRAIN_EPOCHS,
            correction_copies: DEFAULT_CORRECTION_COPIES,
            export_on_swap: None,
            spinning: DEFAULT_SPINNING,
            retrain_priority: DEFAULT_RETRAIN_PRIORITY,
        }
    }
}
