//! Training the heads (and, optionally, the top backbone layers) on cached features.
//!
//! One epoch reads only the feature cache. Parameters are grouped ([`Group`]); a frozen group gets
//! no optimizer update (and is not even run when its loss does not matter). Every epoch ends with a
//! validation pass (early stopping keeps the best weights) and an atomic checkpoint, so a killed
//! run continues with `--resume` to the same result as an uninterrupted one.

pub mod batch;
pub mod checkpoint;
pub mod optim;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::backbone::layers::{TopLayers, Unfrozen, LAYER_DROPOUT};
use crate::data::{Dataset, Example, Split};
use crate::eval::{self, LabelSets, Metrics, Prediction};
use crate::features::{FeatureContext, FeatureSpec, SplitFeatures, Unit};
use crate::heads::{Group, Heads, HeadsConfig, IntentHeadConfig, ParamSet, SlotHeadConfig};
use crate::infer::{decode_batch, to_prediction};
use crate::onnx::import::{BertConfig, Weights};
use crate::run::{self, BackboneRef, RunConfig, RUN_FORMAT};
use batch::{make_batch, make_token_batch, Batch, ExampleRows, TokenBatch, TokenRows};
use optim::{AdamW, GroupSettings};

/// Errors of training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Features(#[from] crate::features::FeatureError),
    #[error(transparent)]
    Run(#[from] run::RunError),
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{0}")]
    Invalid(String),
}

/// Training settings (validated; see the CLI for their flags and defaults).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainSettings {
    /// Epochs; 0 = [`auto_epochs`].
    pub epochs: usize,
    /// Stop after this many epochs without a better validation score.
    pub patience: usize,
    pub batch_size: usize,
    /// Peak learning rate of the heads.
    pub lr: f64,
    pub weight_decay: f64,
    pub seed: u64,
    /// Hidden states the heads read (0 = embeddings, L = last layer).
    pub states: Vec<usize>,
    pub intent_head: IntentHeadConfig,
    pub slot_head: SlotHeadConfig,
    /// Keep the intent head exactly as loaded from `init_from`.
    pub freeze_intent: bool,
    /// Keep the slot head exactly as loaded from `init_from`.
    pub freeze_slot: bool,
    /// A finished run whose heads initialise this one.
    pub init_from: Option<PathBuf>,
    /// Train the top N transformer layers of the backbone together with the heads (0 = backbone
    /// frozen).
    #[serde(default)]
    pub unfreeze_top: usize,
    /// Peak learning rate of the top unfrozen layer.
    #[serde(default = "default_layer_lr")]
    pub layer_lr: f64,
    /// Factor of the learning rate per layer below the top one (layer-wise decay).
    #[serde(default = "default_layer_lr_decay")]
    pub layer_lr_decay: f64,
    /// The Hugging Face checkpoint (config.json + model.safetensors) with the fp32 weights of the
    /// unfrozen layers.
    #[serde(default)]
    pub hf_weights: Option<PathBuf>,
    /// With unfrozen layers: epochs at the start during which only the heads learn (the layers
    /// run forward-only); the layers' learning rate then warms up over one epoch.
    #[serde(default)]
    pub heads_first: usize,
}

/// Default of [`TrainSettings::heads_first`] for `--unfreeze-top` runs.
pub const DEFAULT_HEADS_FIRST: usize = 0;

/// Default peak learning rate of the top unfrozen layer. Chosen on SNIPS' valid split
/// (`--unfreeze-top 2`, 6 epochs): 2e-4 reached 98.86 / 94.70 / 87.14 (intent / slot F1 /
/// sentence), 1e-4 98.86 / 94.47 / 86.43.
pub const DEFAULT_LAYER_LR: f64 = 2e-4;
/// Default layer-wise learning-rate decay.
pub const DEFAULT_LAYER_LR_DECAY: f64 = 0.9;

fn default_layer_lr() -> f64 {
    DEFAULT_LAYER_LR
}

fn default_layer_lr_decay() -> f64 {
    DEFAULT_LAYER_LR_DECAY
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            epochs: 0,
            patience: 6,
            batch_size: 64,
            lr: 3e-3,
            weight_decay: 0.01,
            seed: 13,
            states: Vec::new(),
            intent_head: IntentHeadConfig::default(),
            slot_head: SlotHeadConfig::default(),
            freeze_intent: false,
            freeze_slot: false,
            init_from: None,
            unfreeze_top: 0,
            layer_lr: DEFAULT_LAYER_LR,
            layer_lr_decay: DEFAULT_LAYER_LR_DECAY,
            hf_weights: None,
            heads_first: 0,
        }
    }
}

/// The default head sizes: [`IntentHeadConfig::default`] and [`SlotHeadConfig::default`] on a
/// frozen backbone; twice as wide (intent MLP 512, slot GRU 256 per direction) with unfrozen top
/// layers, where the epoch's cost is mostly the layers'. Chosen on SNIPS' valid split
/// (`--unfreeze-top 2`, 6 epochs, intent / slot F1 / sentence): 98.86 / 94.70 / 87.14 with the
/// frozen-backbone sizes, 98.71 / 95.17 / 87.71 with the GRU at 256, 98.86 / 95.50 / 88.71 with
/// both wider. On a frozen backbone the wider heads double the epoch's time.
pub fn default_heads(unfreeze_top: usize) -> (IntentHeadConfig, SlotHeadConfig) {
    let (intent, slot) = (IntentHeadConfig::default(), SlotHeadConfig::default());
    if unfreeze_top == 0 {
        return (intent, slot);
    }
    (
        IntentHeadConfig {
            hidden: 2 * intent.hidden,
            slot_states: true,
            ..intent
        },
        SlotHeadConfig {
            gru_hidden: 2 * slot.gru_hidden,
            ..slot
        },
    )
}

/// The default hidden states for a backbone with `layers` layers: the upper half plus the last,
/// at most four (the last layer of a sentence-embedding model carries little token information).
pub fn default_states(layers: usize) -> Vec<usize> {
    let first = layers.saturating_sub(3).max(1).min(layers);
    (first..=layers).collect()
}

/// Optimizer steps the default schedule aims for. Measured on SNIPS (13,084 sentences, batch 64):
/// 6 epochs (1,230 steps) reach the accuracy of longer schedules within noise.
pub const AUTO_STEPS: usize = 1200;

/// The default number of epochs: about [`AUTO_STEPS`] optimizer steps, at least 6, at most 100.
pub fn auto_epochs(examples: usize, batch_size: usize) -> usize {
    let steps = examples.div_ceil(batch_size.max(1)).max(1);
    AUTO_STEPS.div_ceil(steps).clamp(6, 100)
}

/// The default number of epochs with `unfreeze_top` layers unfrozen: the same as [`auto_epochs`].
/// Halving it (an earlier default) cost accuracy: on SNIPS with `--unfreeze-top 2`, 3 epochs gave
/// test slot F1 92.02, 6 epochs 93.37 (same layer learning rate).
pub fn auto_epochs_for(examples: usize, batch_size: usize, unfreeze_top: usize) -> usize {
    let _ = unfreeze_top;
    auto_epochs(examples, batch_size)
}

/// Per-split features with their examples.
pub struct SplitData<'a> {
    pub split: &'a Split,
    pub feats: SplitFeatures,
}

impl SplitData<'_> {
    /// Reads the features of example `i`.
    pub fn rows(&self, i: usize, scratch: &mut Vec<half::f16>) -> Result<ExampleRows, TrainError> {
        let mut rows = Vec::new();
        self.feats.read_rows(i, &mut rows, scratch)?;
        let kept = self.feats.meta.word_tokens[i]
            .iter()
            .map(|(s, e)| e > s)
            .collect();
        Ok(ExampleRows {
            rows,
            words: self.feats.meta.rows[i] as usize,
            kept,
            pooled: self.feats.pooled(i).to_vec(),
        })
    }

    /// Reads the token-level features of example `i` (a cache of [`Unit::Tokens`]).
    pub fn token_rows(
        &self,
        i: usize,
        scratch: &mut Vec<half::f16>,
    ) -> Result<TokenRows, TrainError> {
        let mut rows = Vec::new();
        self.feats.read_rows(i, &mut rows, scratch)?;
        Ok(TokenRows {
            rows,
            tokens: self.feats.meta.rows[i] as usize,
            word_tokens: self.feats.meta.word_tokens[i].clone(),
        })
    }

    /// Whether the cache holds token-level states (unfrozen top layers).
    pub fn is_tokens(&self) -> bool {
        self.feats.meta.spec.unit == Unit::Tokens
    }

    /// Reads examples `idx` and pads them into a batch for the heads (word level) or for the
    /// unfrozen layers (token level).
    pub fn batch(
        &self,
        idx: &[usize],
        scratch: &mut Vec<half::f16>,
        dev: &Device,
    ) -> Result<ReadBatch, TrainError> {
        let k = self.feats.meta.spec.states.len();
        let h = self.feats.meta.hidden;
        if self.is_tokens() {
            let rows: Vec<TokenRows> = idx
                .iter()
                .map(|&i| self.token_rows(i, scratch))
                .collect::<Result<_, _>>()?;
            let refs: Vec<&TokenRows> = rows.iter().collect();
            let words = rows.iter().map(|r| r.word_tokens.len()).collect();
            let kept = rows
                .iter()
                .map(|r| r.word_tokens.iter().map(|(s, e)| e > s).collect())
                .collect();
            Ok((
                Input::Tokens(make_token_batch(&refs, k, h, dev)?),
                words,
                kept,
            ))
        } else {
            let rows: Vec<ExampleRows> = idx
                .iter()
                .map(|&i| self.rows(i, scratch))
                .collect::<Result<_, _>>()?;
            let refs: Vec<&ExampleRows> = rows.iter().collect();
            let b = make_batch(&refs, k, h, dev)?;
            let words = rows.iter().map(|r| r.words).collect();
            let kept = rows.into_iter().map(|r| r.kept).collect();
            Ok((Input::Words(b), words, kept))
        }
    }
}

/// A batch read from the cache: the padded input, words per example, and per example which words
/// have features.
pub type ReadBatch = (Input, Vec<usize>, Vec<Vec<bool>>);

/// A padded batch as read from the cache.
pub enum Input {
    /// Word-level states: the heads' input as is (frozen backbone).
    Words(Batch),
    /// Token-level states: the unfrozen layers run first ([`Heads::token_inputs`]).
    Tokens(TokenBatch),
}

impl Input {
    /// Longest sentence in words.
    pub fn width(&self) -> usize {
        match self {
            Input::Words(b) => b.width,
            Input::Tokens(t) => t.width,
        }
    }

    /// The heads' input (running the unfrozen layers on token-level states; `dropout`: training).
    pub fn heads_input(
        self,
        heads: &Heads,
        dropout: Option<(f32, &mut ChaCha8Rng)>,
    ) -> Result<Batch, TrainError> {
        Ok(match self {
            Input::Words(b) => b,
            Input::Tokens(t) => heads.token_inputs(&t, dropout)?,
        })
    }
}

/// What `train` produced.
pub struct TrainOutcome {
    pub config: RunConfig,
    pub valid: Metrics,
    pub test: Option<(Metrics, eval::EvalReport)>,
}

/// Label sets of a training split: sorted intents, and tags with `O` first.
pub fn label_lists(train: &Split) -> (Vec<String>, Vec<String>) {
    let intents: BTreeSet<String> = train
        .examples
        .iter()
        .filter_map(|e| e.intent.clone())
        .collect();
    let mut tags: BTreeSet<String> = train
        .examples
        .iter()
        .flat_map(|e| e.tags.iter().flatten().cloned())
        .collect();
    let mut tag_list = Vec::new();
    if train.has_tags() {
        tags.remove("O");
        tag_list.push("O".to_string());
        tag_list.extend(tags);
    }
    (
        if train.has_intent() {
            intents.into_iter().collect()
        } else {
            Vec::new()
        },
        tag_list,
    )
}

/// Training targets of the heads that train: intent ids, and (flat word index, tag id) pairs.
fn targets(
    heads: &Heads,
    settings: &TrainSettings,
    ex: &[&Example],
    width: usize,
    dev: &Device,
) -> Result<(Option<Tensor>, Option<(Tensor, Tensor)>), TrainError> {
    let intent = if heads.intent.is_some() && trainable(settings, Group::Intent) {
        let ids: Vec<u32> = ex
            .iter()
            .map(|e| {
                let i = e.intent.as_ref().expect("training examples have intents");
                heads
                    .config
                    .intents
                    .iter()
                    .position(|x| x == i)
                    .expect("label from train") as u32
            })
            .collect();
        Some(Tensor::from_vec(ids, ex.len(), dev)?)
    } else {
        None
    };
    let tags = if heads.slot.is_some() && trainable(settings, Group::Slot) {
        let (mut idx, mut tgt) = (Vec::new(), Vec::new());
        for (b, e) in ex.iter().enumerate() {
            for (w, t) in e
                .tags
                .as_ref()
                .expect("training examples have tags")
                .iter()
                .enumerate()
            {
                if let Some(id) = heads.config.tags.iter().position(|x| x == t) {
                    idx.push((b * width + w) as u32);
                    tgt.push(id as u32);
                }
            }
        }
        let n = idx.len();
        Some((
            Tensor::from_vec(idx, n, dev)?,
            Tensor::from_vec(tgt, n, dev)?,
        ))
    } else {
        None
    };
    Ok((intent, tags))
}

/// A padded batch with its training targets.
type Prepared = (Input, Option<Tensor>, Option<(Tensor, Tensor)>);

/// Predicts labels for every example of a split from its cached features.
pub fn predict_split(
    heads: &Heads,
    data: &SplitData,
    batch_size: usize,
) -> Result<Vec<Prediction>, TrainError> {
    let dev = Device::Cpu;
    let n = data.feats.len();
    let mut scratch = Vec::new();
    let mut preds = Vec::with_capacity(n);
    for start in (0..n).step_by(batch_size.max(1)) {
        let end = (start + batch_size).min(n);
        let idx: Vec<usize> = (start..end).collect();
        let (input, words, kept) = data.batch(&idx, &mut scratch, &dev)?;
        let b = input.heads_input(heads, None)?;
        for (d, k) in decode_batch(heads, &b, &words)?.iter().zip(&kept) {
            preds.push(to_prediction(heads, d, k));
        }
    }
    Ok(preds)
}

/// Shuffled batches of similar-length examples: shuffle, sort windows of 32 batches by length,
/// cut into batches, shuffle the batch order. Less padding, same randomness from the seed.
pub fn bucketed_batches(
    lengths: &[u32],
    batch_size: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.shuffle(rng);
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for window in order.chunks(batch_size * 32) {
        let mut w = window.to_vec();
        w.sort_by_key(|&i| lengths[i]);
        batches.extend(w.chunks(batch_size).map(<[usize]>::to_vec));
    }
    batches.shuffle(rng);
    batches
}

/// Whether the intent head reads the slot head's states: asked for, and the data has both tasks.
fn reads_slot_states(settings: &TrainSettings, intents: &[String], tags: &[String]) -> bool {
    settings.intent_head.slot_states && !intents.is_empty() && !tags.is_empty()
}

/// Validation score for early stopping: the mean of the available headline metrics.
pub fn score(m: &Metrics) -> f64 {
    let v: Vec<f64> = [m.intent_accuracy, m.slot_f1, m.sentence_accuracy]
        .into_iter()
        .flatten()
        .collect();
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Which groups train under these settings.
pub fn trainable(settings: &TrainSettings, g: Group) -> bool {
    match g {
        Group::Intent => !settings.freeze_intent,
        Group::Slot => !settings.freeze_slot,
        // Only the unfrozen layers are parameters at all.
        Group::Layer(_) => settings.unfreeze_top > 0,
    }
}

/// Everything `train` needs besides the settings.
pub struct TrainJob<'a> {
    pub dataset: &'a Dataset,
    pub ctx: &'a mut FeatureContext,
    pub out: PathBuf,
    pub settings: TrainSettings,
    /// Print per-epoch progress on stderr.
    pub verbose: bool,
    /// Continue from the checkpoint in `out`.
    pub resume: bool,
}

/// Trains, validates every epoch, keeps the best weights, writes the run and evaluates on test.
pub fn train(job: TrainJob) -> Result<TrainOutcome, TrainError> {
    let TrainJob {
        dataset,
        ctx,
        out,
        settings,
        verbose,
        resume,
    } = job;
    let dev = Device::Cpu;
    let layers = ctx.layers();
    let states = if settings.states.is_empty() {
        default_states(layers)
    } else {
        settings.states.clone()
    };
    if let Some(bad) = states.iter().find(|&&s| s > layers) {
        return Err(TrainError::Invalid(format!(
            "hidden state {bad} does not exist: the backbone has {layers} layers (0..={layers})"
        )));
    }
    let unfreeze = settings.unfreeze_top;
    if unfreeze > layers {
        return Err(TrainError::Invalid(format!(
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
    let (intents, tags) = label_lists(&dataset.train);
    let mut settings = settings;
    settings.states = states.clone();
    settings.intent_head.slot_states = reads_slot_states(&settings, &intents, &tags);
    if settings.epochs == 0 {
        settings.epochs = auto_epochs_for(
            dataset.train.examples.len(),
            settings.batch_size,
            settings.unfreeze_top,
        );
    }
    if settings.unfreeze_top > 0 && settings.heads_first >= settings.epochs {
        return Err(TrainError::Invalid(format!(
            "--heads-first {} leaves no epoch of {} for the unfrozen layers",
            settings.heads_first, settings.epochs
        )));
    }

    // Initial heads: fresh, or from another run (frozen heads must come from one).
    let init = match &settings.init_from {
        Some(dir) => Some(run::load_run(dir)?),
        None => None,
    };
    let config = match &init {
        Some((rc, _)) => {
            if run::head_states(rc) != states {
                return Err(TrainError::Invalid(format!(
                    "--init-from run reads hidden states {:?}, this run {states:?}; use the same --layers",
                    run::head_states(rc)
                )));
            }
            if let Some(t) = &rc.top_layers {
                if t.first != first {
                    return Err(TrainError::Invalid(format!(
                        "the --init-from run fine-tuned the top {} backbone layers; its heads read their \
                         outputs, so train with --unfreeze-top {} too",
                        layers - t.first,
                        layers - t.first
                    )));
                }
            }
            let mut c = rc.heads.clone();
            if !intents.is_empty() && !settings.freeze_intent && intents != c.intents {
                return Err(TrainError::Invalid(format!(
                    "the intent labels differ from the --init-from run's ({} vs {}); train a new run instead",
                    intents.len(),
                    c.intents.len()
                )));
            }
            if !tags.is_empty() && !settings.freeze_slot && tags != c.tags {
                return Err(TrainError::Invalid(format!(
                    "the slot tags differ from the --init-from run's ({} vs {}); train a new run instead",
                    tags.len(),
                    c.tags.len()
                )));
            }
            c.intent_head.dropout = settings.intent_head.dropout;
            c.slot_head.dropout = settings.slot_head.dropout;
            c
        }
        None => HeadsConfig {
            hidden: 0,
            states: states.len(),
            intents: intents.clone(),
            tags: tags.clone(),
            intent_head: settings.intent_head.clone(),
            slot_head: settings.slot_head.clone(),
        },
    };
    // A task the data lacks keeps its head as initialised (frozen).
    if intents.is_empty() {
        settings.freeze_intent = true;
    }
    if tags.is_empty() {
        settings.freeze_slot = true;
    }
    if init.is_none()
        && (settings.freeze_intent && !intents.is_empty()
            || settings.freeze_slot && !tags.is_empty())
    {
        return Err(TrainError::Invalid(
            "freezing a head needs --init-from RUN (a frozen fresh head would be random)".into(),
        ));
    }

    let train_f = ctx.load_or_extract(&dataset.train, &spec)?;
    let valid_f = ctx.load_or_extract(&dataset.valid, &spec)?;
    let test_f = match &dataset.test {
        Some(t) => Some(ctx.load_or_extract(t, &spec)?),
        None => None,
    };
    // Training reads only the cache: the backbone's memory is not needed any more.
    ctx.release_backbone();
    let hidden = train_f.meta.hidden;
    let mut config = config;
    config.hidden = hidden;
    let hf_config = hf.as_ref().map(|(c, _, _)| c.clone());
    let mut heads = Heads::new(config, settings.seed, &dev)?;
    if let Some((bert, weights, _)) = &hf {
        let top = TopLayers::load(&mut heads.params, weights, bert, first, &dev)
            .map_err(|e| TrainError::Invalid(format!("--hf-weights: {e}")))?;
        heads.top = Some(Unfrozen {
            top,
            cached: spec.states.clone(),
            head_states: states.clone(),
        });
    }
    drop(hf);
    if let Some((ref rc, ref src)) = init {
        let bytes = run::weights_bytes(&src.params)?;
        // An init run with a frozen backbone provides the heads; the layers come from the checkpoint.
        let target = if rc.top_layers.is_some() {
            heads.params.clone()
        } else {
            ParamSet {
                params: heads
                    .params
                    .params
                    .iter()
                    .filter(|p| !matches!(p.group, Group::Layer(_)))
                    .cloned()
                    .collect(),
            }
        };
        run::load_weights(
            &bytes,
            &target,
            settings.init_from.as_deref().unwrap_or(Path::new("")),
        )?;
    }
    let train_d = SplitData {
        split: &dataset.train,
        feats: train_f,
    };
    let valid_d = SplitData {
        split: &dataset.valid,
        feats: valid_f,
    };
    let frozen_before = frozen_snapshot(&heads, &settings)?;
    let n_trainable = heads.params.count(&|g| trainable(&settings, g));
    if n_trainable == 0 {
        return Err(TrainError::Invalid(
            "nothing to train: every head is frozen".into(),
        ));
    }

    // The layers' own warm-up factor when they start after --heads-first epochs (set per step).
    let layer_warm = std::cell::Cell::new(1.0f64);
    let group_settings = |g: Group| -> Option<GroupSettings> {
        trainable(&settings, g).then_some(match g {
            // Layer-wise decay: the top layer at --layer-lr, each layer below a factor smaller.
            Group::Layer(i) => GroupSettings {
                lr: settings.layer_lr
                    * settings.layer_lr_decay.powi((layers - 1 - i) as i32)
                    * layer_warm.get(),
                weight_decay: settings.weight_decay,
            },
            _ => GroupSettings {
                lr: settings.lr,
                weight_decay: settings.weight_decay,
            },
        })
    };
    if verbose
        && heads.config.intent_head.slot_states
        && trainable(&settings, Group::Slot)
        && !trainable(&settings, Group::Intent)
    {
        eprintln!(
            "note: the frozen intent head reads the slot head's states; its tensors stay byte-identical, \
             but its predictions follow the retrained slot head"
        );
    }
    let mut opt = AdamW::default();
    let mut state = checkpoint::State::new(&settings);
    let ckpt_dir = out.join(checkpoint::DIR);
    if resume {
        state = checkpoint::load(&ckpt_dir, &heads.params, &mut opt)?;
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
        None => run::weights_bytes(&heads.params)?,
    };
    let train_ex: Vec<&Example> = dataset.train.examples.iter().collect();
    let steps_per_epoch = train_ex.len().div_ceil(settings.batch_size);
    let total_steps = (steps_per_epoch * settings.epochs).max(1);
    while state.epoch < settings.epochs && state.bad_epochs < settings.patience {
        let t0 = Instant::now();
        let epoch = state.epoch;
        let mut rng = ChaCha8Rng::seed_from_u64(
            settings
                .seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(epoch as u64 + 1),
        );
        let batches = bucketed_batches(&train_d.feats.meta.rows, settings.batch_size, &mut rng);
        let mut loss_sum = 0f64;
        let mut prof = [0f64; 5];
        let mut tick = Instant::now();
        let mut lap = |i: usize, prof: &mut [f64; 5]| {
            prof[i] += tick.elapsed().as_secs_f64();
            tick = Instant::now();
        };
        // Batches are read from the cache and padded on a second thread, one or two steps ahead.
        std::thread::scope(|scope| -> Result<(), TrainError> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Prepared, TrainError>>(2);
            let (batches, heads, settings, train_d, train_ex) =
                (&batches, &heads, &settings, &train_d, &train_ex);
            scope.spawn(move || {
                let mut scratch = Vec::new();
                for chunk in batches {
                    let prepared = (|| -> Result<Prepared, TrainError> {
                        let (b, _, _) = train_d.batch(chunk, &mut scratch, &Device::Cpu)?;
                        let ex: Vec<&Example> = chunk.iter().map(|&i| train_ex[i]).collect();
                        let (ti, ts) = targets(heads, settings, &ex, b.width(), &Device::Cpu)?;
                        Ok((b, ti, ts))
                    })();
                    let failed = prepared.is_err();
                    // A closed channel means the consumer stopped (on an error of its own).
                    if tx.send(prepared).is_err() || failed {
                        break;
                    }
                }
            });
            for (step, prepared) in rx.iter().enumerate() {
                let (b, ti, ts) = prepared?;
                lap(0, &mut prof);
                let mut b = b.heads_input(heads, Some((LAYER_DROPOUT, &mut rng)))?;
                if epoch < settings.heads_first {
                    // Heads only: no gradient flows back into the layers.
                    b.words = b.words.detach();
                    b.pooled = b.pooled.detach();
                }
                lap(4, &mut prof);
                let out = heads.forward(
                    &b,
                    ti.is_some() && trainable(settings, Group::Intent),
                    ts.is_some() && trainable(settings, Group::Slot),
                    Some(&mut rng),
                )?;
                let mut loss: Option<Tensor> = None;
                if let (Some(logits), Some(t)) = (&out.intent, &ti) {
                    loss = Some(candle_nn::loss::cross_entropy(logits, t)?);
                }
                if let (Some(logits), Some((idx, t))) = (&out.slot, &ts) {
                    let n_tags = heads.config.tags.len();
                    let flat = logits.reshape(((), n_tags))?.index_select(idx, 0)?;
                    let l = candle_nn::loss::cross_entropy(&flat, t)?;
                    loss = Some(match loss {
                        Some(x) => (x + l)?,
                        None => l,
                    });
                }
                lap(1, &mut prof);
                let Some(loss) = loss else { continue };
                loss_sum += loss.to_scalar::<f32>()? as f64;
                let grads = loss.backward()?;
                lap(2, &mut prof);
                let done = epoch * steps_per_epoch + step;
                // Linear warm-up over the first epoch, then cosine decay to a tenth.
                let warm = (done as f64 + 1.0) / steps_per_epoch as f64;
                let layers_start = settings.heads_first * steps_per_epoch;
                layer_warm.set(if settings.heads_first == 0 {
                    1.0
                } else {
                    ((done as f64 + 1.0 - layers_start as f64) / steps_per_epoch as f64)
                        .clamp(0.0, 1.0)
                });
                let cos =
                    0.5 * (1.0 + (std::f64::consts::PI * done as f64 / total_steps as f64).cos());
                opt.step(
                    &heads.params,
                    &grads,
                    &group_settings,
                    warm.min(1.0) * (0.1 + 0.9 * cos),
                )?;
                lap(3, &mut prof);
            }
            Ok(())
        })?;
        let t_train = t0.elapsed().as_secs_f64();
        let preds = predict_split(&heads, &valid_d, 128)?;
        let labels = LabelSets {
            intents: heads.config.intents.iter().cloned().collect(),
            slot_types: slot_types(&heads.config.tags),
        };
        let m = eval::evaluate(&valid_d.split.examples, &preds, &labels).metrics;
        let s = score(&m);
        let improved = s > state.best_score;
        if improved {
            state.best_score = s;
            state.best_epoch = epoch + 1;
            state.bad_epochs = 0;
            best_bytes = run::weights_bytes(&heads.params)?;
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
        checkpoint::save(&ckpt_dir, &state, &heads.params, &opt, &best_bytes)?;
        if std::env::var_os("EDGETUNE_PROFILE").is_some() {
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
    run::load_weights(&best_bytes, &heads.params, &ckpt_dir)?;
    check_frozen(&heads, &settings, &frozen_before)?;
    if verbose && !frozen_before.is_empty() {
        let names: Vec<&str> = frozen_before.iter().map(|(n, _)| n.as_str()).collect();
        eprintln!(
            "frozen: {} tensors verified byte-identical after training ({})",
            names.len(),
            names.join(", ")
        );
    }

    let valid_preds = predict_split(&heads, &valid_d, 128)?;
    let labels = LabelSets {
        intents: heads.config.intents.iter().cloned().collect(),
        slot_types: slot_types(&heads.config.tags),
    };
    let valid_m = eval::evaluate(&valid_d.split.examples, &valid_preds, &labels).metrics;
    let mut test = None;
    if let (Some(ts), Some(tf)) = (&dataset.test, test_f) {
        let td = SplitData {
            split: ts,
            feats: tf,
        };
        let preds = predict_split(&heads, &td, 128)?;
        let report = eval::evaluate(&ts.examples, &preds, &labels);
        test = Some((report.metrics.clone(), report));
    }
    let mut metrics = std::collections::BTreeMap::new();
    metrics.insert(
        "valid".to_string(),
        serde_json::to_value(&valid_m).expect("metrics serialize"),
    );
    if let Some((m, _)) = &test {
        metrics.insert(
            "test".to_string(),
            serde_json::to_value(m).expect("metrics serialize"),
        );
    }
    let mut training = serde_json::to_value(&settings).expect("settings serialize");
    training["best_epoch"] = state.best_epoch.into();
    training["epochs_run"] = state.epoch.into();
    training["data"] = dataset.train.source.display().to_string().into();
    training["truncated_train_examples"] = train_d.feats.meta.truncated.len().into();
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
            hidden,
            max_tokens: ctx.tokenizer.max_tokens(),
        },
        features: spec,
        top_layers: heads.top.as_ref().map(|u| run::TopLayersRef {
            first: u.top.first,
            head_states: u.head_states.clone(),
            config: hf_config.clone().expect("loaded with the layers"),
            hf_weights: settings.hf_weights.clone().unwrap_or_default(),
        }),
        heads: heads.config.clone(),
        weights: run::WeightsRef {
            file: run::WEIGHTS_FILE.into(),
            sha256: String::new(),
        },
        training,
        metrics,
    };
    let weights = run::weights_bytes(&heads.params)?;
    let rc = run::save_run(&out, rc, &weights)?;
    checkpoint::remove(&ckpt_dir);
    Ok(TrainOutcome {
        config: rc,
        valid: valid_m,
        test,
    })
}

/// Loads the Hugging Face checkpoint of `settings.hf_weights` and checks that it matches the
/// backbone (`layers` layers of width `hidden`; `hidden` 0 = not declared by the graph).
pub fn load_hf(
    settings: &TrainSettings,
    layers: usize,
    hidden: usize,
) -> Result<(BertConfig, Weights, PathBuf), TrainError> {
    let dir = settings.hf_weights.clone().ok_or_else(|| {
        TrainError::Invalid(
            "--unfreeze-top needs the backbone's fp32 weights: pass --hf-weights DIR (a Hugging Face \
             checkpoint with config.json and model.safetensors)"
                .into(),
        )
    })?;
    let bad = |m: String| TrainError::Invalid(format!("--hf-weights {}: {m}", dir.display()));
    let cfg = BertConfig::load(&dir.join("config.json")).map_err(|e| bad(e.to_string()))?;
    if cfg.num_hidden_layers != layers || (hidden != 0 && cfg.hidden_size != hidden) {
        return Err(bad(format!(
            "the checkpoint has {} layers of width {}, the backbone {layers} layers of width {}; \
             pass the checkpoint the backbone was made from",
            cfg.num_hidden_layers,
            cfg.hidden_size,
            if hidden == 0 {
                "?".to_string()
            } else {
                hidden.to_string()
            }
        )));
    }
    let weights = Weights::load(&dir.join("model.safetensors")).map_err(|e| bad(e.to_string()))?;
    Ok((cfg, weights, dir))
}

/// The plan printed before training (and by `--dry-run`): trainable parameters, feature cache size
/// and expected peak memory.
pub fn plan(dataset: &Dataset, ctx: &FeatureContext, settings: &TrainSettings) -> String {
    plan_and_peak(dataset, ctx, settings).0
}

/// The expected peak memory of `train` (bytes), as [`plan`] prints it.
pub fn expected_peak(dataset: &Dataset, ctx: &FeatureContext, settings: &TrainSettings) -> usize {
    plan_and_peak(dataset, ctx, settings).1
}

/// Fits `train` into `budget` bytes: turns off ONNX Runtime's memory-pattern planning and halves
/// the extraction batch (down to 4) and then the training batch (down to 16) until the expected
/// peak fits. Returns what was chosen, or an error naming the smallest expected peak.
pub fn fit_memory(
    dataset: &Dataset,
    ctx: &mut FeatureContext,
    settings: &mut TrainSettings,
    budget: usize,
) -> Result<String, TrainError> {
    ctx.session.memory_pattern = false;
    ctx.session.arena = false;
    loop {
        let peak = expected_peak(dataset, ctx, settings);
        if peak <= budget {
            return Ok(format!(
                "memory budget {} MiB: extraction batch {}, training batch {}, ONNX Runtime arena and memory \
                 patterns off; expected peak ~{} MiB",
                budget / MIB,
                ctx.batch_size,
                settings.batch_size,
                peak / MIB
            ));
        }
        if ctx.batch_size > 4 {
            ctx.batch_size /= 2;
        } else if settings.batch_size > 16 {
            settings.batch_size /= 2;
        } else {
            return Err(TrainError::Invalid(format!(
                "--max-memory {} MiB is too small: even with batches of {} (extraction) and {} \
                 (training) this job is expected to need ~{} MiB",
                budget / MIB,
                ctx.batch_size,
                settings.batch_size,
                peak / MIB
            )));
        }
    }
}

/// Peak resident memory of this process so far (bytes), where the OS reports it.
pub fn peak_rss() -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }
    #[cfg(not(target_os = "linux"))]
    None
}

fn plan_and_peak(
    dataset: &Dataset,
    ctx: &FeatureContext,
    settings: &TrainSettings,
) -> (String, usize) {
    let layers = ctx.layers();
    let states = if settings.states.is_empty() {
        default_states(layers)
    } else {
        settings.states.clone()
    };
    let h = ctx.hidden();
    let k = states.len();
    let n_train = dataset.train.examples.len();
    let steps = n_train.div_ceil(settings.batch_size.max(1));
    let epochs = if settings.epochs == 0 {
        auto_epochs_for(n_train, settings.batch_size, settings.unfreeze_top)
    } else {
        settings.epochs
    };
    let (intents, tags) = label_lists(&dataset.train);
    let intent_params = if intents.is_empty() {
        0
    } else {
        let ih = settings.intent_head.hidden;
        let slot_in = if reads_slot_states(settings, &intents, &tags) {
            2 * settings.slot_head.gru_hidden
        } else {
            0
        };
        (k + 1) + (h + 1) + ((2 * h + slot_in) * ih + ih) + (ih * intents.len() + intents.len())
    };
    let slot_params = if tags.is_empty() {
        0
    } else {
        let g = settings.slot_head.gru_hidden;
        (k + 1) + (h * g + g) + 2 * (6 * g * g + 6 * g) + (2 * g * tags.len() + tags.len())
    };
    // Unfrozen layers: attention (4 dense h×h), FFN (h×4h, 4h×h), two layer norms, per layer.
    let n_top = settings.unfreeze_top.min(layers);
    let ffn = 4 * h;
    let layer_params = n_top * (4 * (h * h + h) + (h * ffn + ffn) + (ffn * h + h) + 4 * h);
    let trainable = (if settings.freeze_intent {
        0
    } else {
        intent_params
    }) + (if settings.freeze_slot { 0 } else { slot_params })
        + layer_params;
    let words: usize = [
        Some(&dataset.train),
        Some(&dataset.valid),
        dataset.test.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|s| s.examples.iter().map(|e| e.words.len()).sum::<usize>())
    .sum();
    let examples: usize = [
        Some(&dataset.train),
        Some(&dataset.valid),
        dataset.test.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|s| s.examples.len())
    .sum();
    // With unfrozen layers the cache holds token-level states (the heads' states up to the first
    // unfrozen layer's input, and that input): about 1.3 tokens per word plus [CLS] and [SEP].
    let first = layers - n_top;
    let cached_k = if n_top > 0 {
        crate::backbone::layers::Unfrozen::cached_states(&states, first).len()
    } else {
        k
    };
    let rows = if n_top > 0 {
        words * 13 / 10 + 2 * examples
    } else {
        words
    };
    let cache = rows * cached_k * h * 2 + examples * h * 4;
    let model_bytes = std::fs::metadata(&ctx.files.onnx)
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    let longest = dataset
        .train
        .examples
        .iter()
        .map(|e| e.words.len())
        .max()
        .unwrap_or(1);
    // ORT holds the model about three times over (weights, prepacked copies, arena); one batch of
    // activations per state; candle keeps weights, two Adam moments, gradients and the batch graph.
    let extraction = 3 * model_bytes
        + ctx.batch_size * ctx.tokenizer.max_tokens().min(4 * longest) * h * 4 * (layers + 2) * 2;
    let longest_tokens = longest * 2 + 2;
    // Per unfrozen layer and token the backward pass keeps about 16 hidden-sized activations, two
    // FFN-sized ones and the attention scores of every head.
    let heads_n = (h / 32).max(1);
    let layer_acts = n_top
        * settings.batch_size
        * longest_tokens
        * (16 * h + 2 * ffn + 3 * heads_n * longest_tokens)
        * 4;
    let training = 4 * 4 * (intent_params + slot_params + layer_params)
        + settings.batch_size * longest * (k + 6) * h * 4 * 3
        + layer_acts
        + if n_top > 0 {
            2 * settings.batch_size * longest_tokens * cached_k * h * 4
        } else {
            0
        };
    let tokenizer_bytes = std::fs::metadata(&ctx.files.tokenizer)
        .map(|m| m.len() as usize * 8)
        .unwrap_or(0);
    let peak = 40 * MIB + tokenizer_bytes + extraction.max(training) + examples * h * 4;
    let frozen: Vec<&str> = [
        (settings.freeze_intent && !intents.is_empty(), "intent head"),
        (settings.freeze_slot && !tags.is_empty(), "slot head"),
        (n_top == 0, "backbone"),
    ]
    .into_iter()
    .filter_map(|(f, n)| f.then_some(n))
    .collect();
    let top = if n_top > 0 {
        format!(
            ", top {n_top} backbone layers {layer_params} (layers {first}..{layers}, LR {:e} x {} per layer below{})",
            settings.layer_lr,
            settings.layer_lr_decay,
            if settings.heads_first > 0 {
                format!(", from epoch {}", settings.heads_first + 1)
            } else {
                String::new()
            }
        )
    } else {
        String::new()
    };
    let mut frozen: Vec<String> = frozen.into_iter().map(str::to_string).collect();
    if n_top > 0 {
        frozen.push(if first > 0 {
            format!("embeddings and backbone layers 0..{first}")
        } else {
            "embeddings".to_string()
        });
    }
    let cache_kind = if n_top > 0 {
        format!(
            "token-level states {:?}",
            crate::backbone::layers::Unfrozen::cached_states(&states, first)
        )
    } else {
        "word-level".to_string()
    };
    let reads = if reads_slot_states(settings, &intents, &tags) {
        ", reading the slot head's states"
    } else {
        ""
    };
    let text = format!(
        "plan: heads read hidden states {states:?} of {layers}; {epochs} epochs of {steps} steps; \
         trainable parameters {trainable} \
         (intent head {intent_params}{reads}, slot head {slot_params}{top}); frozen: {}; feature cache ({cache_kind}) ~{:.1} MiB; \
         expected peak memory ~{:.0} MiB",
        frozen.join(", "),
        cache as f64 / MIB as f64,
        peak as f64 / MIB as f64
    );
    (text, peak)
}

const MIB: usize = 1 << 20;

/// Slot types (`X` of `B-X`/`I-X`) of a tag list.
pub fn slot_types(tags: &[String]) -> BTreeSet<String> {
    tags.iter()
        .filter_map(|t| t.get(2..).filter(|_| t.len() > 2).map(str::to_string))
        .collect()
}

/// Headline metrics in one line.
pub fn fmt_metrics(m: &Metrics) -> String {
    let mut parts = Vec::new();
    if let Some(v) = m.intent_accuracy {
        parts.push(format!("intent {:.2}%", v * 100.0));
    }
    if let Some(v) = m.slot_f1 {
        parts.push(format!("slot F1 {:.2}", v * 100.0));
    }
    if let Some(v) = m.sentence_accuracy {
        parts.push(format!("sentence {:.2}%", v * 100.0));
    }
    parts.join(", ")
}

type Snapshot = Vec<(String, Vec<u8>)>;

fn frozen_snapshot(heads: &Heads, settings: &TrainSettings) -> Result<Snapshot, TrainError> {
    let mut out = Vec::new();
    for p in heads
        .params
        .params
        .iter()
        .filter(|p| !trainable(settings, p.group))
    {
        let v: Vec<f32> = p.var.as_tensor().flatten_all()?.to_vec1()?;
        out.push((p.name.clone(), bytemuck::cast_slice(&v).to_vec()));
    }
    Ok(out)
}

/// Verifies that every frozen tensor is byte-identical to its state before training.
fn check_frozen(
    heads: &Heads,
    settings: &TrainSettings,
    before: &Snapshot,
) -> Result<(), TrainError> {
    let after = frozen_snapshot(heads, settings)?;
    for ((name, a), (_, b)) in before.iter().zip(&after) {
        if a != b {
            return Err(TrainError::Invalid(format!(
                "internal error: frozen tensor `{name}` changed during training"
            )));
        }
    }
    Ok(())
}
