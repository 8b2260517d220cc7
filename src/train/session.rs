//! A training run between its preparation and its end: the data and features, the model, the
//! optimizer and the early-stopping state that the epochs read and update.

use std::path::PathBuf;

use super::checkpoint;
use super::data::SplitData;
use super::init::{Snapshot, Start};
use super::log::Profiler;
use super::optim::AdamW;
use super::settings::TrainSettings;
use crate::data::{Dataset, TaskInfo};
use crate::features::FeatureSpec;
use crate::fsutil::DirLock;
use crate::hf::BertConfig;
use crate::model::TaskModel;
use crate::nn::Group;
use crate::run::BackboneRef;

/// A training run between `fit::prepare` and `fit::finish`: what the epochs read and update.
pub(crate) struct Session<'a> {
    pub dataset: &'a Dataset,
    pub out: PathBuf,
    pub verbose: bool,
    pub plots: bool,
    /// Held until the run is written: one writer per run folder.
    pub lock: DirLock,
    /// Resolved: hidden states and epochs filled in, validated.
    pub settings: TrainSettings,
    /// Layers of the backbone.
    pub layers: usize,
    pub spec: FeatureSpec,
    pub backbone: BackboneRef,
    /// The architecture of the unfrozen layers' checkpoint.
    pub hf_config: Option<BertConfig>,
    pub start: Start,
    pub model: TaskModel,
    /// Per task: whether its loss is computed (its head or a head reading it trains).
    pub training_tasks: Vec<bool>,
    /// The model's tasks as the metrics score them.
    pub model_tasks: Vec<TaskInfo>,
    pub frozen_before: Snapshot,
    pub train: SplitData<'a>,
    pub valid: SplitData<'a>,
    pub test: Option<SplitData<'a>>,
    pub opt: AdamW,
    pub state: checkpoint::State,
    /// The best epoch's weights so far (safetensors bytes).
    pub best_bytes: Vec<u8>,
    pub ckpt_dir: PathBuf,
    pub profiler: Profiler,
}

impl Session<'_> {
    /// Whether parameters of `g` train.
    pub fn trainable(&self, g: Group) -> bool {
        self.start.trainable(&self.settings, g)
    }
}
