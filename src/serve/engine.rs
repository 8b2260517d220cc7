//! The model that answers: a run (backbone + task model) or a merged model, loaded once; for a
//! run, its heads are replaced by retrained ones between two requests.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::error::ServeError;
use crate::backbone::SessionOptions;
use crate::data::{TaskInfo, TaskKind};
use crate::infer::{ModelPath, RunPredictor};
use crate::metrics::Metrics;
use crate::model::TaskModel;
use crate::onnx::merged::MergedModel;
use crate::predict::{Predict, Prediction};
use crate::run::versions::Versions;
use crate::run::RunConfig;

/// How often the service looks at the run's version pointer (one `stat`).
pub const POINTER_CHECK: Duration = Duration::from_secs(1);

/// The run's version pointer as last seen: a `rollback` (or any other writer) replacing it is
/// noticed by its inode, size or modification time.
struct Watch {
    versions: Versions,
    seen: Option<(u64, u64, std::time::SystemTime)>,
    checked: Instant,
}

fn pointer_stamp(path: &Path) -> Option<(u64, u64, std::time::SystemTime)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).ok()?;
    Some((m.ino(), m.len(), m.modified().ok()?))
}

/// A predictor the service answers with: any [`Predict`]; a run's can take retrained heads.
pub trait Served: Predict + Send {
    /// Replaces the task model by a retrained one of the same run layout; `false` when this model
    /// cannot take heads (a merged model).
    fn replace_heads(&mut self, rc: RunConfig, model: TaskModel) -> bool;
}

impl Served for RunPredictor {
    fn replace_heads(&mut self, rc: RunConfig, model: TaskModel) -> bool {
        self.replace_model(rc, model);
        true
    }
}

impl Served for MergedModel {
    fn replace_heads(&mut self, _rc: RunConfig, _model: TaskModel) -> bool {
        false
    }
}

/// The serving model and what `stats` reports about it.
pub struct Engine {
    predictor: Box<dyn Served>,
    /// 0 for the model given on the command line, N for the N-th swapped one.
    pub version: u64,
    /// The run folder (or merged-model file) answering.
    pub model: ModelPath,
    /// Its recorded metrics by split (a run's `config.json`; empty for a merged model).
    pub metrics: BTreeMap<String, Metrics>,
    /// Its tasks, in output order.
    pub tasks: Vec<TaskInfo>,
    watch: Option<Watch>,
}

impl Engine {
    /// Loads `model` (`version`: its version number; `backbone`: a run's backbone override).
    pub fn open(
        model: &ModelPath,
        version: u64,
        backbone: Option<&Path>,
        opts: &SessionOptions,
    ) -> Result<Self, ServeError> {
        let (predictor, metrics): (Box<dyn Served>, _) = match model {
            ModelPath::Run(dir) => {
                let p = RunPredictor::open(dir, backbone, opts)?;
                let metrics = p.rc.metrics.clone();
                (Box::new(p), metrics)
            }
            ModelPath::Merged(path) => (Box::new(MergedModel::open(path, opts)?), BTreeMap::new()),
        };
        Ok(Self {
            version,
            model: model.clone(),
            metrics,
            tasks: predictor.tasks().to_vec(),
            predictor,
            watch: None,
        })
    }

    /// Follows the version pointer of the run `root` from now on: before a prediction, at most
    /// once per [`POINTER_CHECK`], the pointer is looked at, and when it names another version
    /// (`edgetune rollback`), that version is loaded and answers.
    pub fn follow(&mut self, root: &Path) {
        let versions = Versions::new(root);
        let seen = pointer_stamp(&versions.pointer());
        self.watch = Some(Watch {
            versions,
            seen,
            checked: Instant::now(),
        });
    }

    /// Swaps in the version the pointer names when it changed (see [`Self::follow`]).
    fn check_pointer(&mut self) -> Result<(), ServeError> {
        let Some(w) = &mut self.watch else {
            return Ok(());
        };
        if w.checked.elapsed() < POINTER_CHECK {
            return Ok(());
        }
        w.checked = Instant::now();
        let stamp = pointer_stamp(&w.versions.pointer());
        if stamp == w.seen {
            return Ok(());
        }
        w.seen = stamp;
        let (n, dir) = w.versions.current()?;
        if n == self.version {
            return Ok(());
        }
        let (rc, model) = crate::run::load_run(&dir)?;
        eprintln!("edgetune serve: the run's current version is now {n} (its pointer changed); answering with it");
        self.swap(rc, model, n, &dir);
        Ok(())
    }

    /// The prediction of `text` (with each sentence task's logits, which the JSON answer writes
    /// on request).
    pub fn predict(&mut self, text: &str) -> Result<Prediction, ServeError> {
        if let Err(e) = self.check_pointer() {
            eprintln!(
                "edgetune serve: warning: the version pointer: {e}; answering with version {}",
                self.version
            );
        }
        Ok(self.predictor.predict(text)?)
    }

    /// Replaces the task model by a retrained one (same backbone, same tasks), now answering from
    /// the run folder `dir` as version `version`.
    pub fn swap(&mut self, rc: RunConfig, model: TaskModel, version: u64, dir: &Path) {
        let metrics = rc.metrics.clone();
        if self.predictor.replace_heads(rc, model) {
            self.metrics = metrics;
            self.tasks = self.predictor.tasks().to_vec();
            self.version = version;
            self.model = ModelPath::Run(dir.to_path_buf());
        }
    }
}

/// The first sentence task (whose probability decides `"unknown"`), if any.
pub fn intent_task(tasks: &[TaskInfo]) -> Option<&TaskInfo> {
    tasks.iter().find(|t| t.kind == TaskKind::Sentence)
}
