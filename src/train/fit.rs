//! The training loop: epochs over the cached features, validation, early stopping, checkpoints,
//! and the finished run.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::checkpoint;
use super::data::{targets, Input, SplitData, Target};
use super::error::TrainError;
use super::init::{
    attach_top_layers, check_frozen, frozen_snapshot, load_hf, load_init, plan_model,
};
use super::optim::{AdamW, GroupSettings};
use super::plots::{run_facts, write_run_plots, RunPlots, RunSummary};
use super::predict::predict_split;
use super::schedule::{bucketed_batches, epoch_seed, layer_warmup, lr_factor};
use super::settings::{auto_epochs, default_states, TrainSettings};
use crate::data::{Dataset, Example, TaskInfo};
use crate::features::{FeatureContext, FeatureSpec, Unit};
use crate::metrics::{evaluate, EvalReport, Metrics};
use crate::model::{TaskModel, Unfrozen, LAYER_DROPOUT};
use crate::nn::Group;
use crate::progress::Progress;
use crate::run::{self, BackboneRef, RunConfig, RUN_FORMAT};

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
    pub lock: Option<crate::fsutil::DirLock>,
}

/// Takes the lock of the run folder `out`: an error when another process writes it.
pub fn lock_run(out: &std::path::Path) -> Result<crate::fsutil::DirLock, TrainError> {
    crate::fsutil::DirLock::acquire(out).map_err(|e| {
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
    /// The pictures and `report.html` written into the run.
    pub plots: RunPlots,
}

/// The hidden states the heads read under `settings` for a backbone of `layers` layers, checked.
pub fn head_states(settings: &TrainSettings, layers: usize) -> Result<Vec<usize>, TrainError> {
    let states = if settings.hidden_states.is_empty() {
        default_states(layers)
    } else {
        settings.hidden_states.clone()
    };
    if let Some(bad) = states.iter().find(|&&s| s > layers) {
        return Err(TrainError::Config(format!(
            "hidden state {bad} does not exist: the backbone has {layers} layers (0..={layers})"
        )));
    }
    Ok(states)
}

/// The loss of one task on its targets.
fn task_loss(logits: &Tensor, target: &Target, classes: usize) -> Result<Tensor, TrainError> {
    Ok(match target {
        Target::Sentence(ids) => candle_nn::loss::cross_entropy(logits, ids)?,
        Target::Token(idx, ids) => {
            let flat = logits.reshape(((), classes))?.index_select(idx, 0)?;
            candle_nn::loss::cross_entropy(&flat, ids)?
        }
    })
}

/// A padded batch with every task's targets.
type Prepared = (Input, Vec<Option<Target>>);

/// Trains, validates every epoch, keeps the best weights, writes the run and evaluates on test.
pub fn train(job: TrainJob) -> Result<TrainOutcome, TrainError> {
    let TrainJob {
        dataset,
        ctx,
        out,
        settings,
        verbose,
        resume,
        lock,
    } = job;
    let dev = Device::Cpu;
    // One writer per run folder: a second `train` on the same folder stops here.
    let _lock = match lock {
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
    let states = head_states(&settings, layers)?;
    let unfreeze = settings.unfreeze_top;
    if unfreeze > layers {
        return Err(TrainError::Config(format!(
            "--unfreeze-top {unfreeze}: the backbone has only {layers} layers (1..={layers})"
        )));
    }
    let first = layers - unfreeze;
    // Unfrozen layers read token-level states of layer `first` (and the heads the lower states
    // they mix); a frozen backbone's heads read word-level states.
    let spec = if unfreeze > 0 {
        FeatureSpec {
            states: Unfrozen::cached_states(&states, first),
            unit: Unit::Tokens,
        }
    } else {
        FeatureSpec {
            states: states.clone(),
            unit: Unit::Words,
        }
    };
    // Load (and check) the checkpoint's layers before the long extraction.
    let hf = if unfreeze > 0 {
        Some(load_hf(&settings, layers, ctx.hidden())?)
    } else {
        None
    };
    let data_tasks: Vec<TaskInfo> = dataset.train.tasks();
    let mut settings = settings;
    settings.hidden_states = states.clone();
    if settings.epochs == 0 {
        settings.epochs = auto_epochs(dataset.train.examples.len(), settings.batch_size);
    }
    if settings.unfreeze_top > 0 && settings.heads_first >= settings.epochs {
        return Err(TrainError::Config(format!(
            "--heads-first {} leaves no epoch of {} for the unfrozen layers",
            settings.heads_first, settings.epochs
        )));
    }
    let mut start = plan_model(&data_tasks, &settings, &states, first, layers)?;

    let train_f = ctx.load_or_extract(&dataset.train, &spec)?;
    let valid_f = ctx.load_or_extract(&dataset.valid, &spec)?;
    let test_f = match &dataset.test {
        Some(t) => Some(ctx.load_or_extract(t, &spec)?),
        None => None,
    };
    let profile = std::env::var_os("EDGETUNE_PROFILE").is_some();
    let mem = |what: &str| {
        if profile {
            eprintln!(
                "  memory {what}: RSS {} MiB, peak {} MiB",
                crate::sys::current_rss().unwrap_or(0) >> 20,
                crate::sys::peak_rss().unwrap_or(0) >> 20
            );
        }
    };
    mem("after extraction");
    // Training reads only the cache: the backbone's memory is not needed any more.
    ctx.release_backbone();
    mem("after releasing the backbone");
    let width = train_f.meta.hidden;
    start.config.backbone_width = width;
    let hf_config = hf.as_ref().map(|(c, _, _)| c.clone());
    let mut model = TaskModel::new(start.config.clone(), settings.seed, &dev)?;
    if let Some((bert, weights, _)) = &hf {
        attach_top_layers(
            &mut model,
            bert,
            weights,
            first,
            spec.states.clone(),
            states.clone(),
        )?;
    }
    drop(hf);
    if let Some((dir, _)) = &start.init {
        load_init(&model, dir)?;
    }
    mem("with the model built");
    let train_d = SplitData {
        split: &dataset.train,
        feats: train_f,
    };
    let valid_d = SplitData {
        split: &dataset.valid,
        feats: valid_f,
    };
    let trainable = |g: Group| start.trainable(&settings, g);
    let frozen = |g: Group| !trainable(g);
    let frozen_before = frozen_snapshot(&model, &frozen)?;
    if model.params.count(&trainable) == 0 {
        return Err(TrainError::Config(
            "nothing to train: every head is frozen".into(),
        ));
    }
    let training_tasks = start.training_tasks();

    // The layers' own warm-up factor when they start after --heads-first epochs (set per step).
    let layer_warm = std::cell::Cell::new(1.0f64);
    let group_settings = |g: Group| -> Option<GroupSettings> {
        trainable(g).then_some(match g {
            // Layer-wise decay: the top layer at --layer-lr, each layer below a factor smaller.
            Group::Layer(i) => GroupSettings {
                lr: settings.layer_lr
                    * settings.layer_lr_decay.powi((layers - 1 - i) as i32)
                    * layer_warm.get(),
                weight_decay: settings.weight_decay,
            },
            Group::Head(_) => GroupSettings {
                lr: settings.lr,
                weight_decay: settings.weight_decay,
            },
        })
    };
    if verbose {
        for (i, t) in model.config.tasks.iter().enumerate() {
            if let Some(r) = model.config.reads(i) {
                if !training_tasks[i] && training_tasks[r] {
                    eprintln!(
                        "note: the frozen {} head reads the {} head's states; its tensors stay byte-identical, \
                         but its predictions follow the retrained {} head",
                        t.name, model.config.tasks[r].name, model.config.tasks[r].name
                    );
                }
            }
        }
    }
    let mut opt = AdamW::default();
    let mut state = checkpoint::State::new(&settings);
    let ckpt_dir = out.join(checkpoint::DIR);
    if resume {
        state = checkpoint::load(&ckpt_dir, &model.params, &mut opt)?;
        if verbose {
            eprintln!(
                "resuming at epoch {} of {}",
                state.epoch + 1,
                settings.epochs
            );
        }
    }
    let mut best_bytes = match &state.best_weights {
        Some(b) => b.clone(),
        None => run::weights_bytes(&model.params)?,
    };
    let model_tasks: Vec<TaskInfo> = model.config.tasks.iter().map(|t| t.info()).collect();
    let train_ex: Vec<&Example> = dataset.train.examples.iter().collect();
    let steps_per_epoch = train_ex.len().div_ceil(settings.batch_size);
    let total_steps = (steps_per_epoch * settings.epochs).max(1);
    while state.epoch < settings.epochs && state.bad_epochs < settings.patience {
        let t0 = Instant::now();
        let epoch = state.epoch;
        let mut rng = ChaCha8Rng::seed_from_u64(epoch_seed(settings.seed, epoch));
        let batches = bucketed_batches(&train_d.feats.meta.rows, settings.batch_size, &mut rng);
        let mut loss_sum = 0f64;
        let mut bar = Progress::new(
            format!("epoch {}/{}", epoch + 1, settings.epochs),
            batches.len() as u64,
            "steps",
            verbose,
        );
        let mut prof = [0f64; 5];
        let mut tick = Instant::now();
        let mut lap = |i: usize, prof: &mut [f64; 5]| {
            prof[i] += tick.elapsed().as_secs_f64();
            tick = Instant::now();
        };
        // Batches are read from the cache and padded on a second thread, one or two steps ahead.
        std::thread::scope(|scope| -> Result<(), TrainError> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Prepared, TrainError>>(2);
            let (batches, model, train_d, train_ex, training_tasks, bar) = (
                &batches,
                &model,
                &train_d,
                &train_ex,
                &training_tasks,
                &mut bar,
            );
            scope.spawn(move || {
                let mut scratch = Vec::new();
                for chunk in batches {
                    let prepared = (|| -> Result<Prepared, TrainError> {
                        let (b, words, _) = train_d.batch(chunk, &mut scratch, &Device::Cpu)?;
                        let ex: Vec<&Example> = chunk.iter().map(|&i| train_ex[i]).collect();
                        let t =
                            targets(model, training_tasks, &ex, &words, b.width(), &Device::Cpu)?;
                        Ok((b, t))
                    })();
                    let failed = prepared.is_err();
                    // A closed channel means the consumer stopped (on an error of its own).
                    if tx.send(prepared).is_err() || failed {
                        break;
                    }
                }
            });
            for (step, prepared) in rx.iter().enumerate() {
                let (b, tgt) = prepared?;
                lap(0, &mut prof);
                let mut b = b.heads_input(model, Some((LAYER_DROPOUT, &mut rng)))?;
                if epoch < settings.heads_first {
                    // Heads only: no gradient flows back into the layers.
                    b.words = b.words.detach();
                    b.pooled = b.pooled.detach();
                }
                lap(4, &mut prof);
                let want: Vec<bool> = tgt.iter().map(Option::is_some).collect();
                let out = model.forward(&b, &want, Some(&mut rng))?;
                let mut loss: Option<Tensor> = None;
                for ((task, logits), target) in model.config.tasks.iter().zip(&out.logits).zip(&tgt)
                {
                    let (Some(logits), Some(target)) = (logits, target) else {
                        continue;
                    };
                    let mut l = task_loss(logits, target, task.labels.len())?;
                    let w = settings.task_weight(&task.name);
                    if w != 1.0 {
                        l = (l * w)?;
                    }
                    loss = Some(match loss {
                        Some(x) => (x + l)?,
                        None => l,
                    });
                }
                lap(1, &mut prof);
                let Some(loss) = loss else { continue };
                let value = loss.to_scalar::<f32>()?;
                if !value.is_finite() {
                    return Err(TrainError::Diverged(format!(
                        "the loss is {value} at epoch {}, step {} of {steps_per_epoch}: training diverged \
                         (try a smaller --lr); the last good checkpoint is kept in {}",
                        epoch + 1,
                        step + 1,
                        ckpt_dir.display()
                    )));
                }
                loss_sum += value as f64;
                let grads = loss.backward()?;
                lap(2, &mut prof);
                let done = epoch * steps_per_epoch + step;
                layer_warm.set(layer_warmup(done, steps_per_epoch, settings.heads_first));
                opt.step(
                    &model.params,
                    &grads,
                    &group_settings,
                    lr_factor(done, steps_per_epoch, total_steps),
                )?;
                lap(3, &mut prof);
                bar.inc(1);
            }
            Ok(())
        })?;
        bar.clear();
        let t_train = t0.elapsed().as_secs_f64();
        check_finite(&model, epoch)?;
        let preds = predict_split(&model, &valid_d, 128)?;
        let m = evaluate(&valid_d.split.examples, &preds, &model_tasks).metrics;
        let s = m.score();
        let improved = s > state.best_score;
        if improved {
            state.best_score = s;
            state.best_epoch = epoch + 1;
            state.bad_epochs = 0;
            best_bytes = run::weights_bytes(&model.params)?;
        } else {
            state.bad_epochs += 1;
        }
        state.epoch += 1;
        state.history.push(checkpoint::EpochLog {
            epoch: epoch + 1,
            loss: loss_sum / steps_per_epoch.max(1) as f64,
            valid: m.clone(),
            seconds: t0.elapsed().as_secs_f64(),
        });
        let t_valid = t0.elapsed().as_secs_f64();
        checkpoint::save(&ckpt_dir, &state, &model.params, &opt, &best_bytes)?;
        mem(&format!("after epoch {}", epoch + 1));
        if profile {
            eprintln!(
                "  timing: batches {:.2} s, layers fwd {:.2} s, heads fwd + loss {:.2} s, backward {:.2} s, \
                 optimizer {:.2} s",
                prof[0], prof[4], prof[1], prof[2], prof[3]
            );
            eprintln!(
                "  timing: train {t_train:.2} s, valid {:.2} s, checkpoint {:.2} s",
                t_valid - t_train,
                t0.elapsed().as_secs_f64() - t_valid
            );
        }
        if verbose {
            eprintln!(
                "epoch {:>2}/{}: loss {:.4}  valid {}{}  ({:.1} s)",
                epoch + 1,
                settings.epochs,
                loss_sum / steps_per_epoch.max(1) as f64,
                fmt_metrics(&m),
                if improved { "  *best" } else { "" },
                t0.elapsed().as_secs_f64()
            );
        }
    }
    if verbose {
        eprintln!("{}", stop_reason(&state, &settings));
    }
    run::load_weights(&best_bytes, &model.params, &ckpt_dir)?;
    check_frozen(&model, &frozen, &frozen_before)?;
    if verbose && !frozen_before.is_empty() {
        let names: Vec<&str> = frozen_before.iter().map(|(n, _)| n.as_str()).collect();
        eprintln!(
            "frozen: {} tensors verified byte-identical after training ({})",
            names.len(),
            names.join(", ")
        );
    }

    let valid_preds = predict_split(&model, &valid_d, 128)?;
    let valid_report = evaluate(&valid_d.split.examples, &valid_preds, &model_tasks);
    let valid_m = valid_report.metrics.clone();
    let mut test = None;
    if let (Some(ts), Some(tf)) = (&dataset.test, test_f) {
        let td = SplitData {
            split: ts,
            feats: tf,
        };
        let preds = predict_split(&model, &td, 128)?;
        let report = evaluate(&ts.examples, &preds, &model_tasks);
        test = Some((report.metrics.clone(), report));
    }
    let mut metrics = std::collections::BTreeMap::new();
    metrics.insert("valid".to_string(), valid_m.clone());
    if let Some((m, _)) = &test {
        metrics.insert("test".to_string(), m.clone());
    }
    let mut training = serde_json::to_value(&settings)
        .map_err(|e| TrainError::Config(format!("settings do not serialize: {e}")))?;
    training["best_epoch"] = state.best_epoch.into();
    training["epochs_run"] = state.epoch.into();
    training["data"] = dataset.train.source.display().to_string().into();
    training["truncated_train_examples"] = train_d.feats.meta.truncated.len().into();
    training["history"] = serde_json::to_value(&state.history)
        .map_err(|e| TrainError::Config(format!("history does not serialize: {e}")))?;
    let rc = RunConfig {
        format: RUN_FORMAT,
        edgetune_version: env!("CARGO_PKG_VERSION").to_string(),
        backbone: BackboneRef {
            onnx: std::fs::canonicalize(&ctx.files.onnx).unwrap_or(ctx.files.onnx.clone()),
            onnx_sha256: ctx.model_sha().to_string(),
            tokenizer: std::fs::canonicalize(&ctx.files.tokenizer)
                .unwrap_or(ctx.files.tokenizer.clone()),
            tokenizer_sha256: ctx.tokenizer_sha().to_string(),
            layers,
            hidden: width,
            max_tokens: ctx.tokenizer.max_tokens(),
        },
        features: spec,
        top_layers: match (&model.top, hf_config) {
            (Some(u), Some(config)) => Some(run::TopLayersRef {
                first: u.top.first,
                head_states: u.head_states.clone(),
                config,
                hf_weights: settings.hf_weights.clone().unwrap_or_default(),
            }),
            _ => None,
        },
        model: model.config.clone(),
        weights: run::WeightsRef {
            file: run::WEIGHTS_FILE.into(),
            sha256: String::new(),
        },
        training,
        metrics,
    };
    // The pictures come before the run is marked finished (config.json is written last).
    let summary = RunSummary {
        history: &state.history,
        best_epoch: state.best_epoch,
        planned_epochs: settings.epochs,
        stop: stop_reason(&state, &settings),
        facts: run_facts(&rc, &settings, &dataset.train.source),
    };
    let (split, eval_report) = match &test {
        Some((_, r)) => ("test", r),
        None => ("valid", &valid_report),
    };
    let plots = write_run_plots(
        &out,
        &model.config,
        &summary,
        (split, eval_report),
        &valid_m,
        test.as_ref().map(|(m, _)| m),
    )?;
    let weights = run::weights_bytes(&model.params)?;
    let rc = run::save_run(&out, rc, &weights)?;
    checkpoint::remove(&ckpt_dir);
    Ok(TrainOutcome {
        config: rc,
        valid: valid_m,
        valid_report,
        test,
        plots,
    })
}

/// Why training ended and which epoch's weights are kept, in one line: early stopping (after which
/// epoch, for want of a better valid score over how many epochs) or the planned epochs all run.
pub fn stop_reason(state: &checkpoint::State, settings: &TrainSettings) -> String {
    let kept = format!(
        "keeping epoch {} (best valid score {:.2}%)",
        state.best_epoch,
        100.0 * state.best_score
    );
    if state.epoch < settings.epochs {
        format!(
            "early stop after epoch {} of {}: no better valid score for {} epochs (--patience {}); {kept}",
            state.epoch, settings.epochs, state.bad_epochs, settings.patience
        )
    } else {
        format!("all {} epochs run; {kept}", settings.epochs)
    }
}

/// An error when a trainable tensor holds NaN or infinity (after an epoch).
fn check_finite(model: &TaskModel, epoch: usize) -> Result<(), TrainError> {
    for p in &model.params.params {
        let s = p.var.as_tensor().sum_all()?.to_scalar::<f32>()?;
        if !s.is_finite() {
            return Err(TrainError::Diverged(format!(
                "tensor `{}` is no longer finite after epoch {}: training diverged (try a smaller --lr)",
                p.name,
                epoch + 1
            )));
        }
    }
    Ok(())
}

/// Headline metrics in one line, `%` for every score: the legacy intent / slot F1 / sentence
/// figures where they apply, then the other tasks.
pub fn fmt_metrics(m: &Metrics) -> String {
    let mut parts = Vec::new();
    if let Some(v) = m.intent_accuracy {
        parts.push(format!("intent {:.2}%", v * 100.0));
    }
    if let Some(v) = m.slot_f1 {
        parts.push(format!("slot F1 {:.2}%", v * 100.0));
    }
    for (name, s) in &m.tasks {
        if name == crate::data::INTENT || (name == crate::data::TAGS && m.slot_f1.is_some()) {
            continue;
        }
        if let Some(v) = s.accuracy {
            parts.push(format!("{name} {:.2}%", v * 100.0));
        } else if let Some(v) = s.span_f1 {
            parts.push(format!("{name} F1 {:.2}%", v * 100.0));
        } else if let Some(v) = s.token_accuracy {
            parts.push(format!("{name} token {:.2}%", v * 100.0));
        }
    }
    if let Some(v) = m.sentence_accuracy {
        parts.push(format!("sentence {:.2}%", v * 100.0));
    } else if let Some(v) = m.all_tasks_accuracy {
        parts.push(format!("all tasks {:.2}%", v * 100.0));
    }
    parts.join(", ")
}
