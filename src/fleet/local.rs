//! Local training of a round: the heads the server sent, trained for a fixed number of epochs on
//! this device's cached features (FedAvg's local update), then scored.
//!
//! This is the epoch loop of `train::fit` without what a round does not need: no early stopping on
//! a validation split (Flower's strategies expect the same local work from every device), no
//! checkpoint, no pictures, and the label lists fixed by the fleet's spec rather than by the data
//! (a non-IID shard lacks labels that the fleet's heads have; its examples map onto the fleet's
//! lists through [`targets`]).

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::{Example, TaskInfo};
use crate::metrics::{evaluate, Metrics};
use crate::model::{TaskModel, LAYER_DROPOUT};
use crate::nn::Group;
use crate::train::data::{targets, Target};
use crate::train::optim::{AdamW, GroupSettings};
use crate::train::schedule::{bucketed_batches, epoch_seed};
use crate::train::{predict_split, SplitData, TrainError};

/// The local work of one round (sent by the server with each round, defaults here).
#[derive(Debug, Clone, PartialEq)]
pub struct LocalFit {
    /// Epochs over the local data per round.
    pub epochs: usize,
    /// Learning rate (AdamW, constant within a round: a round is too short for a warm-up and a
    /// decay, and the server's rounds are the schedule).
    pub lr: f64,
    /// Examples per step.
    pub batch_size: usize,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Seed of shuffling and dropout (mixed with the round number).
    pub seed: u64,
}

impl Default for LocalFit {
    fn default() -> Self {
        Self {
            // One epoch per round: FedAvg's local drift on non-IID shards grows with local epochs.
            epochs: 1,
            lr: crate::train::TrainSettings::default().lr,
            batch_size: crate::train::TrainSettings::default().batch_size,
            weight_decay: crate::train::TrainSettings::default().weight_decay,
            seed: 13,
        }
    }
}

fn task_loss(logits: &Tensor, target: &Target, classes: usize) -> Result<Tensor, TrainError> {
    Ok(match target {
        Target::Sentence(ids) => candle_nn::loss::cross_entropy(logits, ids)?,
        Target::Token(idx, ids) => {
            let flat = logits.reshape(((), classes))?.index_select(idx, 0)?;
            candle_nn::loss::cross_entropy(&flat, ids)?
        }
    })
}

/// Trains every head of `model` on `data` for `fit.epochs` epochs; the mean loss of the last epoch.
/// A non-finite loss is an error (the weights are then not sent).
pub fn fit_local(model: &TaskModel, data: &SplitData, fit: &LocalFit) -> Result<f64, TrainError> {
    let dev = Device::Cpu;
    let n = data.split.examples.len();
    if n == 0 {
        return Err(TrainError::Config("no local training examples".into()));
    }
    let all: Vec<bool> = vec![true; model.config.tasks.len()];
    let ex: Vec<&Example> = data.split.examples.iter().collect();
    let settings = |g: Group| -> Option<GroupSettings> {
        matches!(g, Group::Head(_)).then_some(GroupSettings {
            lr: fit.lr,
            weight_decay: fit.weight_decay,
        })
    };
    let mut opt = AdamW::default();
    let mut scratch = Vec::new();
    let mut last = f64::NAN;
    for epoch in 0..fit.epochs {
        let mut rng = ChaCha8Rng::seed_from_u64(epoch_seed(fit.seed, epoch));
        let batches = bucketed_batches(&data.feats.meta.rows, fit.batch_size, &mut rng);
        let mut sum = 0f64;
        for (step, chunk) in batches.iter().enumerate() {
            let (input, words, _) = data.batch(chunk, &mut scratch, &dev)?;
            let batch_ex: Vec<&Example> = chunk.iter().map(|&i| ex[i]).collect();
            let tgt = targets(model, &all, &batch_ex, &words, input.width(), &dev)?;
            let b = input.heads_input(model, Some((LAYER_DROPOUT, &mut rng)))?;
            let out = model.forward(&b, &all, Some(&mut rng))?;
            let mut loss: Option<Tensor> = None;
            for ((task, logits), target) in model.config.tasks.iter().zip(&out.logits).zip(&tgt) {
                let (Some(logits), Some(target)) = (logits, target) else {
                    continue;
                };
                let l = task_loss(logits, target, task.labels.len())?;
                loss = Some(match loss {
                    Some(x) => (x + l)?,
                    None => l,
                });
            }
            let Some(loss) = loss else { continue };
            let value = loss.to_scalar::<f32>()?;
            if !value.is_finite() {
                return Err(TrainError::Diverged(format!(
                    "the local loss is {value} at epoch {}, step {}: the round's update is not sent",
                    epoch + 1,
                    step + 1
                )));
            }
            sum += value as f64;
            let grads = loss.backward()?;
            opt.step(&model.params, &grads, &settings, 1.0)?;
        }
        last = sum / batches.len().max(1) as f64;
    }
    Ok(last)
}

/// Metrics of `model` on `data` (every task of the model).
pub fn score(model: &TaskModel, data: &SplitData) -> Result<Metrics, TrainError> {
    let tasks: Vec<TaskInfo> = model.config.tasks.iter().map(|t| t.info()).collect();
    let preds = predict_split(model, data, 128)?;
    Ok(evaluate(&data.split.examples, &preds, &tasks).metrics)
}
