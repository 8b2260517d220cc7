//! This device's side of a round: its run, its data and corrections with their cached features,
//! and the model it serves. A round's global heads are checked (spec, shapes, finite values),
//! adopted as a new version when they pass the device's own held-out check and answer every
//! correction as given (the safe-swap rule of a local retrain), then trained locally.

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use super::error::FleetError;
use super::heads::{load_tensors, tensors_of};
use super::local::{fit_local, score, LocalFit};
use super::records::Tensor32;
use super::spec::{check, spec_of};
use super::version::{publish_version, Provenance};
use crate::backbone::SessionOptions;
use crate::data::{Split, TaskInfo};
use crate::features::{default_cache_dir, FeatureContext, FeatureSpec, SplitFeatures};
use crate::metrics::Metrics;
use crate::model::TaskModel;
use crate::run::{self, RunConfig};
use crate::serve::correction::Correction;
use crate::serve::layout::Layout;
use crate::serve::retrain::data::{self as retrain_data, RetrainData};
use crate::serve::retrain::decide;
use crate::train::{predict_split, SplitData};

/// Environment variable of the hostile-peer tests: `nan` makes the device send NaN in its update,
/// `scale:K` multiplies its update (the change from the global heads) by K.
pub const HOSTILE_ENV: &str = "EDGETUNE_FLEET_HOSTILE";

/// What a device brings to a fleet.
#[derive(Debug, Clone)]
pub struct ParticipantOptions {
    /// The device's run (its `serve/` folder holds the versions and the corrections journal).
    pub run: PathBuf,
    /// Local training data (default: the run's recorded data).
    pub data: Option<PathBuf>,
    /// Backbone override (must be the run's).
    pub backbone: Option<PathBuf>,
    /// Feature cache.
    pub cache_dir: Option<PathBuf>,
    /// Threads of ONNX Runtime (feature extraction).
    pub threads: usize,
    /// Copies of each correction in the local training data (as `serve --correction-copies`).
    pub correction_copies: usize,
    /// Largest held-out score drop accepted when adopting the global heads.
    pub swap_margin: f64,
}

/// A split with its cached features.
struct Part {
    split: Split,
    feats: Option<SplitFeatures>,
}

impl Part {
    fn with<R>(&mut self, f: impl FnOnce(&SplitData) -> R) -> R {
        let data = SplitData {
            split: &self.split,
            feats: self
                .feats
                .take()
                .expect("features are put back after each use"),
        };
        let r = f(&data);
        self.feats = Some(data.feats);
        r
    }
}

/// What became of a round's global heads on this device.
#[derive(Debug, Clone, PartialEq)]
pub struct Adoption {
    /// Whether they are now the version served.
    pub adopted: bool,
    /// The version served after the decision.
    pub version: u64,
    /// Held-out score of the version served before.
    pub old_score: f64,
    /// Held-out score of the global heads.
    pub new_score: f64,
    /// Corrections the global heads answer differently from the owner's word.
    pub broken_corrections: usize,
    /// Why (the safe-swap rule's words).
    pub reason: String,
}

/// A round's local result.
pub struct RoundResult {
    /// The updated heads.
    pub tensors: Vec<Tensor32>,
    /// Local training examples (corrections counted once).
    pub examples: usize,
    /// Mean loss of the last local epoch.
    pub loss: f64,
    /// Held-out metrics of the updated heads.
    pub held_out: Metrics,
    /// What became of the global heads.
    pub adoption: Adoption,
}

/// The device's side of the fleet.
pub struct Participant {
    opts: ParticipantOptions,
    layout: Layout,
    rc: RunConfig,
    serving: TaskModel,
    version: u64,
    spec: Json,
    train: Part,
    held: Part,
    corrections: Part,
    given: Vec<Vec<String>>,
    seqs: Vec<u64>,
    journal_seq: u64,
    /// The last global heads decided on, so that a round's heads are decided once.
    last_global: Option<(Vec<Tensor32>, Adoption)>,
}

impl Participant {
    /// Opens the run's serving version, its data and corrections (`corrections`, journalled up
    /// to entry `journal_seq`), and extracts or loads their features.
    pub fn open(
        opts: ParticipantOptions,
        corrections: &[(u64, Correction)],
        journal_seq: u64,
    ) -> Result<Self, FleetError> {
        let layout = Layout::new(&opts.run);
        layout.prepare()?;
        let (current, version) = layout.current()?;
        let (rc, serving) = run::load_run(&current)?;
        let spec = spec_of(&rc, &serving).map_err(|message| FleetError::Spec {
            run: opts.run.clone(),
            message,
        })?;
        let base = run::read_config(&opts.run)?;
        let tasks: Vec<TaskInfo> = rc.model.tasks.iter().map(|t| t.info()).collect();
        let place = retrain_data::data_dir(&base, &opts.run, opts.data.as_deref())?;
        let data = retrain_data::build(
            &place,
            &tasks,
            13,
            corrections,
            &layout.journal(),
            opts.correction_copies,
        )?;
        let (train, held, corr) = features(&opts, &rc, &data)?;
        Ok(Self {
            layout,
            serving,
            version,
            spec,
            train: Part {
                split: data.dataset.train,
                feats: Some(train),
            },
            held: Part {
                split: data.held_out,
                feats: Some(held),
            },
            corrections: Part {
                split: data.corrections,
                feats: corr,
            },
            given: data.given,
            seqs: data.seqs,
            journal_seq,
            rc,
            opts,
            last_global: None,
        })
    }

    /// The run.
    pub fn run(&self) -> &Path {
        &self.opts.run
    }

    /// The version served.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The folder of the version served (the run itself for version 0).
    pub fn version_dir(&self) -> PathBuf {
        self.layout
            .current()
            .map(|(dir, _)| dir)
            .unwrap_or_else(|_| self.opts.run.clone())
    }

    /// Local training examples (corrections counted once) and held-out examples.
    pub fn sizes(&self) -> (usize, usize) {
        let copies = self.opts.correction_copies.saturating_sub(1);
        let n = self.train.split.examples.len() - copies * self.corrections.split.examples.len();
        (n, self.held.split.examples.len())
    }

    /// `Ok` when the server's spec (JSON) fits this device's run.
    pub fn check_spec(&self, server: &str) -> Result<(), FleetError> {
        check(server, &self.spec).map_err(|message| FleetError::Spec {
            run: self.opts.run.clone(),
            message,
        })
    }

    /// A model of the run's architecture with the heads `tensors`.
    fn model_with(&self, tensors: &[Tensor32]) -> Result<TaskModel, String> {
        let model = TaskModel::new(self.rc.model.clone(), 0, &candle_core::Device::Cpu)
            .map_err(|e| e.to_string())?;
        load_tensors(&model, tensors)?;
        Ok(model)
    }

    /// Decides whether the global heads become the version served (once per distinct heads).
    pub fn consider(
        &mut self,
        global: &[Tensor32],
        flower_run: u64,
        server_round: i64,
    ) -> Result<Adoption, FleetError> {
        if let Some((g, a)) = &self.last_global {
            if g.as_slice() == global {
                return Ok(a.clone());
            }
        }
        let model = self.model_with(global).map_err(FleetError::Config)?;
        let serving = &self.serving;
        let old = self.held.with(|d| score(serving, d))?;
        let new = self.held_score(&model)?;
        let fixed = self.corrections_kept(&model)?;
        let unfixed: Vec<u64> = self
            .seqs
            .iter()
            .zip(&fixed)
            .filter(|(_, &ok)| !ok)
            .map(|(s, _)| *s)
            .collect();
        let mut adoption = Adoption {
            adopted: false,
            version: self.version,
            old_score: old.score(),
            new_score: new.score(),
            broken_corrections: unfixed.len(),
            reason: String::new(),
        };
        let same = tensors_of(&self.serving)?.as_slice() == global;
        match decide::decide(
            adoption.old_score,
            adoption.new_score,
            self.opts.swap_margin,
            &unfixed,
        ) {
            Ok(_) if same => adoption.reason = "the global heads are the ones served".into(),
            Ok(reason) => {
                let provenance = Provenance {
                    flower_run,
                    server_round,
                    old_score: adoption.old_score,
                    new_score: adoption.new_score,
                    journal_seq: self.journal_seq,
                };
                let (v, _) =
                    publish_version(&self.layout, &self.rc, &model, self.version, &provenance)?;
                self.version = v;
                self.serving = model;
                adoption.adopted = true;
                adoption.version = v;
                adoption.reason = reason;
            }
            Err(reason) => adoption.reason = reason,
        }
        self.last_global = Some((global.to_vec(), adoption.clone()));
        Ok(adoption)
    }

    fn held_score(&mut self, model: &TaskModel) -> Result<Metrics, FleetError> {
        Ok(self.held.with(|d| score(model, d))?)
    }

    /// Per correction: whether `model` answers every task it gives as given.
    fn corrections_kept(&mut self, model: &TaskModel) -> Result<Vec<bool>, FleetError> {
        if self.corrections.split.examples.is_empty() {
            return Ok(Vec::new());
        }
        let given = &self.given;
        let preds = self.corrections.with(|d| predict_split(model, d, 128))?;
        Ok(self
            .corrections
            .split
            .examples
            .iter()
            .zip(&preds)
            .zip(given)
            .map(|((ex, pred), tasks)| {
                tasks.iter().all(
                    |t| match (ex.labels.sentence.get(t), ex.labels.token.get(t)) {
                        (Some(g), _) => pred.sentence.get(t) == Some(g),
                        (None, Some(g)) => pred.token.get(t) == Some(g),
                        (None, None) => true,
                    },
                )
            })
            .collect())
    }

    /// A train instruction: adopt the global heads if they pass, train them locally, score.
    pub fn train_round(
        &mut self,
        global: &[Tensor32],
        fit: &LocalFit,
        flower_run: u64,
        server_round: i64,
    ) -> Result<RoundResult, FleetError> {
        let adoption = self.consider(global, flower_run, server_round)?;
        let model = self.model_with(global).map_err(FleetError::Config)?;
        let mut fit = fit.clone();
        fit.seed = fit.seed.wrapping_add(server_round as u64);
        let loss = self.train.with(|d| fit_local(&model, d, &fit))?;
        let held_out = self.held_score(&model)?;
        let mut tensors = tensors_of(&model)?;
        hostile(global, &mut tensors);
        Ok(RoundResult {
            tensors,
            examples: self.sizes().0,
            loss,
            held_out,
            adoption,
        })
    }

    /// An evaluate instruction: adopt the global heads if they pass; their held-out metrics.
    pub fn evaluate_round(
        &mut self,
        global: &[Tensor32],
        flower_run: u64,
        server_round: i64,
    ) -> Result<(Metrics, Adoption), FleetError> {
        let adoption = self.consider(global, flower_run, server_round)?;
        let model = self.model_with(global).map_err(FleetError::Config)?;
        Ok((self.held_score(&model)?, adoption))
    }

    /// The heads served now, in travel order.
    pub fn serving_tensors(&self) -> Result<Vec<Tensor32>, FleetError> {
        Ok(tensors_of(&self.serving)?)
    }
}

/// The test hook [`HOSTILE_ENV`]: turns an honest update into a hostile one.
fn hostile(global: &[Tensor32], tensors: &mut [Tensor32]) {
    let Ok(mode) = std::env::var(HOSTILE_ENV) else {
        return;
    };
    if mode == "nan" {
        if let Some(v) = tensors.first_mut().and_then(|t| t.values.first_mut()) {
            *v = f32::NAN;
        }
    } else if let Some(k) = mode
        .strip_prefix("scale:")
        .and_then(|k| k.parse::<f32>().ok())
    {
        for (t, g) in tensors.iter_mut().zip(global) {
            for (v, g) in t.values.iter_mut().zip(&g.values) {
                *v = g + k * (*v - g);
            }
        }
    }
}

fn context(opts: &ParticipantOptions, rc: &RunConfig) -> Result<FeatureContext, FleetError> {
    let files = run::backbone_files(rc, opts.backbone.as_deref())?;
    let mut ctx = FeatureContext::new(
        files,
        Some(rc.backbone.max_tokens),
        SessionOptions::with_threads(opts.threads),
        opts.cache_dir.clone().unwrap_or_else(default_cache_dir),
    )?;
    ctx.progress = false;
    Ok(ctx)
}

/// Features of the train, held-out and corrections splits (the corrections one at a time, as the
/// service answers them: see `serve::retrain::job`).
fn features(
    opts: &ParticipantOptions,
    rc: &RunConfig,
    data: &RetrainData,
) -> Result<(SplitFeatures, SplitFeatures, Option<SplitFeatures>), FleetError> {
    let mut ctx = context(opts, rc)?;
    let spec: &FeatureSpec = &rc.features;
    // No corrections: nothing to extract (and no cache entry that every device without
    // corrections would share and write at once).
    let corr = if data.corrections.examples.is_empty() {
        None
    } else {
        let batch = ctx.batch_size;
        ctx.batch_size = 1;
        let f = ctx.load_or_extract(&data.corrections, spec)?;
        ctx.batch_size = batch;
        Some(f)
    };
    let train = ctx.load_or_extract(&data.dataset.train, spec)?;
    let held = ctx.load_or_extract(&data.held_out, spec)?;
    Ok((train, held, corr))
}
