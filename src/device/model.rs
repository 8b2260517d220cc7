//! The bridge from edgetune's models to this layer: a model's tasks as [`ModelLabels`], and
//! `infer`'s JSON answer ([`crate::infer::answer`]) as an [`Answer`].

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::answer::{Answer, ModelLabels, Span};
use crate::data::{TaskInfo, TaskKind, TAGS};
use crate::graph::{decode_model, OnnxError};
use crate::metrics::spans::parse_tag;
use crate::onnx::merged::{MergedMeta, MAX_MODEL_BYTES};
use crate::run::{self, RunError};

/// Where a model's tasks are read from.
#[derive(Debug, Clone, Copy)]
pub enum ModelSource<'a> {
    /// A run folder (`config.json`).
    Run(&'a Path),
    /// A merged model exported by `edgetune export` (its metadata).
    Merged(&'a Path),
}

/// The tasks of a model could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ModelLabelsError {
    /// The run's config is missing or invalid.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The merged model is missing or invalid.
    #[error(transparent)]
    Onnx(#[from] OnnxError),
}

impl ModelLabels {
    /// What a model with these tasks outputs: each sentence task with its labels, each span task
    /// (BIO tags) with its span types (`X` of `B-X`/`I-X`). Per-word tasks that are not BIO give
    /// no spans, so rules cannot name them.
    pub fn from_tasks(tasks: &[TaskInfo]) -> Self {
        let mut out = ModelLabels::default();
        for task in tasks {
            match task.kind {
                TaskKind::Sentence => {
                    out.sentence.insert(task.name.clone(), task.labels.clone());
                }
                TaskKind::Spans => {
                    let mut kinds: Vec<String> = task
                        .labels
                        .iter()
                        .map(|l| parse_tag(l))
                        .filter(|(prefix, _)| *prefix != 'O')
                        .map(|(_, kind)| kind.to_owned())
                        .collect();
                    kinds.sort();
                    kinds.dedup();
                    out.span_types.insert(task.name.clone(), kinds);
                }
                TaskKind::Tokens => {}
            }
        }
        out
    }
}

/// The tasks of a run or a merged model, read without loading ONNX Runtime (the run's
/// `config.json`, or the merged model's metadata).
pub fn model_tasks(source: ModelSource<'_>) -> Result<Vec<TaskInfo>, ModelLabelsError> {
    match source {
        ModelSource::Run(dir) => {
            let rc = run::read_config(dir)?;
            Ok(rc.model.tasks.iter().map(|t| t.info()).collect())
        }
        ModelSource::Merged(path) => {
            let io = |e| OnnxError::io(path, e);
            let len = std::fs::metadata(path).map_err(io)?.len();
            if len > MAX_MODEL_BYTES {
                return Err(OnnxError::Source {
                    path: PathBuf::from(path),
                    message: format!("{len} bytes, over protobuf's 2 GiB limit"),
                }
                .into());
            }
            let bytes = std::fs::read(path).map_err(io)?;
            let model = decode_model(&bytes).map_err(|source| OnnxError::Decode {
                path: path.to_path_buf(),
                source,
            })?;
            Ok(MergedMeta::read(&model, path)?.tasks)
        }
    }
}

/// What a run or a merged model outputs, for [`Actions::validate`](super::Actions::validate).
pub fn model_labels(source: ModelSource<'_>) -> Result<ModelLabels, ModelLabelsError> {
    Ok(ModelLabels::from_tasks(&model_tasks(source)?))
}

impl Answer {
    /// Reads `infer`'s JSON answer for a model with `tasks`: each sentence task's
    /// `{"label", "prob"}`, and the spans of each span task (under `slots` for `tags`, else under
    /// the task's name). Keys that are missing or malformed are left out (an error answer gives
    /// an answer with only its text, which fires no rule).
    pub fn from_json(value: &Value, tasks: &[TaskInfo]) -> Self {
        let mut answer = Answer::new(value["text"].as_str().unwrap_or_default());
        for task in tasks {
            match task.kind {
                TaskKind::Sentence => {
                    let v = &value[&task.name];
                    if let (Some(label), Some(prob)) = (v["label"].as_str(), v["prob"].as_f64()) {
                        answer
                            .labels
                            .insert(task.name.clone(), (label.to_owned(), prob as f32));
                    }
                }
                TaskKind::Spans => {
                    let key = if task.name == TAGS {
                        "slots"
                    } else {
                        task.name.as_str()
                    };
                    for span in value[key].as_array().into_iter().flatten() {
                        if let (Some(kind), Some(text)) =
                            (span["type"].as_str(), span["text"].as_str())
                        {
                            answer.spans.push(Span {
                                task: task.name.clone(),
                                kind: kind.to_owned(),
                                text: text.to_owned(),
                                prob: span["prob"].as_f64().unwrap_or(0.0) as f32,
                            });
                        }
                    }
                }
                TaskKind::Tokens => {}
            }
        }
        answer
    }
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
                labels: vec!["turn_on".into(), "turn_off".into()],
            },
            TaskInfo {
                name: "tags".into(),
                kind: TaskKind::Spans,
                labels: vec![
                    "O".into(),
                    "B-room".into(),
                    "I-room".into(),
                    "B-value".into(),
                ],
            },
            TaskInfo {
                name: "pos".into(),
                kind: TaskKind::Tokens,
                labels: vec!["NOUN".into(), "VERB".into()],
            },
        ]
    }

    #[test]
    fn labels_of_tasks() {
        let labels = ModelLabels::from_tasks(&tasks());
        assert_eq!(
            labels,
            ModelLabels::default()
                .with_sentence_task("intent", &["turn_on", "turn_off"])
                .with_span_task("tags", &["room", "value"])
        );
    }

    #[test]
    fn answer_from_infer_json() {
        let v = json!({
            "text": "turn on the living room",
            "intent": {"label": "turn_on", "prob": 0.5},
            "slots": [{"type": "room", "text": "living room", "start": 3, "end": 5, "prob": 0.25}],
            "pos": ["VERB", "NOUN"],
        });
        let a = Answer::from_json(&v, &tasks());
        assert_eq!(
            a,
            Answer::new("turn on the living room")
                .with_intent("turn_on", 0.5)
                .with_slot("room", "living room", 0.25)
        );
        assert_eq!(
            Answer::from_json(&json!({"text": "x", "error": "empty input"}), &tasks()),
            Answer::new("x")
        );
    }
}
