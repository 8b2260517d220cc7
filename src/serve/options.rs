//! The service's settings: every default declared once, here, with the reason for it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::priority::Priority;
use crate::backbone::Spinning;
use crate::infer::ModelPath;

/// Settings of `edgetune serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The model: a run answers and learns from corrections, a merged model answers only.
    pub model: ModelPath,
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
    /// When ONNX Runtime's intra-op threads spin while waiting for work. See
    /// [`DEFAULT_SPINNING`].
    pub spinning: Spinning,
    /// The retrain thread's priority. See [`DEFAULT_RETRAIN_PRIORITY`].
    pub retrain_priority: Priority,
    /// Corrections are refused (`"code": "full"`) once the journal holds this many bytes. See
    /// [`crate::serve::journal::DEFAULT_MAX_JOURNAL_BYTES`].
    pub max_journal_bytes: u64,
    /// A connection that sends nothing for this long is closed (`"code": "idle"`). See
    /// [`DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: Option<Duration>,
    /// The Unix socket is created mode 0600 (its owner only); with a group, 0660 and owned by it.
    pub socket_group: Option<String>,
    /// A file holding the shared secret a TCP client sends first (`{"token": "..."}`).
    pub token_file: Option<PathBuf>,
}

/// Default of `--idle-timeout`: 60 s. A client waits for answers, not for minutes of silence; a
/// connection held open and silent only keeps a slot from others.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Default of `--min-prob`: 0.8, the highest threshold at which the answers it rejects on the
/// valid splits measured are still mostly wrong ones (the table in docs/serve.md).
pub const DEFAULT_MIN_PROB: f32 = 0.8;

/// Default of `--swap-margin`: 0.02 of the held-out score ([`Metrics::score`], 0..1): about the
/// spread of equally good models of the demo data on its small valid split (docs/serve.md), so a
/// smaller margin would refuse models for noise. On a large valid split a smaller one can be given.
///
/// [`Metrics::score`]: crate::metrics::Metrics::score
pub const DEFAULT_SWAP_MARGIN: f64 = 0.02;

/// Default of `--retrain-epochs`: 4, from the serving heads: the setting that learned every
/// correction tried and kept the best held-out score (docs/serve.md).
pub const DEFAULT_RETRAIN_EPOCHS: usize = 4;

/// Default of `--correction-copies`: 8: a single copy of a correction among thousands of training
/// sentences gets too little gradient in a few epochs to be learned (docs/serve.md).
pub const DEFAULT_CORRECTION_COPIES: usize = 8;

/// Default intra-op spinning: within a prediction only. It gives most of full spinning's lower
/// latency, while a core is free between two answers: full spinning under a steady stream of
/// requests starved a retrain at nice 19 (10 to 16 times slower), and burns a core's power on a
/// device between utterances (measurements in docs/serve.md).
pub const DEFAULT_SPINNING: Spinning = Spinning::InRun;

/// Default of `--retrain-priority`: nice 19. The idle class (`SCHED_IDLE`) gives no guarantee of
/// progress when anything else keeps the cores busy (docs/serve.md).
pub const DEFAULT_RETRAIN_PRIORITY: Priority = Priority::Nice;

/// Default of `--max-clients`. With `--socket`, one of them is kept for the Unix socket: TCP
/// clients alone never fill every slot.
pub const DEFAULT_MAX_CLIENTS: usize = 64;

impl ServeOptions {
    /// Options with every default for `model`, `threads` threads, reading standard input.
    pub fn new(model: ModelPath, threads: usize) -> Self {
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
            max_journal_bytes: crate::serve::journal::DEFAULT_MAX_JOURNAL_BYTES,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            socket_group: None,
            token_file: None,
        }
    }
}
