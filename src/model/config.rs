//! The task model's architecture: everything needed to rebuild it around saved weights. It is part
//! of a run's `config.json`, so [`ModelConfig::validate`] checks every size read from a file before
//! anything is allocated.

use serde::{Deserialize, Serialize};

use crate::data::{check_task_name, TaskInfo, TaskKind};

/// Default width of a sentence head's MLP on a frozen backbone.
pub const DEFAULT_MLP_WIDTH: usize = 256;
/// Default GRU units per direction of a token head on a frozen backbone.
pub const DEFAULT_GRU_UNITS: usize = 128;
/// Default dropout in every head (chosen on SNIPS' valid split among 0.1, 0.25 and 0.4).
pub const DEFAULT_DROPOUT: f32 = 0.1;

/// Upper bounds on sizes read from a run's `config.json`, far above any real model: a file that
/// exceeds them is refused before allocation.
pub mod limits {
    /// Backbone width.
    pub const MAX_WIDTH: usize = 16_384;
    /// Hidden states a head mixes.
    pub const MAX_MIXED_STATES: usize = 64;
    /// A sentence head's MLP width or a token head's GRU units.
    pub const MAX_HEAD_WIDTH: usize = 16_384;
    /// Labels of one task.
    pub const MAX_LABELS: usize = 100_000;
    /// Tasks of one model.
    pub const MAX_TASKS: usize = 256;
    /// Scalar parameters of all heads together (4 GiB of f32).
    pub const MAX_HEAD_PARAMS: usize = 1 << 30;
}

/// A sentence-level head: a learned mix of the cached states, attention pooling over words,
/// concatenated with the sentence embedding, and an MLP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentenceHeadConfig {
    /// Width of the MLP's hidden layer.
    pub mlp_width: usize,
    /// Dropout before each dense layer during training.
    pub dropout: f32,
    /// A token task whose recurrent states this head also pools with its word attention (trained
    /// jointly: this head's loss reaches that task's GRU). The label sets of a token task are strong
    /// evidence of a sentence's class (`movie_name` vs `object_name` for an intent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reads: Option<String>,
}

impl Default for SentenceHeadConfig {
    fn default() -> Self {
        Self {
            mlp_width: DEFAULT_MLP_WIDTH,
            dropout: DEFAULT_DROPOUT,
            reads: None,
        }
    }
}

/// A token-level head: its own layer mix, a projection to the GRU width, a bidirectional GRU over
/// the sentence (the last layer of a sentence-embedding model carries little token-level
/// information on its own; context recovers most of it), and a per-word classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenHeadConfig {
    /// GRU units per direction.
    pub gru_units: usize,
    /// Dropout on the GRU's input and output during training.
    pub dropout: f32,
}

impl Default for TokenHeadConfig {
    fn default() -> Self {
        Self {
            gru_units: DEFAULT_GRU_UNITS,
            dropout: DEFAULT_DROPOUT,
        }
    }
}

/// The head of one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadConfig {
    /// For [`TaskKind::Sentence`].
    Sentence(SentenceHeadConfig),
    /// For [`TaskKind::Spans`] and [`TaskKind::Tokens`].
    Token(TokenHeadConfig),
}

/// One task of the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskConfig {
    /// The task's name (its key or column in the data; the prefix of its parameters).
    pub name: String,
    /// What it predicts.
    pub kind: TaskKind,
    /// Its labels; the index is the class id.
    pub labels: Vec<String>,
    /// Its head.
    pub head: HeadConfig,
}

impl TaskConfig {
    /// A task from the data with a head of the default shape for its kind.
    pub fn from_info(
        info: &TaskInfo,
        sentence: &SentenceHeadConfig,
        token: &TokenHeadConfig,
    ) -> Self {
        Self {
            name: info.name.clone(),
            kind: info.kind,
            labels: info.labels.clone(),
            head: if info.kind.is_token() {
                HeadConfig::Token(token.clone())
            } else {
                HeadConfig::Sentence(sentence.clone())
            },
        }
    }

    /// As the data describes it (name, kind, labels).
    pub fn info(&self) -> TaskInfo {
        TaskInfo {
            name: self.name.clone(),
            kind: self.kind,
            labels: self.labels.clone(),
        }
    }
}

/// The task model's architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Width of the backbone's hidden states (the heads' input).
    pub backbone_width: usize,
    /// How many hidden states each head mixes.
    pub mixed_states: usize,
    /// The tasks: sentence tasks first, then token tasks (the order parameters are created and
    /// heads run in).
    pub tasks: Vec<TaskConfig>,
}

impl ModelConfig {
    /// The index of task `name`.
    pub fn task(&self, name: &str) -> Option<usize> {
        self.tasks.iter().position(|t| t.name == name)
    }

    /// The token task sentence head `i` reads, if any.
    pub fn reads(&self, i: usize) -> Option<usize> {
        match &self.tasks.get(i)?.head {
            HeadConfig::Sentence(SentenceHeadConfig {
                reads: Some(name), ..
            }) => self.task(name),
            _ => None,
        }
    }

    /// Scalar parameters of task `i`'s head (also computed by building it; the memory plan uses
    /// this before anything is built).
    pub fn head_params(&self, i: usize) -> usize {
        let (h, k) = (self.backbone_width, self.mixed_states);
        let t = &self.tasks[i];
        let n = t.labels.len();
        match &t.head {
            HeadConfig::Sentence(c) => {
                let read = self.reads(i).map_or(0, |r| match &self.tasks[r].head {
                    HeadConfig::Token(tc) => 2 * tc.gru_units,
                    HeadConfig::Sentence(_) => 0,
                });
                let m = c.mlp_width;
                (k + 1) + (h + 1) + ((2 * h + read) * m + m) + (m * n + n)
            }
            HeadConfig::Token(c) => {
                let g = c.gru_units;
                (k + 1) + (h * g + g) + 2 * (6 * g * g + 6 * g) + (2 * g * n + n)
            }
        }
    }

    /// One task: its name, labels (1..=[`limits::MAX_LABELS`], unique, non-empty), a head of its
    /// kind with dropout in `[0, 1)` and a width within [`limits::MAX_HEAD_WIDTH`], and a sentence
    /// head reading a token task.
    fn validate_task(&self, t: &TaskConfig) -> Result<(), String> {
        use limits::*;
        check_task_name(&t.name)?;
        if t.labels.is_empty() || t.labels.len() > MAX_LABELS {
            return Err(format!(
                "{} labels (1..={MAX_LABELS} expected)",
                t.labels.len()
            ));
        }
        let mut sorted: Vec<&String> = t.labels.iter().collect();
        sorted.sort();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("label {:?} appears twice", w[0]));
        }
        if let Some(l) = t.labels.iter().find(|l| l.is_empty()) {
            return Err(format!("an empty label ({l:?})"));
        }
        let (width, dropout) = match (&t.head, t.kind.is_token()) {
            (HeadConfig::Sentence(c), false) => {
                if let Some(r) = &c.reads {
                    match self.task(r) {
                        Some(j) if self.tasks[j].kind.is_token() => {}
                        _ => return Err(format!("reads {r:?}, which is not a token task")),
                    }
                }
                (c.mlp_width, c.dropout)
            }
            (HeadConfig::Token(c), true) => (c.gru_units, c.dropout),
            _ => {
                let need = if t.kind.is_token() {
                    "token"
                } else {
                    "sentence"
                };
                return Err(format!("a {} task needs a {need} head", t.kind.name()));
            }
        };
        if !(0.0..1.0).contains(&dropout) {
            return Err(format!("dropout {dropout} is not in [0, 1)"));
        }
        if width == 0 || width > MAX_HEAD_WIDTH {
            return Err(format!("head width {width} is not in 1..={MAX_HEAD_WIDTH}"));
        }
        Ok(())
    }

    /// Checks the architecture before anything is built: names, label lists (non-empty, unique),
    /// head kinds and sizes within [`limits`]. The message names the task and field.
    pub fn validate(&self) -> Result<(), String> {
        use limits::*;
        if self.backbone_width == 0 || self.backbone_width > MAX_WIDTH {
            return Err(format!(
                "backbone_width {} is not in 1..={MAX_WIDTH}",
                self.backbone_width
            ));
        }
        if self.mixed_states == 0 || self.mixed_states > MAX_MIXED_STATES {
            return Err(format!(
                "mixed_states {} is not in 1..={MAX_MIXED_STATES}",
                self.mixed_states
            ));
        }
        if self.tasks.is_empty() || self.tasks.len() > MAX_TASKS {
            return Err(format!(
                "{} tasks (1..={MAX_TASKS} expected)",
                self.tasks.len()
            ));
        }
        let mut seen_token = false;
        for (i, t) in self.tasks.iter().enumerate() {
            let at = |m: String| format!("task {:?}: {m}", t.name);
            if self.tasks[..i].iter().any(|o| o.name == t.name) {
                return Err(at("the name appears twice".into()));
            }
            if seen_token && !t.kind.is_token() {
                return Err(at("sentence tasks must come before token tasks".into()));
            }
            seen_token |= t.kind.is_token();
            self.validate_task(t).map_err(at)?;
        }
        let infos: Vec<_> = self.tasks.iter().map(|t| t.info()).collect();
        crate::predict::check_answer_keys(&infos)?;
        let total: usize = (0..self.tasks.len()).map(|i| self.head_params(i)).sum();
        if total > MAX_HEAD_PARAMS {
            return Err(format!(
                "the heads would have {total} parameters (more than {MAX_HEAD_PARAMS})"
            ));
        }
        Ok(())
    }
}
