//! Training settings: every default declared once, here, with the reason for it; the command line
//! reads its defaults from [`TrainSettings::default`] and [`default_heads`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::{SentenceHeadConfig, TokenHeadConfig};

/// Training settings (validated by the command line before any work starts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// Epochs; 0 = [`auto_epochs`]. Early stopping may end sooner.
    pub epochs: usize,
    /// Stop after this many epochs without a better validation score.
    pub patience: usize,
    /// Examples per optimizer step.
    pub batch_size: usize,
    /// Peak learning rate of the heads (AdamW, warm-up over the first epoch, then cosine decay to a
    /// tenth).
    pub lr: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Seed of initialisation, shuffling, dropout and the held-out split.
    pub seed: u64,
    /// Hidden states the heads read (0 = embeddings, L = last layer); empty = [`default_states`].
    #[serde(alias = "states")]
    pub hidden_states: Vec<usize>,
    /// The shape of every sentence head.
    pub sentence_head: SentenceHeadConfig,
    /// The shape of every token head.
    pub token_head: TokenHeadConfig,
    /// Sentence heads also read the states of a token task (the first span task, else the first
    /// token task) and train its GRU jointly (`--intent-reads-slots`).
    #[serde(default)]
    pub sentence_reads_tokens: bool,
    /// Tasks to keep exactly as loaded from `init_from` (byte-identical).
    #[serde(default)]
    pub freeze: Vec<String>,
    /// Loss weight per task (default 1).
    #[serde(default)]
    pub task_weights: BTreeMap<String, f64>,
    /// Train only these tasks of the data (`--tasks`); empty = all.
    #[serde(default)]
    pub tasks: Vec<String>,
    /// A finished run whose heads initialise this one.
    pub init_from: Option<PathBuf>,
    /// Train the top N transformer layers of the backbone together with the heads (0 = backbone
    /// frozen).
    #[serde(default)]
    pub unfreeze_top: usize,
    /// Peak learning rate of the top unfrozen layer. 2e-4 was chosen on SNIPS' valid split
    /// (`--unfreeze-top 2`, 6 epochs): 98.86 / 94.70 / 87.14 (intent / slot F1 / sentence), 1e-4
    /// 98.86 / 94.47 / 86.43.
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
    /// run forward-only); the layers' learning rate then warms up over one epoch. Off by default:
    /// it did not help on SNIPS' valid split (`docs/experiments.md`).
    #[serde(default)]
    pub heads_first: usize,
}

fn default_layer_lr() -> f64 {
    TrainSettings::default().layer_lr
}

fn default_layer_lr_decay() -> f64 {
    TrainSettings::default().layer_lr_decay
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
            hidden_states: Vec::new(),
            sentence_head: SentenceHeadConfig::default(),
            token_head: TokenHeadConfig::default(),
            sentence_reads_tokens: false,
            freeze: Vec::new(),
            task_weights: BTreeMap::new(),
            tasks: Vec::new(),
            init_from: None,
            unfreeze_top: 0,
            layer_lr: 2e-4,
            layer_lr_decay: 0.9,
            hf_weights: None,
            heads_first: 0,
        }
    }
}

impl TrainSettings {
    /// The loss weight of `task`.
    pub fn task_weight(&self, task: &str) -> f64 {
        self.task_weights.get(task).copied().unwrap_or(1.0)
    }
}

/// Default head shapes and whether sentence heads read a token task's states: the model's own
/// defaults on a frozen backbone; with unfrozen top layers, where the layers dominate an epoch's
/// cost, heads twice as wide (MLP 512, GRU 256 per direction) that read the token states. Chosen on
/// SNIPS' valid split (`--unfreeze-top 2`, 6 epochs, intent / slot F1 / sentence): 98.86 / 94.70 /
/// 87.14 with the frozen-backbone sizes, 98.71 / 95.17 / 87.71 with the GRU at 256, 98.86 / 95.50 /
/// 88.71 with both wider. On a frozen backbone the wider heads double the epoch's time, and reading
/// the token states couples the heads (a frozen head would follow a retrained one).
pub fn default_heads(unfreeze_top: usize) -> (SentenceHeadConfig, TokenHeadConfig, bool) {
    let (s, t) = (SentenceHeadConfig::default(), TokenHeadConfig::default());
    if unfreeze_top == 0 {
        return (s, t, false);
    }
    (
        SentenceHeadConfig {
            mlp_width: 2 * s.mlp_width,
            ..s
        },
        TokenHeadConfig {
            gru_units: 2 * t.gru_units,
            ..t
        },
        true,
    )
}

/// The default hidden states for a backbone with `layers` layers: the upper half plus the last,
/// at most four (the last layer of a sentence-embedding model carries little token information).
pub fn default_states(layers: usize) -> Vec<usize> {
    let first = layers.saturating_sub(3).max(1).min(layers);
    (first..=layers).collect()
}

/// Optimizer steps the default schedule aims for. Measured on SNIPS (13,084 sentences, batch 64):
/// 6 epochs (1,230 steps) reach the accuracy of longer schedules within noise; with
/// `--unfreeze-top 2`, 3 epochs gave test slot F1 92.02 where 6 gave 93.37.
pub const AUTO_STEPS: usize = 1200;

/// The default number of epochs: about [`AUTO_STEPS`] optimizer steps, at least 6, at most 100.
pub fn auto_epochs(examples: usize, batch_size: usize) -> usize {
    let steps = examples.div_ceil(batch_size.max(1)).max(1);
    AUTO_STEPS.div_ceil(steps).clamp(6, 100)
}
