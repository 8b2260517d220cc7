//! The epochs of a training run: each reads its batches from the cache on a second thread, takes
//! one optimizer step per batch, validates, and writes a checkpoint. Early stopping ends the loop
//! after `patience` epochs without a better validation score.

use std::path::Path;
use std::sync::mpsc::SyncSender;
use std::time::Instant;

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::checkpoint::{self, EpochLog};
use super::data::{targets, Input, SplitData, Target};
use super::error::TrainError;
use super::init::Start;
use super::log::fmt_metrics;
use super::optim::{AdamW, GroupSettings};
use super::predict::predict_split;
use super::schedule::{bucketed_batches, epoch_seed, layer_warmup, lr_factor};
use super::session::Session;
use crate::data::Example;
use crate::metrics::{evaluate, Metrics};
use crate::model::{TaskModel, LAYER_DROPOUT};
use crate::nn::Group;
use crate::progress::Progress;
use crate::run::{self, TrainSettings};

/// A padded batch with every task's targets.
type Prepared = (Input, Vec<Option<Target>>);

/// The parts of an optimizer step, timed by [`StepTimes`].
#[derive(Clone, Copy)]
enum Part {
    Batches,
    Layers,
    Heads,
    Backward,
    Optimizer,
}

/// Seconds spent in each [`Part`] over an epoch's steps.
struct StepTimes {
    seconds: [f64; 5],
    tick: Instant,
}

impl StepTimes {
    fn new() -> Self {
        Self {
            seconds: [0.0; 5],
            tick: Instant::now(),
        }
    }

    /// Charges the time since the last lap to `part`.
    fn lap(&mut self, part: Part) {
        self.seconds[part as usize] += self.tick.elapsed().as_secs_f64();
        self.tick = Instant::now();
    }
}

/// Runs the epochs left (all of them, or those after the checkpoint when resuming) until the
/// planned number or early stopping.
pub(crate) fn run_epochs(s: &mut Session) -> Result<(), TrainError> {
    let steps_per_epoch = s
        .dataset
        .train
        .examples
        .len()
        .div_ceil(s.settings.batch_size);
    while s.state.epoch < s.settings.epochs && s.state.bad_epochs < s.settings.patience {
        let t0 = Instant::now();
        let epoch = s.state.epoch;
        let mut times = StepTimes::new();
        let loss_sum = train_epoch(s, epoch, steps_per_epoch, &mut times)?;
        let t_train = t0.elapsed().as_secs_f64();
        check_finite(s, epoch)?;
        let loss = loss_sum / steps_per_epoch.max(1) as f64;
        let (valid, improved) = validate_epoch(s, epoch, loss, t0)?;
        let t_valid = t0.elapsed().as_secs_f64();
        checkpoint::save(
            &s.ckpt_dir,
            &s.state,
            &s.model.params,
            &s.opt,
            &s.best_bytes,
        )?;
        s.profiler.memory(&format!("after epoch {}", epoch + 1));
        if s.profiler.on {
            let p = &times.seconds;
            eprintln!(
                "  timing: batches {:.2} s, layers fwd {:.2} s, heads fwd + loss {:.2} s, backward {:.2} s, \
                 optimizer {:.2} s",
                p[0], p[1], p[2], p[3], p[4]
            );
            eprintln!(
                "  timing: train {t_train:.2} s, valid {:.2} s, checkpoint {:.2} s",
                t_valid - t_train,
                t0.elapsed().as_secs_f64() - t_valid
            );
        }
        if s.verbose {
            eprintln!(
                "epoch {:>2}/{}: loss {loss:.4}  valid {}{}  ({:.1} s)",
                epoch + 1,
                s.settings.epochs,
                fmt_metrics(&valid),
                if improved { "  *best" } else { "" },
                t0.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

/// One pass over the train split in this epoch's shuffled, length-bucketed batches. Batches are
/// read from the cache and padded on a second thread, one or two steps ahead. Returns the summed
/// loss.
fn train_epoch(
    s: &mut Session,
    epoch: usize,
    steps_per_epoch: usize,
    times: &mut StepTimes,
) -> Result<f64, TrainError> {
    let mut rng = ChaCha8Rng::seed_from_u64(epoch_seed(s.settings.seed, epoch));
    let batches = bucketed_batches(&s.train.feats.meta.rows, s.settings.batch_size, &mut rng);
    let mut bar = Progress::new(
        format!("epoch {}/{}", epoch + 1, s.settings.epochs),
        batches.len() as u64,
        "steps",
        s.verbose,
    );
    let mut loss_sum = 0f64;
    let reader = Reader {
        train: &s.train,
        model: &s.model,
        training_tasks: &s.training_tasks,
    };
    let at = Step {
        epoch,
        step: 0,
        steps_per_epoch,
        model: &s.model,
        settings: &s.settings,
        start: &s.start,
        layers: s.layers,
        ckpt_dir: &s.ckpt_dir,
    };
    let opt = &mut s.opt;
    std::thread::scope(|scope| -> Result<(), TrainError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Prepared, TrainError>>(2);
        scope.spawn(|| reader.send(&batches, tx));
        for (step, prepared) in rx.iter().enumerate() {
            let (input, targets) = prepared?;
            times.lap(Part::Batches);
            let at = Step { step, ..at };
            if let Some(loss) = at.take(opt, input, &targets, &mut rng, times)? {
                loss_sum += loss;
            }
            bar.inc(1);
        }
        Ok(())
    })?;
    bar.clear();
    Ok(loss_sum)
}

/// What the batch reader thread reads: the cached train split and the model (for the targets).
struct Reader<'a> {
    train: &'a SplitData<'a>,
    model: &'a TaskModel,
    training_tasks: &'a [bool],
}

impl Reader<'_> {
    /// Reads and pads `batches` with their targets, sending each to the training thread; stops
    /// at the first error (sent on) or when the training thread stops listening.
    fn send(&self, batches: &[Vec<usize>], tx: SyncSender<Result<Prepared, TrainError>>) {
        let mut scratch = Vec::new();
        for chunk in batches {
            let prepared = self.read(chunk, &mut scratch);
            let failed = prepared.is_err();
            // A closed channel means the consumer stopped (on an error of its own).
            if tx.send(prepared).is_err() || failed {
                break;
            }
        }
    }

    fn read(&self, chunk: &[usize], scratch: &mut Vec<half::f16>) -> Result<Prepared, TrainError> {
        let (b, words, _) = self.train.batch(chunk, scratch, &Device::Cpu)?;
        let examples = &self.train.split.examples;
        let ex: Vec<&Example> = chunk.iter().map(|&i| &examples[i]).collect();
        let t = targets(
            self.model,
            self.training_tasks,
            &ex,
            &words,
            b.width(),
            &Device::Cpu,
        )?;
        Ok((b, t))
    }
}

/// One optimizer step: where it is in the run and what it reads (besides the optimizer).
#[derive(Clone, Copy)]
struct Step<'a> {
    epoch: usize,
    step: usize,
    steps_per_epoch: usize,
    model: &'a TaskModel,
    settings: &'a TrainSettings,
    start: &'a Start,
    layers: usize,
    ckpt_dir: &'a Path,
}

impl Step<'_> {
    /// Forward (the layers, then the heads of the tasks that train), the weighted sum of the
    /// tasks' losses, backward, AdamW. Returns the loss (`None` when no task of the batch trains).
    /// A non-finite loss stops training.
    fn take(
        self,
        opt: &mut AdamW,
        input: Input,
        targets: &[Option<Target>],
        rng: &mut ChaCha8Rng,
        times: &mut StepTimes,
    ) -> Result<Option<f64>, TrainError> {
        let mut b = input.heads_input(self.model, Some((LAYER_DROPOUT, &mut *rng)))?;
        if self.epoch < self.settings.heads_first {
            // Heads only: no gradient flows back into the layers.
            b.words = b.words.detach();
            b.pooled = b.pooled.detach();
        }
        times.lap(Part::Layers);
        let want: Vec<bool> = targets.iter().map(Option::is_some).collect();
        let out = self.model.forward(&b, &want, Some(rng))?;
        let loss = weighted_loss(self.model, self.settings, &out.logits, targets)?;
        times.lap(Part::Heads);
        let Some(loss) = loss else { return Ok(None) };
        let value = loss.to_scalar::<f32>()?;
        if !value.is_finite() {
            return Err(TrainError::Diverged(format!(
                "the loss is {value} at epoch {}, step {} of {}: training diverged \
                 (try a smaller --lr); the last good checkpoint is kept in {}",
                self.epoch + 1,
                self.step + 1,
                self.steps_per_epoch,
                self.ckpt_dir.display()
            )));
        }
        let grads = loss.backward()?;
        times.lap(Part::Backward);
        let done = self.epoch * self.steps_per_epoch + self.step;
        let total_steps = (self.steps_per_epoch * self.settings.epochs).max(1);
        let warm = layer_warmup(done, self.steps_per_epoch, self.settings.heads_first);
        let groups = |g: Group| self.group_settings(g, warm);
        let scale = lr_factor(done, self.steps_per_epoch, total_steps);
        opt.step(&self.model.params, &grads, &groups, scale)?;
        times.lap(Part::Optimizer);
        Ok(Some(value as f64))
    }

    /// The learning rate and weight decay of a parameter group (`None`: frozen). Layer-wise
    /// decay: the top layer at `layer_lr`, each layer below a factor smaller, times the layers'
    /// warm-up factor.
    fn group_settings(&self, g: Group, layer_warm: f64) -> Option<GroupSettings> {
        let s = self.settings;
        let lr = match g {
            Group::Layer(i) => {
                s.layer_lr * s.layer_lr_decay.powi((self.layers - 1 - i) as i32) * layer_warm
            }
            Group::Head(_) => s.lr,
        };
        self.start.trainable(s, g).then_some(GroupSettings {
            lr,
            weight_decay: s.weight_decay,
        })
    }
}

/// The sum of the training tasks' losses, each times its weight (`None` when no task has targets).
fn weighted_loss(
    model: &TaskModel,
    settings: &TrainSettings,
    logits: &[Option<Tensor>],
    targets: &[Option<Target>],
) -> Result<Option<Tensor>, TrainError> {
    let mut loss: Option<Tensor> = None;
    for ((task, logits), target) in model.config.tasks.iter().zip(logits).zip(targets) {
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
    Ok(loss)
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

/// Scores the epoch's weights on valid and updates the early-stopping state (the best weights
/// kept in memory) and the history. Returns the metrics and whether they are the best so far.
fn validate_epoch(
    s: &mut Session,
    epoch: usize,
    loss: f64,
    t0: Instant,
) -> Result<(Metrics, bool), TrainError> {
    let preds = predict_split(&s.model, &s.valid, 128)?;
    let m = evaluate(&s.valid.split.examples, &preds, &s.model_tasks).metrics;
    let score = m.score();
    let state = &mut s.state;
    let improved = score > state.best_score;
    if improved {
        state.best_score = score;
        state.best_epoch = epoch + 1;
        state.bad_epochs = 0;
        s.best_bytes = run::weights_bytes(&s.model.params)?;
    } else {
        state.bad_epochs += 1;
    }
    state.epoch += 1;
    state.history.push(EpochLog {
        epoch: epoch + 1,
        loss,
        valid: m.clone(),
        seconds: t0.elapsed().as_secs_f64(),
    });
    Ok((m, improved))
}

/// An error when a trainable tensor holds NaN or infinity (after an epoch).
fn check_finite(s: &Session, epoch: usize) -> Result<(), TrainError> {
    for p in &s.model.params.params {
        let sum = p.var.as_tensor().sum_all()?.to_scalar::<f32>()?;
        if !sum.is_finite() {
            return Err(TrainError::Diverged(format!(
                "tensor `{}` is no longer finite after epoch {}: training diverged (try a smaller --lr)",
                p.name,
                epoch + 1
            )));
        }
    }
    Ok(())
}
