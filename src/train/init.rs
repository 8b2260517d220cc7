//! The model training starts from: fresh heads for the data's tasks, or the heads of an
//! `--init-from` run (with the data's new tasks added), and which of them are frozen.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use candle_core::Device;

use super::error::TrainError;
use super::settings::TrainSettings;
use crate::data::{TaskInfo, TaskKind};
use crate::hf::{BertConfig, Weights, RELATIVE_BIAS};
use crate::model::{HeadConfig, ModelConfig, SentenceHeadConfig, TaskConfig, TaskModel};
use crate::nn::Group;
use crate::run::{self, RunConfig};

/// The architecture to train and what is frozen in it.
#[derive(Debug, Clone)]
pub struct Start {
    /// The architecture (its `backbone_width` is set once the features are known).
    pub config: ModelConfig,
    /// Tasks whose heads keep their `--init-from` weights.
    pub frozen: BTreeSet<String>,
    /// The `--init-from` run.
    pub init: Option<(PathBuf, RunConfig)>,
}

impl Start {
    /// Whether parameters of `g` train.
    pub fn trainable(&self, settings: &TrainSettings, g: Group) -> bool {
        match g {
            Group::Head(i) => self
                .config
                .tasks
                .get(i)
                .is_some_and(|t| !self.frozen.contains(&t.name)),
            // Only the unfrozen layers are parameters at all.
            Group::Layer(_) => settings.unfreeze_top > 0,
        }
    }

    /// Per task: whether it trains.
    pub fn training_tasks(&self) -> Vec<bool> {
        self.config
            .tasks
            .iter()
            .map(|t| !self.frozen.contains(&t.name))
            .collect()
    }
}

/// The token task sentence heads read when they read one: the first span task, else the first
/// token task.
fn read_target(tasks: &[TaskConfig]) -> Option<String> {
    tasks
        .iter()
        .find(|t| t.kind == TaskKind::Spans)
        .or_else(|| tasks.iter().find(|t| t.kind.is_token()))
        .map(|t| t.name.clone())
}

/// Decides the architecture and the frozen tasks from the data's tasks, the settings and the
/// `--init-from` run. `states`: the hidden states the heads read; `first`: the lowest unfrozen
/// layer (`layers` without `--unfreeze-top`).
pub fn plan_model(
    data_tasks: &[TaskInfo],
    settings: &TrainSettings,
    states: &[usize],
    first: usize,
    layers: usize,
) -> Result<Start, TrainError> {
    let fresh = |info: &TaskInfo| {
        let mut sentence = settings.sentence_head.clone();
        sentence.reads = None;
        TaskConfig::from_info(info, &sentence, &settings.token_head)
    };
    let (mut tasks, init) = match &settings.init_from {
        None => (data_tasks.iter().map(fresh).collect::<Vec<_>>(), None),
        Some(dir) => {
            let rc = run::read_config(dir)?;
            if run::head_states(&rc) != states {
                return Err(TrainError::Config(format!(
                    "--init-from run reads hidden states {:?}, this run {states:?}; use the same --layers",
                    run::head_states(&rc)
                )));
            }
            if let Some(t) = &rc.top_layers {
                if t.first != first {
                    return Err(TrainError::Config(format!(
                        "the --init-from run fine-tuned the top {} backbone layers; its heads read their \
                         outputs, so train with --unfreeze-top {} too",
                        layers - t.first,
                        layers - t.first
                    )));
                }
            }
            let mut tasks: Vec<TaskConfig> = rc.model.tasks.clone();
            for t in &mut tasks {
                // Dropout is a training setting, not part of what the heads compute.
                match &mut t.head {
                    HeadConfig::Sentence(c) => c.dropout = settings.sentence_head.dropout,
                    HeadConfig::Token(c) => c.dropout = settings.token_head.dropout,
                }
                if let Some(d) = data_tasks.iter().find(|d| d.name == t.name) {
                    if d.kind != t.kind {
                        return Err(TrainError::Config(format!(
                            "task `{}` is a {} task in the data but a {} task in the --init-from run",
                            t.name,
                            d.kind.name(),
                            t.kind.name()
                        )));
                    }
                    if d.labels != t.labels && !settings.freeze.contains(&t.name) {
                        return Err(TrainError::Config(format!(
                            "the labels of task `{}` differ from the --init-from run's ({} vs {}); \
                             train a new run instead",
                            t.name,
                            d.labels.len(),
                            t.labels.len()
                        )));
                    }
                }
            }
            // The data's new tasks: sentence tasks after the run's sentence tasks, token tasks last.
            for d in data_tasks {
                if tasks.iter().any(|t| t.name == d.name) {
                    continue;
                }
                let at = if d.kind.is_token() {
                    tasks.len()
                } else {
                    tasks
                        .iter()
                        .position(|t| t.kind.is_token())
                        .unwrap_or(tasks.len())
                };
                tasks.insert(at, fresh(d));
            }
            (tasks, Some((dir.clone(), rc)))
        }
    };
    // Sentence heads read a token task's states: asked for, and the data has both kinds.
    let data_has = |token: bool| data_tasks.iter().any(|d| d.kind.is_token() == token);
    if settings.sentence_reads_tokens && data_has(true) && data_has(false) {
        if let Some(target) = read_target(&tasks) {
            for t in &mut tasks {
                let new = init
                    .as_ref()
                    .is_none_or(|(_, rc)| rc.model.task(&t.name).is_none());
                if let HeadConfig::Sentence(SentenceHeadConfig { reads, .. }) = &mut t.head {
                    if new {
                        *reads = Some(target.clone());
                    }
                }
            }
        }
    }
    let mut frozen: BTreeSet<String> = settings.freeze.iter().cloned().collect();
    for t in &tasks {
        // A task the data lacks keeps its head as loaded.
        if !data_tasks.iter().any(|d| d.name == t.name) {
            frozen.insert(t.name.clone());
        }
    }
    if let Some(f) = settings
        .freeze
        .iter()
        .find(|f| !tasks.iter().any(|t| &t.name == *f))
    {
        return Err(TrainError::Config(format!(
            "--freeze {f}: the model has no task `{f}` (tasks: {})",
            tasks
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    match &init {
        None if !settings.freeze.is_empty() => {
            return Err(TrainError::Config(
                "freezing a head needs --init-from RUN (a frozen fresh head would be random)"
                    .into(),
            ))
        }
        Some((_, rc)) => {
            if let Some(f) = settings.freeze.iter().find(|f| rc.model.task(f).is_none()) {
                return Err(TrainError::Config(format!(
                    "--freeze {f}: the --init-from run has no `{f}` head to keep (a frozen fresh head would be random)"
                )));
            }
        }
        None => {}
    }
    Ok(Start {
        config: ModelConfig {
            backbone_width: 0,
            mixed_states: states.len(),
            tasks,
        },
        frozen,
        init,
    })
}

/// Copies the `--init-from` run's trained weights into `model`: its heads, and its fine-tuned
/// layers when it has them (a frozen-backbone run's heads start on the checkpoint's layers).
pub fn load_init(model: &TaskModel, init: &Path) -> Result<(), TrainError> {
    let (rc, src) = run::load_run(init)?;
    let have = src.params.by_name();
    for p in &model.params.params {
        let carried = match p.group {
            Group::Head(i) => rc.model.task(&model.config.tasks[i].name).is_some(),
            Group::Layer(_) => rc.top_layers.is_some(),
        };
        if !carried {
            continue;
        }
        let s = have.get(p.name.as_str()).ok_or_else(|| {
            TrainError::Config(format!(
                "{}: the --init-from run has no tensor `{}`",
                init.display(),
                p.name
            ))
        })?;
        let t = s.var.as_tensor();
        if t.dims() != p.var.as_tensor().dims() {
            return Err(TrainError::Config(format!(
                "{}: tensor `{}` is {:?} in the --init-from run, {:?} here",
                init.display(),
                p.name,
                t.dims(),
                p.var.as_tensor().dims()
            )));
        }
        p.var.set(t)?;
    }
    Ok(())
}

/// A snapshot of the frozen tensors' bytes, to prove after training that they did not change.
pub type Snapshot = Vec<(String, Vec<u8>)>;

/// The bytes of every tensor of a group `frozen` selects.
pub fn frozen_snapshot(
    model: &TaskModel,
    frozen: &dyn Fn(Group) -> bool,
) -> Result<Snapshot, TrainError> {
    let mut out = Vec::new();
    for p in model.params.params.iter().filter(|p| frozen(p.group)) {
        let v: Vec<f32> = p.var.as_tensor().flatten_all()?.to_vec1()?;
        out.push((p.name.clone(), bytemuck::cast_slice(&v).to_vec()));
    }
    Ok(out)
}

/// Verifies that every frozen tensor is byte-identical to its snapshot.
pub fn check_frozen(
    model: &TaskModel,
    frozen: &dyn Fn(Group) -> bool,
    before: &Snapshot,
) -> Result<(), TrainError> {
    let after = frozen_snapshot(model, frozen)?;
    for ((name, a), (_, b)) in before.iter().zip(&after) {
        if a != b {
            return Err(TrainError::Config(format!(
                "internal error: frozen tensor `{name}` changed during training"
            )));
        }
    }
    Ok(())
}

/// Loads the layers `first..layers` of the Hugging Face checkpoint of `settings.hf_weights` (only
/// those, and MPNet's shared relative position bias: the embeddings and frozen layers are not
/// read) and checks that the checkpoint matches the backbone (`layers` layers of width `width`;
/// `width` 0 = not declared by the graph). A checkpoint with more layers serves a backbone
/// imported from its first `layers` layers (`edgetune import --layers K`): its config is cut to them.
pub fn load_hf(
    settings: &TrainSettings,
    layers: usize,
    width: usize,
) -> Result<(BertConfig, Weights, PathBuf), TrainError> {
    let dir = settings.hf_weights.clone().ok_or_else(|| {
        TrainError::Config(
            "--unfreeze-top needs the backbone's fp32 weights: pass --hf-weights DIR (a Hugging Face \
             checkpoint with config.json and model.safetensors)"
                .into(),
        )
    })?;
    let bad = |m: String| TrainError::Config(format!("--hf-weights {}: {m}", dir.display()));
    let mut cfg = BertConfig::load(&dir.join("config.json")).map_err(|e| bad(e.to_string()))?;
    if cfg.num_hidden_layers < layers || (width != 0 && cfg.hidden_size != width) {
        return Err(bad(format!(
            "the checkpoint has {} layers of width {}, the backbone {layers} layers of width {}; \
             pass the checkpoint the backbone was made from",
            cfg.num_hidden_layers,
            cfg.hidden_size,
            if width == 0 {
                "?".to_string()
            } else {
                width.to_string()
            }
        )));
    }
    cfg.num_hidden_layers = layers;
    let first = layers.saturating_sub(settings.unfreeze_top);
    let wanted = |name: &str| {
        name.ends_with(RELATIVE_BIAS)
            || name
                .split("encoder.layer.")
                .nth(1)
                .and_then(|rest| rest.split('.').next())
                .and_then(|i| i.parse::<usize>().ok())
                .is_some_and(|i| i >= first && i < layers)
    };
    let weights = Weights::load_filtered(&dir.join("model.safetensors"), &wanted)
        .map_err(|e| bad(e.to_string()))?;
    Ok((cfg, weights, dir))
}

/// Loads the model's fine-tuned top layers from the checkpoint (group [`Group::Layer`]).
pub fn attach_top_layers(
    model: &mut TaskModel,
    bert: &BertConfig,
    weights: &Weights,
    first: usize,
    cached: Vec<usize>,
    head_states: Vec<usize>,
) -> Result<(), TrainError> {
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let mut vb = crate::nn::ParamBuilder::new(
        &mut model.params,
        &mut rng,
        Group::Layer(first),
        &Device::Cpu,
    )
    .with_source(weights);
    let top = crate::backbone::layers::TopLayers::load(&mut vb, bert, first)
        .map_err(|e| TrainError::Config(format!("--hf-weights: {e}")))?;
    model.top = Some(crate::model::Unfrozen {
        top,
        cached,
        head_states,
    });
    Ok(())
}
