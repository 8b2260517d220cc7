//! One retrain: the run's data plus the corrections, `train` from the serving heads, the swap
//! decision, and on success the new run folder, the pointer, the optional merged export and the
//! swap of the serving model.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::super::engine::Engine;
use super::super::error::ServeError;
use super::super::journal::Journal;
use super::super::stats::RetrainReport;
use super::super::sync::lock;
use super::data::{self, RetrainData};
use super::decide;
use crate::backbone::SessionOptions;
use crate::data::TaskInfo;
use crate::features::{default_cache_dir, FeatureContext};
use crate::model::TaskModel;
use crate::onnx::export::{export_run, ExportOptions};
use crate::run::versions::{self as versions, MadeBy, VersionRecord};
use crate::run::{self, RunConfig};
use crate::train::{
    self, fit_memory, head_states, plan_model, TrainError, TrainJob, TrainSettings,
};

/// Settings of a retrain (from [`super::super::ServeOptions`]).
#[derive(Debug, Clone)]
pub struct RetrainSettings {
    /// Threads of the retrain's pools.
    pub threads: usize,
    /// The retrain thread's priority.
    pub priority: super::super::priority::Priority,
    /// Memory budget, in bytes.
    pub max_memory: Option<usize>,
    /// The training data (default: the run's recorded one).
    pub data: Option<PathBuf>,
    /// Feature cache.
    pub cache_dir: Option<PathBuf>,
    /// Backbone override.
    pub backbone: Option<PathBuf>,
    /// Largest held-out score drop accepted.
    pub swap_margin: f64,
    /// Epochs.
    pub epochs: usize,
    /// Copies of each correction.
    pub copies: usize,
    /// Where to export a merged model after a swap.
    pub export_on_swap: Option<PathBuf>,
    /// Versions kept on disk besides version 0 (`--keep`; `None`: all).
    pub keep: Option<usize>,
}

/// What a retrain works with, shared with the service.
pub struct Shared {
    /// The run's serve folder.
    pub layout: super::super::layout::Layout,
    /// The serving model.
    pub engine: Arc<Mutex<Engine>>,
    /// The corrections.
    pub journal: Arc<Mutex<Journal>>,
    /// Settings.
    pub settings: RetrainSettings,
}

/// A candidate's figures, filled in as the retrain goes.
struct Figures {
    overridden: usize,
    corrections: usize,
    old_score: Option<f64>,
    new_score: Option<f64>,
    new_metrics: Option<crate::metrics::Metrics>,
    fixed: usize,
    unfixed: Vec<u64>,
    phases: Vec<(&'static str, f64)>,
    memory: Option<String>,
}

impl Figures {
    /// Records that the phase `name` ended now (it began at the last phase's end, or `since`).
    fn phase(&mut self, name: &'static str, since: &mut Instant) {
        self.phases.push((name, since.elapsed().as_secs_f64()));
        *since = Instant::now();
    }
}

/// Runs one retrain and reports what came of it (failures included: the serving model stays).
pub fn retrain_once(shared: &Shared) -> RetrainReport {
    let t0 = Instant::now();
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut figures = Figures {
        overridden: 0,
        corrections: 0,
        old_score: None,
        new_score: None,
        new_metrics: None,
        fixed: 0,
        unfixed: Vec::new(),
        phases: Vec::new(),
        memory: None,
    };
    let result = run(shared, &mut figures);
    let version = lock(&shared.engine).version;
    let (swapped, reason) = match result {
        Ok(Ok(reason)) => (true, reason),
        Ok(Err(reason)) => (false, reason),
        Err(e) => (false, format!("retrain failed: {e}")),
    };
    RetrainReport {
        started,
        seconds: t0.elapsed().as_secs_f64(),
        corrections: figures.corrections,
        overridden: figures.overridden,
        swapped,
        reason,
        version,
        old_score: figures.old_score,
        new_score: figures.new_score,
        new_metrics: figures.new_metrics,
        fixed: figures.fixed,
        unfixed: figures.unfixed,
        phases: figures
            .phases
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        memory: figures.memory,
    }
}

/// The settings of a retrain of the run `rc` (in `dir`): its own training settings, starting
/// from its heads, for `epochs` epochs.
fn settings_of(rc: &RunConfig, dir: &Path, epochs: usize) -> Result<TrainSettings, ServeError> {
    let mut settings: TrainSettings = rc.training.settings.clone();
    if settings.unfreeze_top > 0 || rc.top_layers.is_some() {
        return Err(ServeError::Config(format!(
            "{}: the run fine-tuned backbone layers (--unfreeze-top); retraining on the device trains \
             the heads of frozen-backbone runs only",
            dir.display()
        )));
    }
    settings.init_from = Some(dir.to_path_buf());
    settings.epochs = epochs;
    settings.patience = settings.patience.max(1);
    settings.freeze.clear();
    settings.tasks.clear();
    settings.hf_weights = None;
    settings
        .validate()
        .map_err(crate::train::TrainError::from)?;
    Ok(settings)
}

/// What a retrain starts from: the journal's corrections, the serving run, its settings and the
/// data with the corrections.
struct Job {
    /// The last journal entry taken.
    through: u64,
    /// The serving version (the candidate becomes `version + 1`).
    version: u64,
    rc: RunConfig,
    old_model: TaskModel,
    tasks: Vec<TaskInfo>,
    settings: TrainSettings,
    data: RetrainData,
}

/// A trained candidate: its run folder, written under a temporary name (removed when dropped,
/// unless published) and loaded.
struct Candidate {
    temp: TempModel,
    rc: RunConfig,
    model: TaskModel,
}

/// A model folder being built; removed when dropped unless [`TempModel::keep`] was called.
struct TempModel {
    dir: PathBuf,
    keep: bool,
}

impl TempModel {
    fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for TempModel {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `Ok(Ok(reason))`: swapped; `Ok(Err(reason))`: the candidate was refused.
fn run(shared: &Shared, fig: &mut Figures) -> Result<Result<String, String>, ServeError> {
    if let Some(reason) = nothing_new(shared)? {
        return Ok(Err(reason));
    }
    let mut t = Instant::now();
    let mut job = prepare(shared, fig)?;
    fig.phase("data", &mut t);
    let mut ctx = extract(shared, &job)?;
    fig.phase("features", &mut t);
    let candidate = train_candidate(shared, &mut job, &mut ctx, fig)?;
    fig.phase("train", &mut t);
    let verdict = evaluate(shared, &job, &candidate, &mut ctx, fig)?;
    fig.phase("evaluate", &mut t);
    let verdict = verdict.and_then(|reason| export_on_swap(shared, &candidate).map(|()| reason));
    publish(shared, &job, candidate, &verdict, fig)?;
    fig.phase("publish", &mut t);
    Ok(verdict)
}

/// `Some(reason)` when the journal has no entry (correction or withdrawal) after the last one the
/// serving model was trained with: its corrections are exactly the serving model's, and the
/// retrain is skipped (a new version would only repeat it), unless `--data` names other training
/// data than the serving model's.
fn nothing_new(shared: &Shared) -> Result<Option<String>, ServeError> {
    let (current, version) = {
        let e = lock(&shared.engine);
        (e.model.path().to_path_buf(), e.version)
    };
    // Other training data (`--data`) than the serving model's is something new.
    if let Some(over) = &shared.settings.data {
        let rc = run::read_config(&current)?;
        let same = |p: &Path| p.canonicalize().ok();
        let trained_on = data::data_dir(&rc, &versions::root_of(&current), None).ok();
        if trained_on
            .as_ref()
            .and_then(|t| same(&t.dir))
            .is_none_or(|t| Some(t) != same(over))
        {
            return Ok(None);
        }
    }
    let trained = if version == 0 {
        0
    } else {
        crate::serve::layout::Layout::trained_through(&current)?
    };
    let mut j = lock(&shared.journal);
    if j.last_seq() > trained {
        return Ok(None);
    }
    j.mark_retrained();
    Ok(Some(format!(
        "skipped: nothing new since version {version} was trained (journal entry {trained})"
    )))
}

/// Takes the journal's live corrections (marking them retrained), loads the serving run and
/// builds the retrain's data.
fn prepare(shared: &Shared, fig: &mut Figures) -> Result<Job, ServeError> {
    let s = &shared.settings;
    let (corrections, through, lines) = {
        let mut j = lock(&shared.journal);
        j.mark_retrained();
        let lines: std::collections::HashMap<u64, usize> = j
            .live()
            .iter()
            .filter_map(|(s, _)| j.line_of(*s).map(|l| (*s, l)))
            .collect();
        (j.live().to_vec(), j.last_seq(), lines)
    };
    let (current, version) = {
        let e = lock(&shared.engine);
        (e.model.path().to_path_buf(), e.version)
    };
    let (rc, old_model) = run::load_run(&current)?;
    let base = run::read_config(&shared.layout.run)?;
    let tasks: Vec<TaskInfo> = rc.model.tasks.iter().map(|t| t.info()).collect();
    let (corrections, skipped) =
        data::replayable(&corrections, &tasks, &shared.layout.journal(), &lines);
    for w in &skipped {
        eprintln!("edgetune serve: warning: {w}");
    }
    fig.corrections = corrections.len();
    let settings = settings_of(&rc, &current, s.epochs)?;
    let place = data::data_dir(&base, &shared.layout.run, s.data.as_deref())?;
    let data = data::build(
        &place,
        &tasks,
        settings.seed,
        &corrections,
        &shared.layout.journal(),
        s.copies,
    )?;
    fig.overridden = data.overridden;
    Ok(Job {
        through,
        version,
        rc,
        old_model,
        tasks,
        settings,
        data,
    })
}

/// The feature context of the run's backbone, with the features of the training data plus the
/// corrections and of the held-out split plus the corrections in the cache.
fn extract(shared: &Shared, job: &Job) -> Result<FeatureContext, ServeError> {
    let s = &shared.settings;
    let files = run::backbone_files(&job.rc, s.backbone.as_deref())?;
    let mut ctx = FeatureContext::new(
        files,
        Some(job.rc.backbone.max_tokens),
        SessionOptions::with_threads(s.threads),
        s.cache_dir.clone().unwrap_or_else(default_cache_dir),
    )
    .map_err(TrainError::from)?;
    ctx.progress = false;
    let (spec, data) = (&job.rc.features, &job.data);
    // The corrections one at a time, as the service answers them: the int8 backbone's activation
    // scales depend on the batch, so the check that a correction is learned must see the features
    // the answer will be computed from.
    let batch_size = ctx.batch_size;
    ctx.batch_size = 1;
    ctx.load_or_extract(&data.corrections, spec)
        .map_err(TrainError::from)?;
    ctx.batch_size = batch_size;
    let mut train_parts = vec![&data.base_train];
    train_parts.extend(std::iter::repeat_n(&data.corrections, data.copies));
    for parts in [train_parts, vec![&data.held_out, &data.corrections]] {
        ctx.compose(&parts, spec).map_err(TrainError::from)?;
    }
    Ok(ctx)
}

/// Trains the candidate (within `--max-memory` when given) into a temporary model folder and
/// loads it.
fn train_candidate(
    shared: &Shared,
    job: &mut Job,
    ctx: &mut FeatureContext,
    fig: &mut Figures,
) -> Result<Candidate, ServeError> {
    if let Some(budget) = shared.settings.max_memory {
        let layers = ctx.layers();
        let states = head_states(&job.settings, layers)?;
        let tasks = job.data.dataset.train.tasks();
        let mut start = plan_model(&tasks, &job.settings, &states, layers, layers)?;
        start.config.backbone_width = ctx.hidden();
        fig.memory = Some(fit_memory(
            &job.data.dataset,
            ctx,
            &mut job.settings,
            &start,
            &states,
            budget,
        )?);
    }
    let dir = shared.layout.versions().temp_folder()?;
    let temp = TempModel { dir, keep: false };
    train::train(TrainJob {
        dataset: &job.data.dataset,
        ctx,
        out: temp.dir.clone(),
        settings: job.settings.clone(),
        verbose: false,
        resume: false,
        lock: None,
        plots: false,
    })?;
    let (rc, model) = run::load_run(&temp.dir)?;
    Ok(Candidate { temp, rc, model })
}

/// Scores the serving model and the candidate on the held-out split, and the candidate on the
/// corrections; the swap decision.
fn evaluate(
    shared: &Shared,
    job: &Job,
    candidate: &Candidate,
    ctx: &mut FeatureContext,
    fig: &mut Figures,
) -> Result<Result<String, String>, ServeError> {
    let (spec, data) = (&job.rc.features, &job.data);
    let held = ctx
        .load_or_extract(&data.held_out, spec)
        .map_err(TrainError::from)?;
    let (old_m, held) = decide::held_out(&job.old_model, &data.held_out, held, &job.tasks)?;
    let (new_m, _) = decide::held_out(&candidate.model, &data.held_out, held, &job.tasks)?;
    fig.old_score = Some(old_m.score());
    fig.new_score = Some(new_m.score());
    fig.new_metrics = Some(new_m.clone());
    let corr = ctx
        .load_or_extract(&data.corrections, spec)
        .map_err(TrainError::from)?;
    let ok = decide::fixed(&candidate.model, &data.corrections, &data.given, corr)?;
    fig.fixed = ok.iter().filter(|&&b| b).count();
    fig.unfixed = data
        .seqs
        .iter()
        .zip(&ok)
        .filter(|(_, &b)| !b)
        .map(|(s, _)| *s)
        .collect();
    let margin = shared.settings.swap_margin;
    Ok(decide::decide(
        old_m.score(),
        new_m.score(),
        margin,
        &fig.unfixed,
    ))
}

/// With `--export-on-swap`, exports the candidate as a merged model (self-checked); on failure,
/// the reason the swap does not happen.
fn export_on_swap(shared: &Shared, candidate: &Candidate) -> Result<(), String> {
    let s = &shared.settings;
    let Some(out) = &s.export_on_swap else {
        return Ok(());
    };
    export_run(&ExportOptions {
        run: candidate.temp.dir.clone(),
        out: out.clone(),
        backbone: s.backbone.clone(),
        check_file: None,
        fp32_layers: false,
        force: true,
        session: SessionOptions::with_threads(s.threads),
        progress: false,
    })
    .map(drop)
    .map_err(|e| format!("the merged export to {} failed: {e}", out.display()))
}

/// Stores the candidate as the next version with the decision (`verdict`), and when it is
/// accepted makes it current and swaps it in; then prunes to `--keep`.
fn publish(
    shared: &Shared,
    job: &Job,
    candidate: Candidate,
    verdict: &Result<String, String>,
    fig: &Figures,
) -> Result<(), ServeError> {
    let versions = shared.layout.versions();
    let mut record = VersionRecord::new(
        MadeBy::Retrain,
        format!("retrain on {} correction(s)", job.data.seqs.len()),
    );
    record.parent = Some(job.version);
    record.journal_seq = job.through;
    record.corrections = job.data.seqs.clone();
    record.swapped = verdict.is_ok();
    record.decision = verdict.clone().unwrap_or_else(|e| e);
    record.old_score = fig.old_score;
    record.new_score = fig.new_score;
    let (n, dest) = versions.add(&candidate.temp.dir, record)?;
    candidate.temp.keep();
    if verdict.is_ok() {
        lock(&shared.engine).swap(candidate.rc, candidate.model, n, &dest);
    }
    if let Some(keep) = shared.settings.keep {
        let deleted = versions.prune(keep)?;
        if !deleted.is_empty() {
            eprintln!("edgetune serve: --keep {keep}: deleted versions {deleted:?}");
        }
    }
    Ok(())
}
