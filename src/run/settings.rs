//! The settings a run is trained with: every default declared once, here, with the reason for it,
//! and every range checked in one place ([`TrainSettings::validate`]), whether the settings come
//! from the command line, a library caller, a retrain on the device or a run's `config.json`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::check_task_name;
use crate::model::config::limits::{MAX_HEAD_WIDTH, MAX_MIXED_STATES};
use crate::model::{SentenceHeadConfig, TokenHeadConfig};

/// Upper bounds of the training settings, far above any useful value: a setting beyond them is a
/// typo or a damaged file, refused before it sizes anything.
pub mod limits {
    /// Epochs (and `heads_first`, `patience`).
    pub const MAX_EPOCHS: usize = 100_000;
    /// Examples per optimizer step.
    pub const MAX_BATCH_SIZE: usize = 1 << 16;
    /// Peak learning rates (`lr`, `layer_lr`).
    pub const MAX_LR: f64 = 10.0;
    /// AdamW's decoupled weight decay.
    pub const MAX_WEIGHT_DECAY: f64 = 10.0;
    /// A task's loss weight (larger ones overflow the f32 loss long before they mean anything).
    pub const MAX_TASK_WEIGHT: f64 = 10_000.0;
    /// Transformer layers of a backbone (hidden states are numbered 0..=layers).
    pub const MAX_LAYERS: usize = 1024;
}

/// Training settings. Missing fields of a recorded run take their defaults (older runs recorded
/// fewer settings); [`TrainSettings::validate`] checks every range before any work starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainSettings {
    /// Epochs; 0 = `train::auto_epochs`. Early stopping may end sooner.
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
    /// Hidden states the heads read (0 = embeddings, L = last layer); empty =
    /// `train::default_states`.
    #[serde(alias = "states")]
    pub hidden_states: Vec<usize>,
    /// The shape of every sentence head.
    pub sentence_head: SentenceHeadConfig,
    /// The shape of every token head.
    pub token_head: TokenHeadConfig,
    /// Sentence heads also read the states of a token task (the first span task, else the first
    /// token task) and train its GRU jointly (`--intent-reads-slots`).
    pub sentence_reads_tokens: bool,
    /// Tasks to keep exactly as loaded from `init_from` (byte-identical).
    pub freeze: Vec<String>,
    /// Loss weight per task (default 1).
    pub task_weights: BTreeMap<String, f64>,
    /// Train only these tasks of the data (`--tasks`); empty = all.
    pub tasks: Vec<String>,
    /// A finished run whose heads initialise this one.
    pub init_from: Option<PathBuf>,
    /// Train the top N transformer layers of the backbone together with the heads (0 = backbone
    /// frozen).
    pub unfreeze_top: usize,
    /// Peak learning rate of the top unfrozen layer. 2e-4 was chosen on SNIPS' valid split
    /// (`--unfreeze-top 2`, 6 epochs): 98.86 / 94.70 / 87.14 (intent / slot F1 / sentence), 1e-4
    /// 98.86 / 94.47 / 86.43.
    pub layer_lr: f64,
    /// Factor of the learning rate per layer below the top one (layer-wise decay).
    pub layer_lr_decay: f64,
    /// The Hugging Face checkpoint (config.json + model.safetensors) with the fp32 weights of the
    /// unfrozen layers.
    pub hf_weights: Option<PathBuf>,
    /// With unfrozen layers: epochs at the start during which only the heads learn (the layers
    /// run forward-only); the layers' learning rate then warms up over one epoch. Off by default:
    /// it did not help on SNIPS' valid split (`docs/experiments.md`).
    pub heads_first: usize,
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

/// A setting outside its range: the setting as `config.json`'s `training` names it (`batch_size`,
/// `sentence_head.mlp_width`, `task_weights.intent`, ...) and what is wrong, starting with the
/// value (`0 is not in 1..=65536`). The command line puts its flag in place of the name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct SettingError {
    /// The setting's name.
    pub setting: String,
    /// What is wrong.
    pub message: String,
}

fn bad(setting: impl Into<String>, message: impl Into<String>) -> SettingError {
    SettingError {
        setting: setting.into(),
        message: message.into(),
    }
}

/// `Ok` when `lo <= v <= hi`.
fn in_range(setting: &str, v: usize, lo: usize, hi: usize) -> Result<(), SettingError> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(bad(setting, format!("{v} is not in {lo}..={hi}")))
    }
}

/// `Ok` when `v` is finite and in `lo..=hi` (`lo` excluded when `open_lo`).
fn in_real_range(
    setting: &str,
    v: f64,
    lo: f64,
    open_lo: bool,
    hi: f64,
) -> Result<(), SettingError> {
    let above = if open_lo { v > lo } else { v >= lo };
    if v.is_finite() && above && v <= hi {
        Ok(())
    } else {
        let open = if open_lo { "(" } else { "[" };
        Err(bad(setting, format!("{v} is not in {open}{lo}, {hi}]")))
    }
}

fn dropout(setting: &str, v: f32) -> Result<(), SettingError> {
    if (0.0..1.0).contains(&v) {
        Ok(())
    } else {
        Err(bad(setting, format!("{v} is not in [0, 1)")))
    }
}

fn task_names<'a>(
    setting: &str,
    names: impl IntoIterator<Item = &'a String>,
) -> Result<(), SettingError> {
    names
        .into_iter()
        .try_for_each(|n| check_task_name(n).map_err(|m| bad(setting, m)))
}

impl TrainSettings {
    /// The loss weight of `task`.
    pub fn task_weight(&self, task: &str) -> f64 {
        self.task_weights.get(task).copied().unwrap_or(1.0)
    }

    /// Checks every setting against its range (see [`limits`]): counts and sizes, learning rates,
    /// dropout, task names and weights. Called before any work by the command line, by
    /// `train::train` and on every run's `config.json` as it is read. What depends on the backbone
    /// (hidden states and unfrozen layers against its layer count) is checked by `train` once the
    /// backbone is known.
    pub fn validate(&self) -> Result<(), SettingError> {
        use limits::*;
        in_range("epochs", self.epochs, 0, MAX_EPOCHS)?;
        in_range("patience", self.patience, 1, MAX_EPOCHS)?;
        in_range("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)?;
        in_real_range("lr", self.lr, 0.0, true, MAX_LR)?;
        in_real_range(
            "weight_decay",
            self.weight_decay,
            0.0,
            false,
            MAX_WEIGHT_DECAY,
        )?;
        self.validate_states()?;
        in_range(
            "sentence_head.mlp_width",
            self.sentence_head.mlp_width,
            1,
            MAX_HEAD_WIDTH,
        )?;
        dropout("sentence_head.dropout", self.sentence_head.dropout)?;
        if let Some(r) = &self.sentence_head.reads {
            task_names("sentence_head.reads", [r])?;
        }
        in_range(
            "token_head.gru_units",
            self.token_head.gru_units,
            1,
            MAX_HEAD_WIDTH,
        )?;
        dropout("token_head.dropout", self.token_head.dropout)?;
        task_names("freeze", &self.freeze)?;
        task_names("tasks", &self.tasks)?;
        for (name, &w) in &self.task_weights {
            let setting = format!("task_weights.{name}");
            check_task_name(name).map_err(|m| bad(&setting, m))?;
            in_real_range(&setting, w, 0.0, false, MAX_TASK_WEIGHT)?;
        }
        self.validate_layers()
    }

    fn validate_states(&self) -> Result<(), SettingError> {
        let states = &self.hidden_states;
        if states.len() > MAX_MIXED_STATES {
            return Err(bad(
                "hidden_states",
                format!("{} states are more than {MAX_MIXED_STATES}", states.len()),
            ));
        }
        for (i, &s) in states.iter().enumerate() {
            in_range("hidden_states", s, 0, limits::MAX_LAYERS)?;
            if states[..i].contains(&s) {
                return Err(bad("hidden_states", format!("{s} appears twice")));
            }
        }
        Ok(())
    }

    fn validate_layers(&self) -> Result<(), SettingError> {
        use limits::*;
        in_range("unfreeze_top", self.unfreeze_top, 0, MAX_LAYERS)?;
        in_real_range("layer_lr", self.layer_lr, 0.0, true, MAX_LR)?;
        in_real_range("layer_lr_decay", self.layer_lr_decay, 0.0, true, 1.0)?;
        in_range("heads_first", self.heads_first, 0, MAX_EPOCHS)?;
        if self.heads_first > 0 && self.unfreeze_top == 0 {
            return Err(bad(
                "heads_first",
                format!(
                    "{} only applies with unfrozen layers (unfreeze_top)",
                    self.heads_first
                ),
            ));
        }
        if self.unfreeze_top > 0 && self.epochs > 0 && self.heads_first >= self.epochs {
            return Err(bad(
                "heads_first",
                format!(
                    "{} leaves no epoch of {} for the unfrozen layers",
                    self.heads_first, self.epochs
                ),
            ));
        }
        Ok(())
    }
}
