//! Training a run, top to bottom: [`train`] prepares (settings, features, model, optimizer), runs
//! the epochs ([`super::epoch`]) and finishes (the kept weights, the final evaluation, the run's
//! record, its pictures, the run on disk).

use std::path::{Path, PathBuf};

use candle_core::Device;

use super::checkpoint;
use super::data::SplitData;
use super::epoch::run_epochs;
use super::error::TrainError;
use super::init::{
    attach_top_layers, check_frozen, frozen_snapshot, load_hf, load_init, plan_model, Start,
};
use super::log::{stop_reason, Profiler};
use super::optim::AdamW;
use super::plots::{run_facts, write_run_plots, RunPlots, RunSummary};
use super::predict::predict_split;
use super::session::Session;
use super::settings::{auto_epochs, default_states, SettingError, TrainSettings};
use crate::data::{Dataset, Split};
use crate::features::{FeatureContext, FeatureSpec, SplitFeatures, Unit};
use crate::fsutil::DirLock;
use crate::hf::BertConfig;
use crate::metrics::{evaluate, EvalReport, Metrics};
use crate::model::{TaskModel, Unfrozen};
use crate::run::{self, BackboneRef, RunConfig, TrainingRecord, RUN_FORMAT};

/// Everything `train` needs besides the settings.
pub struct TrainJob<'a> {
    /// The data.
    pub dataset: &'a Dataset,
    /// The backbone and the feature cache.
    pub ctx: &'a mut FeatureContext,
    /// The run directory to write.
    pub out: PathBuf,
    /// The settings.
    pub settings: TrainSettings,
    /// Print per-epoch progress on stderr.
    pub verbose: bool,
    /// Continue from the checkpoint in `out`.
    pub resume: bool,
    /// The lock of `out` when the caller already holds it (else `train` takes it).
    pub lock: Option<DirLock>,
    /// Draw the run's pictures (`plots/`, `report.html`). The command line asks for them; a
    /// retrain on the device does not. Drawing them never fails the run (see
    /// [`TrainOutcome::warnings`]).
    pub plots: bool,
}

/// Takes the lock of the run folder `out`: an error when another process writes it.
pub fn lock_run(out: &Path) -> Result<DirLock, TrainError> {
    DirLock::acquire(out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            TrainError::Config(format!(
                "{} is being written by another edgetune process; wait for it or choose another --out",
                out.display()
            ))
        } else {
            TrainError::Run(run::RunError::Io {
                path: out.join(".lock"),
                source: e,
            })
        }
    })
}

/// What `train` produced.
pub struct TrainOutcome {
    /// The run as written.
    pub config: RunConfig,
    /// Metrics of the kept weights on the valid split.
    pub valid: Metrics,
    /// The full report of the kept weights on the valid split.
    pub valid_report: EvalReport,
    /// Metrics and the full report on the test split, when the dataset has one.
    pub test: Option<(Metrics, EvalReport)>,
    /// The pictures and `report.html` written into the run, when asked for and drawn.
    pub plots: Option<RunPlots>,
    /// What went wrong without failing the run (pictures that could not be drawn).
    pub warnings: Vec<String>,
}

/// The hidden states the heads read under `settings` for a backbone of `layers` layers, checked.
pub fn head_states(settings: &TrainSettings, layers: usize) -> Result<Vec<usize>, TrainError> {
    let states = if settings.hidden_states.is_empty() {
        default_states(layers)
    } else {
        settings.hidden_states.clone()
    };
    if let Some(bad) = states.iter().find(|&&s| s > layers) {
        return Err(SettingError {
            setting: "hidden_states".into(),
            message: format!(
                "{bad} does not exist: the backbone has {layers} layers (0..={layers})"
            ),
        }
        .into());
    }
    Ok(states)
}

/// Trains, validates every epoch, keeps the best weights, writes the run and evaluates on test.
pub fn train(job: TrainJob) -> Result<TrainOutcome, TrainError> {
    let mut session = prepare(job)?;
    run_epochs(&mut session)?;
    finish(session)
}

/// Everything before the first epoch: the run folder's lock, the settings resolved against the
/// backbone, the features extracted, the model built, the optimizer (from the checkpoint when
/// resuming).
fn prepare(job: TrainJob) -> Result<Session, TrainError> {
    let TrainJob {
        dataset,
        ctx,
        out,
        settings,
        verbose,
        resume,
        lock,
        plots,
    } = job;
    settings.validate()?;
    let lock = match lock {
        Some(l) => l,
        None => lock_run(&out)?,
    };
    if !resume && out.join(run::CONFIG_FILE).exists() {
        return Err(TrainError::Config(format!(
            "{} already holds a finished run; choose another --out",
            out.display()
        )));
    }
    let layers = ctx.layers();
    let (settings, states) = resolve_settings(settings, dataset, layers)?;
    let first = layers - settings.unfreeze_top;
    let spec = feature_spec(&states, settings.unfreeze_top, first);
    // Load (and check) the checkpoint's layers before the long extraction.
    let hf = match settings.unfreeze_top {
        0 => None,
        _ => Some(load_hf(&settings, layers, ctx.hidden())?),
    };
    let mut start = plan_model(&dataset.train.tasks(), &settings, &states, first, layers)?;
    let profiler = Profiler::from_env();
    let (train_f, valid_f, test_f) = extract(ctx, dataset, &spec, &profiler)?;
    start.config.backbone_width = train_f.meta.hidden;
    let backbone = backbone_ref(ctx, layers, train_f.meta.hidden);
    let model = build_model(&start, &settings, hf.as_ref(), &spec, &states, first)?;
    let hf_config = hf.map(|(c, _, _)| c);
    profiler.memory("with the model built");
    let split = |split, feats| SplitData { split, feats };
    let mut session = Session {
        dataset,
        verbose,
        plots,
        lock,
        layers,
        backbone,
        hf_config,
        training_tasks: start.training_tasks(),
        model_tasks: model.config.tasks.iter().map(|t| t.info()).collect(),
        frozen_before: Vec::new(),
        train: split(&dataset.train, train_f),
        valid: split(&dataset.valid, valid_f),
        test: dataset.test.as_ref().zip(test_f).map(|(s, f)| split(s, f)),
        opt: AdamW::default(),
        state: checkpoint::State::new(&settings),
        best_bytes: Vec::new(),
        ckpt_dir: out.join(checkpoint::DIR),
        out,
        spec,
        start,
        model,
        settings,
        profiler,
    };
    check_trainable(&mut session)?;
    start_or_resume(&mut session, resume)?;
    Ok(session)
}

/// The settings as trained: validated, the hidden states and the number of epochs filled in,
/// the unfrozen layers within the backbone's. Returns them with the hidden states the heads read.
fn resolve_settings(
    mut settings: TrainSettings,
    dataset: &Dataset,
    layers: usize,
) -> Result<(TrainSettings, Vec<usize>), TrainError> {
    let states = head_states(&settings, layers)?;
    let unfreeze = settings.unfreeze_top;
    if unfreeze > layers {
        return Err(SettingError {
            setting: "unfreeze_top".into(),
            message: format!("{unfreeze}: the backbone has only {layers} layers (1..={layers})"),
        }
        .into());
    }
    settings.hidden_states = states.clone();
    if settings.epochs == 0 {
        settings.epochs = auto_epochs(dataset.train.examples.len(), settings.batch_size);
    }
    settings.validate()?;
    Ok((settings, states))
}

/// What the cache holds: with unfrozen layers the token-level states of layer `first` (and the
/// lower states the heads mix), else the word-level states the heads read.
fn feature_spec(states: &[usize], unfreeze: usize, first: usize) -> FeatureSpec {
    if unfreeze > 0 {
        FeatureSpec {
            states: Unfrozen::cached_states(states, first),
            unit: Unit::Tokens,
        }
    } else {
        FeatureSpec {
            states: states.to_vec(),
            unit: Unit::Words,
        }
    }
}

/// The features of the train, valid and test splits (extracted once, then read from the cache);
/// the backbone's memory is released afterwards, as training reads only the cache.
fn extract(
    ctx: &mut FeatureContext,
    dataset: &Dataset,
    spec: &FeatureSpec,
    profiler: &Profiler,
) -> Result<(SplitFeatures, SplitFeatures, Option<SplitFeatures>), TrainError> {
    let mut load = |split: &Split| ctx.load_or_extract(split, spec);
    let train = load(&dataset.train)?;
    let valid = load(&dataset.valid)?;
    let test = dataset.test.as_ref().map(&mut load).transpose()?;
    profiler.memory("after extraction");
    ctx.release_backbone();
    profiler.memory("after releasing the backbone");
    Ok((train, valid, test))
}

/// The backbone as the run records it (paths resolved, hashes, layers, width, token limit).
fn backbone_ref(ctx: &FeatureContext, layers: usize, hidden: usize) -> BackboneRef {
    let resolved = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or(p.clone());
    BackboneRef {
        onnx: resolved(&ctx.files.onnx),
        onnx_sha256: ctx.model_sha().to_string(),
        tokenizer: resolved(&ctx.files.tokenizer),
        tokenizer_sha256: ctx.tokenizer_sha().to_string(),
        layers,
        hidden,
        max_tokens: ctx.tokenizer.max_tokens(),
    }
}

/// The model training starts from: new heads (seeded), the checkpoint's top layers when some are
/// unfrozen, the `--init-from` run's heads where it has them.
fn build_model(
    start: &Start,
    settings: &TrainSettings,
    hf: Option<&(BertConfig, crate::hf::Weights, PathBuf)>,
    spec: &FeatureSpec,
    states: &[usize],
    first: usize,
) -> Result<TaskModel, TrainError> {
    let mut model = TaskModel::new(start.config.clone(), settings.seed, &Device::Cpu)?;
    if let Some((bert, weights, _)) = hf {
        attach_top_layers(
            &mut model,
            bert,
            weights,
            first,
            spec.states.clone(),
            states.to_vec(),
        )?;
    }
    if let Some((dir, _)) = &start.init {
        load_init(&model, dir)?;
    }
    Ok(model)
}

/// Something must train; the frozen tensors are recorded to be checked byte-identical at the end.
fn check_trainable(s: &mut Session) -> Result<(), TrainError> {
    s.frozen_before = frozen_snapshot(&s.model, &|g| !s.trainable(g))?;
    if s.model.params.count(&|g| s.trainable(g)) == 0 {
        return Err(TrainError::Config(
            "nothing to train: every head is frozen".into(),
        ));
    }
    if s.verbose {
        note_coupled_heads(&s.model, &s.training_tasks);
    }
    Ok(())
}

/// A frozen head that reads a retrained head's states keeps its tensors but not its predictions.
fn note_coupled_heads(model: &TaskModel, training: &[bool]) {
    let tasks = &model.config.tasks;
    for (i, t) in tasks.iter().enumerate() {
        match model.config.reads(i) {
            Some(r) if !training[i] && training[r] => eprintln!(
                "note: the frozen {} head reads the {} head's states; its tensors stay byte-identical, \
                 but its predictions follow the retrained {} head",
                t.name, tasks[r].name, tasks[r].name
            ),
            _ => {}
        }
    }
}

/// The optimizer and the early-stopping state: fresh, or from the checkpoint when resuming.
fn start_or_resume(s: &mut Session, resume: bool) -> Result<(), TrainError> {
    if resume {
        s.state = checkpoint::load(&s.ckpt_dir, &s.model.params, &mut s.opt)?;
        if s.verbose {
            eprintln!(
                "resuming at epoch {} of {}",
                s.state.epoch + 1,
                s.settings.epochs
            );
        }
    }
    s.best_bytes = match &s.state.best_weights {
        Some(b) => b.clone(),
        None => run::weights_bytes(&s.model.params)?,
    };
    Ok(())
}

/// After the last epoch: the kept weights (checked: frozen tensors unchanged), their scores on
/// valid and test, the run's record, its pictures when asked for, the run written (`config.json`
/// last) and the checkpoint removed.
fn finish(mut s: Session) -> Result<TrainOutcome, TrainError> {
    if s.verbose {
        eprintln!("{}", stop_reason(&s.state, &s.settings));
    }
    keep_best(&mut s)?;
    let valid_report = evaluate_split(&s, &s.valid)?;
    let test = s.test.as_ref().map(|t| evaluate_split(&s, t)).transpose()?;
    let valid = valid_report.metrics.clone();
    let test = test.map(|r| (r.metrics.clone(), r));
    let rc = run_config(&s, &valid, test.as_ref().map(|(m, _)| m));
    let mut warnings = Vec::new();
    // The pictures come before the run is marked finished (config.json is written last).
    let t = std::time::Instant::now();
    let plots = match s.plots {
        true => draw_plots(&s, &rc, &valid_report, &test, &mut warnings),
        false => None,
    };
    s.profiler.seconds("pictures", t.elapsed().as_secs_f64());
    let weights = run::weights_bytes(&s.model.params)?;
    let config = run::save_run(&s.out, rc, &weights)?;
    checkpoint::remove(&s.ckpt_dir);
    // The run is written: another writer may take the folder.
    drop(s.lock);
    Ok(TrainOutcome {
        config,
        valid,
        valid_report,
        test,
        plots,
        warnings,
    })
}

/// Loads the best epoch's weights and checks that the frozen tensors are byte-identical.
fn keep_best(s: &mut Session) -> Result<(), TrainError> {
    run::load_weights(&s.best_bytes, &s.model.params, &s.ckpt_dir)?;
    check_frozen(&s.model, &|g| !s.trainable(g), &s.frozen_before)?;
    if s.verbose && !s.frozen_before.is_empty() {
        let names: Vec<&str> = s.frozen_before.iter().map(|(n, _)| n.as_str()).collect();
        eprintln!(
            "frozen: {} tensors verified byte-identical after training ({})",
            names.len(),
            names.join(", ")
        );
    }
    Ok(())
}

/// The full report of the model on one split.
fn evaluate_split(s: &Session, d: &SplitData) -> Result<EvalReport, TrainError> {
    let preds = predict_split(&s.model, d, 128)?;
    Ok(evaluate(&d.split.examples, &preds, &s.model_tasks))
}

/// The run's `config.json` (its weights' hash is filled in when they are written).
fn run_config(s: &Session, valid: &Metrics, test: Option<&Metrics>) -> RunConfig {
    let metrics = std::iter::once(("valid", valid))
        .chain(test.map(|m| ("test", m)))
        .map(|(k, m)| (k.to_string(), m.clone()))
        .collect();
    let top_layers = match (&s.model.top, &s.hf_config) {
        (Some(u), Some(config)) => Some(run::TopLayersRef {
            first: u.top.first,
            head_states: u.head_states.clone(),
            config: config.clone(),
            hf_weights: s.settings.hf_weights.clone().unwrap_or_default(),
        }),
        _ => None,
    };
    RunConfig {
        format: RUN_FORMAT,
        edgetune_version: env!("CARGO_PKG_VERSION").to_string(),
        backbone: s.backbone.clone(),
        features: s.spec.clone(),
        top_layers,
        model: s.model.config.clone(),
        weights: run::WeightsRef {
            file: run::WEIGHTS_FILE.into(),
            sha256: String::new(),
        },
        training: TrainingRecord {
            settings: s.settings.clone(),
            best_epoch: s.state.best_epoch,
            epochs_run: s.state.epoch,
            data: Some(s.dataset.train.source.display().to_string()),
            frozen: s.start.frozen.iter().cloned().collect(),
            truncated_train_examples: s.train.feats.meta.truncated.len(),
            history: s.state.history.clone(),
            fleet: None,
        },
        metrics,
    }
}

/// Draws the run's pictures and `report.html`; a failure becomes a warning, never a failed run.
fn draw_plots(
    s: &Session,
    rc: &RunConfig,
    valid: &EvalReport,
    test: &Option<(Metrics, EvalReport)>,
    warnings: &mut Vec<String>,
) -> Option<RunPlots> {
    let summary = RunSummary {
        history: &s.state.history,
        best_epoch: s.state.best_epoch,
        planned_epochs: s.settings.epochs,
        stop: stop_reason(&s.state, &s.settings),
        facts: run_facts(rc, &s.settings, &s.dataset.train.source),
    };
    let eval = match test {
        Some((_, r)) => ("test", r),
        None => ("valid", valid),
    };
    let test_metrics = test.as_ref().map(|(m, _)| m);
    let drawn = write_run_plots(
        &s.out,
        &s.model.config,
        &summary,
        eval,
        &valid.metrics,
        test_metrics,
    );
    drawn
        .map_err(|e| warnings.push(format!("the run's pictures were not drawn: {e}")))
        .ok()
}
