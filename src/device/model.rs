//! The bridge from edgetune's models to this layer: what a model can output ([`ModelLabels`]),
//! read from its tasks, for checking an actions file offline. The answers rules read are
//! [`crate::predict::Prediction`]s.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::data::{TaskInfo, TaskKind};
use crate::infer::ModelPath;
use crate::metrics::spans::parse_tag;
use crate::predict::PredictError;

/// What a model can output, for checking an actions file offline.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ModelLabels {
    /// Sentence-level task name -> its labels (e.g. `"intent"` -> `["turn_on", ...]`).
    pub sentence: BTreeMap<String, Vec<String>>,
    /// Span task name -> its span types (e.g. `"tags"` -> `["room", "value"]`).
    pub span_types: BTreeMap<String, Vec<String>>,
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

    /// Builder: declares a sentence-level task and its labels.
    pub fn with_sentence_task(mut self, task: &str, labels: &[&str]) -> Self {
        self.sentence.insert(
            task.to_owned(),
            labels.iter().map(|s| (*s).to_owned()).collect(),
        );
        self
    }

    /// Builder: declares a span task and its span types.
    pub fn with_span_task(mut self, task: &str, kinds: &[&str]) -> Self {
        self.span_types.insert(
            task.to_owned(),
            kinds.iter().map(|s| (*s).to_owned()).collect(),
        );
        self
    }
}

/// What a run or a merged model outputs, for [`Actions::check_labels`](super::Actions::check_labels),
/// read without ONNX Runtime ([`ModelPath::tasks`]).
pub fn model_labels(model: &ModelPath) -> Result<ModelLabels, PredictError> {
    Ok(ModelLabels::from_tasks(&model.tasks()?))
}

#[cfg(test)]
mod tests {
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
}
