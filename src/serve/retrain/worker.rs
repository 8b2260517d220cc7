//! The retrain thread: low priority, its own thread pools, one retrain at a time. Requests that
//! arrive during a retrain are served together by the next one (which takes every correction
//! journalled by then).

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::super::error::ServeError;
use super::super::priority::lower_this_thread;
use super::super::stats::{RetrainReport, Stats};
use super::super::sync::lock;
use super::job::{retrain_once, Shared};

/// Called with `true` when a retrain starts and `false` when it ends (the status LED).
pub type BusyHook = Box<dyn Fn(bool) + Send>;

/// The handle of the retrain thread.
pub struct Retrainer {
    requests: Mutex<Sender<Sender<RetrainReport>>>,
    _thread: JoinHandle<()>,
}

impl Retrainer {
    /// Starts the thread. `busy` is told when a retrain starts and ends.
    pub fn spawn(
        shared: Shared,
        stats: Arc<Stats>,
        busy: Option<BusyHook>,
    ) -> Result<Self, ServeError> {
        let (tx, rx) = mpsc::channel::<Sender<RetrainReport>>();
        let threads = shared.settings.threads;
        let wanted = shared.settings.priority;
        let thread = std::thread::Builder::new()
            .name("retrain".into())
            .spawn(move || {
                let priority = lower_this_thread(wanted);
                // Threads started from here (the pools below, ONNX Runtime's, the batch reader of
                // `train`) inherit the lowered priority.
                let pool = match rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("retrain-{i}"))
                    .build()
                {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!("edgetune serve: retraining disabled: no thread pool: {e}");
                        return;
                    }
                };
                eprintln!("edgetune serve: retrain thread at {priority}");
                while let Ok(first) = rx.recv() {
                    let mut waiters = vec![first];
                    waiters.extend(rx.try_iter());
                    stats.set_retraining(true);
                    if let Some(b) = &busy {
                        b(true);
                    }
                    let report = pool.install(|| retrain_once(&shared));
                    eprintln!(
                        "edgetune serve: retrain: {} ({:.1} s, {} corrections{})",
                        if report.swapped {
                            "swapped"
                        } else {
                            "kept the serving model"
                        },
                        report.seconds,
                        report.corrections,
                        if report.swapped {
                            format!(", now version {}", report.version)
                        } else {
                            format!(": {}", report.reason)
                        }
                    );
                    stats.retrained(report.clone());
                    stats.set_retraining(false);
                    if let Some(b) = &busy {
                        b(false);
                    }
                    for w in waiters {
                        let _ = w.send(report.clone());
                    }
                }
            })
            .map_err(ServeError::io("retrain thread"))?;
        Ok(Self {
            requests: Mutex::new(tx),
            _thread: thread,
        })
    }

    /// Asks for a retrain; the receiver gets the report of the retrain that takes every
    /// correction journalled so far.
    pub fn request(&self) -> Receiver<RetrainReport> {
        let (tx, rx) = mpsc::channel();
        // A closed channel means the thread could not start; the receiver then reports nothing.
        let _ = lock(&self.requests).send(tx);
        rx
    }
}
