//! The service's shared state and loading it: the model, the journal, the counters, and the
//! handles the threads fill in at start.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use super::super::devices::ActionSink;
use super::super::engine::Engine;
use super::super::error::ServeError;
use super::super::journal::Journal;
use super::super::layout::Layout;
use super::super::options::ServeOptions;
use super::super::protocol::{check_reply_keys, ErrorCode, RequestError};
use super::super::retrain::worker::Retrainer;
use super::super::stats::Stats;
use super::super::sync::lock;
use super::super::transport::listen::{Conn, Listener};
use crate::backbone::SessionOptions;
use crate::data::TaskInfo;
use crate::device::StatusLedThread;
use crate::infer::ModelPath;
use crate::predict::Prediction;

/// How long a stopping service waits for the requests in flight.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The last answer given, for the feedback button.
#[derive(Debug, Clone)]
pub(super) struct LastAnswer {
    pub(super) words: Vec<String>,
    pub(super) prediction: Prediction,
}

pub(super) struct Inner {
    pub(super) opts: ServeOptions,
    pub(super) engine: Arc<Mutex<Engine>>,
    pub(super) tasks: Vec<TaskInfo>,
    pub(super) layout: Option<Layout>,
    /// The lock of the run's serve folder, held while the service lives.
    _dir_lock: Option<crate::fsutil::DirLock>,
    pub(super) journal: Option<Arc<Mutex<Journal>>>,
    pub(super) stats: Arc<Stats>,
    pub(super) retrainer: OnceLock<Retrainer>,
    pub(super) actions: Mutex<Option<Box<dyn ActionSink>>>,
    pub(super) led: Mutex<Option<Arc<StatusLedThread>>>,
    pub(super) last: Mutex<Option<LastAnswer>>,
    pub(super) in_flight: Mutex<usize>,
    pub(super) idle: Condvar,
    pub(super) stopping: AtomicBool,
    /// Transports still running (stdin until its end, listeners until the stop).
    pub(super) transports: AtomicUsize,
    pub(super) done: Mutex<bool>,
    pub(super) done_cv: Condvar,
    pub(super) listeners: Mutex<Vec<Arc<Listener>>>,
    pub(super) clients: Mutex<Vec<(u64, Conn)>>,
    pub(super) next_client: AtomicUsize,
    /// The secret of `--token-file` a TCP client must send first.
    pub(super) token: Option<String>,
}

/// A running service (cheap to clone: every clone is the same service).
#[derive(Clone)]
pub struct Service {
    pub(super) inner: Arc<Inner>,
}

pub(super) fn internal(e: impl std::fmt::Display) -> RequestError {
    RequestError::new(ErrorCode::Internal, e.to_string())
}

/// Largest `--token-file` read.
const MAX_TOKEN_BYTES: u64 = 4096;

/// Reads the shared secret of `--token-file`: a regular file readable by its owner only (a
/// secret others can read is none), its first line, at least 16 characters.
fn read_token(path: &std::path::Path) -> Result<String, ServeError> {
    use std::os::unix::fs::MetadataExt;
    let what = |m: &str| ServeError::Config(format!("--token-file {}: {m}", path.display()));
    let file = crate::fsutil::open_regular(path, crate::fsutil::Links::Follow)
        .map_err(ServeError::io(path))?;
    let mode = file.metadata().map_err(ServeError::io(path))?.mode();
    if mode & 0o077 != 0 {
        return Err(what(&format!(
            "mode {:o} lets others read the secret; chmod 600 it",
            mode & 0o777
        )));
    }
    let bytes = crate::fsutil::read_limited(file, MAX_TOKEN_BYTES).map_err(ServeError::io(path))?;
    let text = String::from_utf8(bytes).map_err(|_| what("not UTF-8 text"))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.chars().count() < 16 {
        return Err(what(
            "the secret (its first line) must have at least 16 characters",
        ));
    }
    Ok(token)
}

impl Service {
    /// Loads the model (for a run: the last swapped version, see [`Layout`]) and the journal.
    /// Nothing listens yet: see [`start`](Self::start).
    pub fn load(opts: ServeOptions) -> Result<Self, ServeError> {
        let session = SessionOptions {
            spinning: opts.spinning,
            ..SessionOptions::with_threads(opts.threads)
        };
        if let Some(addr) = opts.listen {
            super::super::transport::listen::check_loopback(addr)?;
        }
        // Before anything is opened or written: the model's tasks (read without ONNX Runtime).
        check_reply_keys(&opts.model.tasks()?)
            .map_err(|m| ServeError::Config(format!("{}: {m}", opts.model.path().display())))?;
        let (engine, layout, journal) = match &opts.model {
            ModelPath::Merged(_) => (Engine::open(&opts.model, 0, None, &session)?, None, None),
            ModelPath::Run(run) => {
                let layout = Layout::new(run);
                let dir_lock = layout.lock()?;
                layout.prepare()?;
                let (dir, version) = layout.current()?;
                let current = ModelPath::Run(dir.clone());
                let engine = Engine::open(&current, version, opts.backbone.as_deref(), &session)?;
                let (mut journal, warning) =
                    Journal::open_capped(&layout.journal(), opts.max_journal_bytes)?;
                if let Some(w) = warning {
                    eprintln!("edgetune serve: warning: {w}");
                }
                journal.set_trained_through(Layout::trained_through(&dir)?);
                (
                    engine,
                    Some((layout, dir_lock)),
                    Some(Arc::new(Mutex::new(journal))),
                )
            }
        };
        if opts.retrain_every == Some(0) {
            return Err(ServeError::Config(
                "--retrain-every must be at least 1".into(),
            ));
        }
        let tasks = engine.tasks.clone();
        let (layout, dir_lock) = layout.unzip();
        let token = opts.token_file.as_deref().map(read_token).transpose()?;
        Ok(Self {
            inner: Arc::new(Inner {
                opts,
                engine: Arc::new(Mutex::new(engine)),
                tasks,
                layout,
                _dir_lock: dir_lock,
                journal,
                stats: Arc::new(Stats::default()),
                retrainer: OnceLock::new(),
                actions: Mutex::new(None),
                led: Mutex::new(None),
                last: Mutex::new(None),
                in_flight: Mutex::new(0),
                idle: Condvar::new(),
                stopping: AtomicBool::new(false),
                transports: AtomicUsize::new(0),
                done: Mutex::new(false),
                done_cv: Condvar::new(),
                listeners: Mutex::new(Vec::new()),
                clients: Mutex::new(Vec::new()),
                next_client: AtomicUsize::new(0),
                token,
            }),
        })
    }

    /// The model's tasks (what an actions file is checked against).
    pub fn tasks(&self) -> &[TaskInfo] {
        &self.inner.tasks
    }

    /// The version serving now.
    pub fn version(&self) -> u64 {
        lock(&self.inner.engine).version
    }

    /// Whether the service is stopping.
    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }
}
