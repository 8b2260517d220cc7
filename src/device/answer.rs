//! The prediction this layer consumes, and the label vocabulary of a model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Name of the main sentence-level task (the `intent = "..."` shorthand in `actions.toml`).
pub const INTENT_TASK: &str = "intent";

/// Name of the usual token task whose spans are slots (the `[rule.slots]` shorthand).
pub const SLOT_TASK: &str = "tags";

/// One model answer to one utterance.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Answer {
    /// The utterance the model answered.
    pub text: String,
    /// Sentence-level tasks: task name -> (label, probability). The main one is `"intent"`.
    pub labels: BTreeMap<String, (String, f32)>,
    /// Spans from token tasks; the usual task is `"tags"` (slots).
    pub spans: Vec<Span>,
}

/// One span found by a token task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    /// Token task that produced the span (usually `"tags"`).
    pub task: String,
    /// Span type, e.g. `"room"`.
    pub kind: String,
    /// The span's text as it appears in the utterance, e.g. `"Kitchen"`.
    pub text: String,
    /// Probability the model gives the span.
    pub prob: f32,
}

impl Answer {
    /// An answer with the given text and no labels or spans.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }

    /// Builder: sets the label of a sentence-level task.
    pub fn with_label(mut self, task: &str, label: &str, prob: f32) -> Self {
        self.labels
            .insert(task.to_owned(), (label.to_owned(), prob));
        self
    }

    /// Builder: sets the `"intent"` label.
    pub fn with_intent(self, label: &str, prob: f32) -> Self {
        self.with_label(INTENT_TASK, label, prob)
    }

    /// Builder: adds a span of the given token task.
    pub fn with_span(mut self, task: &str, kind: &str, text: &str, prob: f32) -> Self {
        self.spans.push(Span {
            task: task.to_owned(),
            kind: kind.to_owned(),
            text: text.to_owned(),
            prob,
        });
        self
    }

    /// Builder: adds a slot (a span of the `"tags"` task).
    pub fn with_slot(self, kind: &str, text: &str, prob: f32) -> Self {
        self.with_span(SLOT_TASK, kind, text, prob)
    }

    /// The intent label and its probability, if the model has an intent task.
    pub fn intent(&self) -> Option<(&str, f32)> {
        self.labels
            .get(INTENT_TASK)
            .map(|(label, prob)| (label.as_str(), *prob))
    }

    /// Spans of one token task and type, in answer order.
    pub fn spans_of<'a>(&'a self, task: &'a str, kind: &'a str) -> impl Iterator<Item = &'a Span> {
        self.spans
            .iter()
            .filter(move |s| s.task == task && s.kind == kind)
    }
}

/// What a model can output, for validating an actions file offline.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ModelLabels {
    /// Sentence-level task name -> its labels (e.g. `"intent"` -> `["turn_on", ...]`).
    pub sentence: BTreeMap<String, Vec<String>>,
    /// Token task name -> its span types (e.g. `"tags"` -> `["room", "value"]`).
    pub span_types: BTreeMap<String, Vec<String>>,
}

impl ModelLabels {
    /// Builder: declares a sentence-level task and its labels.
    pub fn with_sentence_task(mut self, task: &str, labels: &[&str]) -> Self {
        self.sentence.insert(
            task.to_owned(),
            labels.iter().map(|s| (*s).to_owned()).collect(),
        );
        self
    }

    /// Builder: declares a token task and its span types.
    pub fn with_span_task(mut self, task: &str, kinds: &[&str]) -> Self {
        self.span_types.insert(
            task.to_owned(),
            kinds.iter().map(|s| (*s).to_owned()).collect(),
        );
        self
    }
}
