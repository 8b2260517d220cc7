//! The model that answers: a run (backbone + task model) or a merged model, loaded once, swapped
//! for a retrained run between two requests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::error::ServeError;
use crate::backbone::SessionOptions;
use crate::data::{Labels, TaskInfo, TaskKind, TAGS};
use crate::infer::RunPredictor;
use crate::metrics::Metrics;
use crate::model::TaskModel;
use crate::onnx::merged::MergedModel;
use crate::run::RunConfig;

enum Predictor {
    Run(Box<RunPredictor>),
    Merged(Box<MergedModel>),
}

/// The serving model and what `stats` reports about it.
pub struct Engine {
    predictor: Predictor,
    /// 0 for the model given on the command line, N for the N-th swapped one.
    pub version: u64,
    /// The run folder (or merged-model file) answering.
    pub path: PathBuf,
    /// Its recorded metrics by split (a run's `config.json`; empty for a merged model).
    pub metrics: BTreeMap<String, Metrics>,
    /// Its tasks, in output order.
    pub tasks: Vec<TaskInfo>,
}

impl Engine {
    /// Loads the run in `dir` (`version`: its version number).
    pub fn open_run(
        dir: &Path,
        version: u64,
        backbone: Option<&Path>,
        opts: &SessionOptions,
    ) -> Result<Self, ServeError> {
        let p = RunPredictor::open(dir, backbone, opts)?;
        Ok(Self {
            version,
            path: dir.to_path_buf(),
            metrics: p.rc.metrics.clone(),
            tasks: p.tasks.clone(),
            predictor: Predictor::Run(Box::new(p)),
        })
    }

    /// Loads a merged model.
    pub fn open_merged(path: &Path, opts: &SessionOptions) -> Result<Self, ServeError> {
        let m = MergedModel::open(path, opts)?;
        Ok(Self {
            version: 0,
            path: path.to_path_buf(),
            metrics: BTreeMap::new(),
            tasks: m.meta.tasks.clone(),
            predictor: Predictor::Merged(Box::new(m)),
        })
    }

    /// Whether a run answers (and so can be retrained and swapped).
    pub fn is_run(&self) -> bool {
        matches!(self.predictor, Predictor::Run(_))
    }

    /// `infer`'s answer to `text`, with each sentence task's logits.
    pub fn answer(&mut self, text: &str) -> Result<Value, ServeError> {
        let texts = [text.to_string()];
        let mut out = match &mut self.predictor {
            Predictor::Run(p) => p.answer_lines(&texts, true)?,
            Predictor::Merged(m) => m.answer_lines(&texts, true)?,
        };
        Ok(out.pop().unwrap_or(Value::Null))
    }

    /// Replaces the task model by a retrained one (same backbone, same tasks).
    pub fn swap(&mut self, rc: RunConfig, model: TaskModel, version: u64, dir: &Path) {
        if let Predictor::Run(p) = &mut self.predictor {
            self.metrics = rc.metrics.clone();
            p.replace_model(rc, model);
            self.tasks = p.tasks.clone();
            self.version = version;
            self.path = dir.to_path_buf();
        }
    }
}

/// The first sentence task (whose probability decides `"unknown"`), if any.
pub fn intent_task(tasks: &[TaskInfo]) -> Option<&TaskInfo> {
    tasks.iter().find(|t| t.kind == TaskKind::Sentence)
}

/// The labels an answer gives, per task: sentence labels, span tasks back as BIO tags over the
/// `words` words, per-word tasks as they are.
pub fn answer_labels(answer: &Value, tasks: &[TaskInfo], words: usize) -> Labels {
    let mut labels = Labels::default();
    for t in tasks {
        match t.kind {
            TaskKind::Sentence => {
                if let Some(l) = answer[&t.name]["label"].as_str() {
                    labels.sentence.insert(t.name.clone(), l.to_string());
                }
            }
            TaskKind::Spans => {
                let key = if t.name == TAGS {
                    "slots"
                } else {
                    t.name.as_str()
                };
                let mut tags = vec!["O".to_string(); words];
                for s in answer[key].as_array().into_iter().flatten() {
                    let (Some(kind), Some(start), Some(end)) =
                        (s["type"].as_str(), s["start"].as_u64(), s["end"].as_u64())
                    else {
                        continue;
                    };
                    let (start, end) = (start as usize, (end as usize).min(words));
                    for (w, tag) in tags.iter_mut().enumerate().take(end).skip(start) {
                        let prefix = if w == start { "B" } else { "I" };
                        *tag = format!("{prefix}-{kind}");
                    }
                }
                labels.token.insert(t.name.clone(), tags);
            }
            TaskKind::Tokens => {
                if let Some(items) = answer[&t.name].as_array() {
                    let mut list: Vec<String> = items
                        .iter()
                        .map(|v| v.as_str().unwrap_or("O").to_string())
                        .collect();
                    // Words cut by truncation have no label; the task's first label stands in.
                    let fill = t.labels.first().cloned().unwrap_or_default();
                    list.resize(words, fill);
                    labels.token.insert(t.name.clone(), list);
                }
            }
        }
    }
    labels
}

/// Per sentence task: the runner-up label by the answer's `NAME_logits` (the model's second
/// choice, what the feedback button takes as the right label).
pub fn runner_up(answer: &Value, tasks: &[TaskInfo]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for t in tasks.iter().filter(|t| t.kind == TaskKind::Sentence) {
        let Some(logits) = answer[format!("{}_logits", t.name)].as_array() else {
            continue;
        };
        let mut order: Vec<(usize, f64)> = logits
            .iter()
            .enumerate()
            .map(|(i, v)| (i, v.as_f64().unwrap_or(f64::NEG_INFINITY)))
            .collect();
        order.sort_by(|a, b| b.1.total_cmp(&a.1));
        if let Some(&(i, _)) = order.get(1) {
            if let Some(l) = t.labels.get(i) {
                out.insert(t.name.clone(), l.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tasks() -> Vec<TaskInfo> {
        vec![
            TaskInfo {
                name: "intent".into(),
                kind: TaskKind::Sentence,
                labels: vec!["a".into(), "b".into(), "c".into()],
            },
            TaskInfo {
                name: "tags".into(),
                kind: TaskKind::Spans,
                labels: vec!["O".into(), "B-room".into(), "I-room".into()],
            },
        ]
    }

    #[test]
    fn labels_and_runner_up_from_an_answer() {
        let v = json!({
            "text": "the living room x",
            "intent": {"label": "b", "prob": 0.7},
            "intent_logits": [0.5, 3.0, 1.0],
            "slots": [{"type": "room", "text": "living room", "start": 1, "end": 3}],
        });
        let l = answer_labels(&v, &tasks(), 4);
        assert_eq!(l.intent(), Some("b"));
        assert_eq!(l.tags().unwrap(), ["O", "B-room", "I-room", "O"]);
        assert_eq!(runner_up(&v, &tasks())["intent"], "c");
        assert_eq!(intent_task(&tasks()).unwrap().name, "intent");
    }
}
