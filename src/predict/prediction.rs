//! The typed answer to one line: every task's label, spans or per-word labels, built from the
//! decoded outputs of a run or a merged model alike.

use crate::data::{split_words, Labels, TaskInfo, TaskKind, INTENT, TAGS};
use crate::metrics::spans;

use super::decode::{to_labels, Decoded, TaskOutput};

/// A span a span task found in a line: its type, its text, its word range, its character range
/// (Unicode scalar values: what Python's `str` slicing counts) and its UTF-8 byte range.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotSpan {
    /// The chunk type (`X` of `B-X`/`I-X`).
    pub kind: String,
    /// The words of the span as they appear in the line.
    pub text: String,
    /// First word (0-based).
    pub start: usize,
    /// One past the last word.
    pub end: usize,
    /// Character (Unicode scalar value) offset of the span's first character in the line.
    pub char_start: usize,
    /// Character offset one past the span's last character.
    pub char_end: usize,
    /// UTF-8 byte offset of the span's first character in the line (`&line[byte_start..byte_end]`
    /// is `text`).
    pub byte_start: usize,
    /// UTF-8 byte offset one past the span's last character.
    pub byte_end: usize,
    /// Mean probability of the span's tags.
    pub prob: f32,
}

/// One task's prediction for one line.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskPrediction {
    /// A sentence task: the most probable label.
    Sentence {
        /// The task's name.
        task: String,
        /// The label.
        label: String,
        /// Its class id (its index in the task's labels).
        id: usize,
        /// Its probability.
        prob: f32,
        /// The logits of every class, in label order.
        logits: Vec<f32>,
    },
    /// A span task (BIO tags): the spans of the most probable valid tag sequence.
    Spans {
        /// The task's name.
        task: String,
        /// The spans, in line order.
        spans: Vec<SlotSpan>,
        /// The tag of every word of the line (words cut by truncation get the task's first
        /// label, `O`).
        tags: Vec<String>,
    },
    /// A per-word task that is not BIO (part of speech, ...): a label per word.
    Tokens {
        /// The task's name.
        task: String,
        /// The label of every word of the line (words cut by truncation get the task's first
        /// label).
        labels: Vec<String>,
    },
}

impl TaskPrediction {
    /// The task's name.
    pub fn task(&self) -> &str {
        match self {
            Self::Sentence { task, .. } | Self::Spans { task, .. } | Self::Tokens { task, .. } => {
                task
            }
        }
    }

    /// A sentence task's label and its probability.
    pub fn label(&self) -> Option<(&str, f32)> {
        match self {
            Self::Sentence { label, prob, .. } => Some((label, *prob)),
            _ => None,
        }
    }

    /// A span task's spans (empty for other tasks).
    pub fn spans(&self) -> &[SlotSpan] {
        match self {
            Self::Spans { spans, .. } => spans,
            _ => &[],
        }
    }

    /// A token task's label per word: the tags of a span task, the labels of a per-word task.
    pub fn word_labels(&self) -> Option<&[String]> {
        match self {
            Self::Spans { tags, .. } => Some(tags),
            Self::Tokens { labels, .. } => Some(labels),
            Self::Sentence { .. } => None,
        }
    }

    /// A sentence task's second choice: the label of the second-highest logit (`labels`: the
    /// task's labels). What the feedback button takes as the right label.
    pub fn runner_up<'a>(&self, labels: &'a [String]) -> Option<&'a str> {
        let Self::Sentence { logits, .. } = self else {
            return None;
        };
        let mut order: Vec<(usize, f32)> = logits.iter().copied().enumerate().collect();
        // Non-finite logits (written as null in the JSON answer) rank last; the sort is stable, so
        // the lower class id wins ties.
        let key = |x: f32| if x.is_finite() { x } else { f32::NEG_INFINITY };
        order.sort_by(|a, b| key(b.1).total_cmp(&key(a.1)));
        order
            .get(1)
            .and_then(|&(i, _)| labels.get(i))
            .map(String::as_str)
    }
}

/// Why a line got no prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unanswered {
    /// The line has no words (empty, or only whitespace).
    EmptyInput,
}

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::EmptyInput => "empty input",
        })
    }
}

/// The prediction of every task of a model for one line of text.
///
/// Its JSON (`Serialize`, see [`Prediction::json`]) is the answer of `infer` and `serve`.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The line as given.
    pub text: String,
    /// Per task of the model, in the model's task order (empty when `error` is set).
    pub tasks: Vec<TaskPrediction>,
    /// Whether the model's token limit cut the line (the words after the cut get no prediction of
    /// their own: see [`TaskPrediction::Spans`]).
    pub truncated: bool,
    /// Why the line got no prediction, if it got none.
    pub error: Option<Unanswered>,
}

impl Prediction {
    /// A prediction of `text` with no task answered yet (see the `with_*` builders).
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            tasks: Vec::new(),
            truncated: false,
            error: None,
        }
    }

    /// The answer to a line that got no prediction.
    pub fn unanswered(text: impl Into<String>, why: Unanswered) -> Self {
        Self {
            error: Some(why),
            ..Self::new(text)
        }
    }

    /// The prediction of `text` from its decoded outputs (`tasks`: the model's tasks, in the order
    /// of `decoded`; `kept`: per word of the line, whether it kept a token; `truncated`: whether
    /// the token limit cut the line). A task without an output, or whose class id is not one of
    /// its labels, is left out.
    pub fn from_decoded(
        text: &str,
        tasks: &[TaskInfo],
        decoded: &Decoded,
        kept: &[bool],
        truncated: bool,
    ) -> Self {
        let words = split_words(text);
        let mut labels = to_labels(tasks, decoded, kept);
        let mut out = Vec::with_capacity(tasks.len());
        for (task, output) in tasks.iter().zip(&decoded.tasks) {
            match (task.kind, output) {
                (TaskKind::Sentence, Some(TaskOutput::Sentence { id, prob, logits })) => {
                    if let Some(label) = labels.sentence.remove(&task.name) {
                        out.push(TaskPrediction::Sentence {
                            task: task.name.clone(),
                            label,
                            id: *id,
                            prob: *prob,
                            logits: logits.clone(),
                        });
                    }
                }
                (TaskKind::Spans, Some(TaskOutput::Token { probs })) => {
                    if let Some(tags) = labels.token.remove(&task.name) {
                        let spans = span_list(text, &words, task, &tags, probs);
                        out.push(TaskPrediction::Spans {
                            task: task.name.clone(),
                            spans,
                            tags,
                        });
                    }
                }
                (TaskKind::Tokens, Some(TaskOutput::Token { .. })) => {
                    if let Some(labels) = labels.token.remove(&task.name) {
                        out.push(TaskPrediction::Tokens {
                            task: task.name.clone(),
                            labels,
                        });
                    }
                }
                _ => {}
            }
        }
        Self {
            text: text.to_string(),
            tasks: out,
            truncated,
            error: None,
        }
    }

    /// Whether the line got a prediction.
    pub fn is_answered(&self) -> bool {
        self.error.is_none()
    }

    /// The prediction of the task `name`.
    pub fn task(&self, name: &str) -> Option<&TaskPrediction> {
        self.tasks.iter().find(|t| t.task() == name)
    }

    /// The label and probability of the sentence task `task`.
    pub fn label(&self, task: &str) -> Option<(&str, f32)> {
        self.task(task).and_then(TaskPrediction::label)
    }

    /// The label and probability of the task `intent`.
    pub fn intent(&self) -> Option<(&str, f32)> {
        self.label(INTENT)
    }

    /// The spans of the span task `task` (empty when it has none).
    pub fn spans(&self, task: &str) -> &[SlotSpan] {
        self.task(task).map_or(&[], TaskPrediction::spans)
    }

    /// The spans of the task `tags` (written as `slots` in the JSON answer).
    pub fn slots(&self) -> &[SlotSpan] {
        self.spans(TAGS)
    }

    /// The spans of type `kind` of the span task `task`, in line order.
    pub fn spans_of<'a>(
        &'a self,
        task: &'a str,
        kind: &'a str,
    ) -> impl Iterator<Item = &'a SlotSpan> + 'a {
        self.spans(task).iter().filter(move |s| s.kind == kind)
    }

    /// The labels predicted, per task: each sentence task's label, each token task's label per word
    /// (a span task's tags). The form of a training example's labels.
    pub fn labels(&self) -> Labels {
        let mut labels = Labels::default();
        for t in &self.tasks {
            match t {
                TaskPrediction::Sentence { task, label, .. } => {
                    labels.sentence.insert(task.clone(), label.clone());
                }
                TaskPrediction::Spans { task, tags, .. } => {
                    labels.token.insert(task.clone(), tags.clone());
                }
                TaskPrediction::Tokens { task, labels: l } => {
                    labels.token.insert(task.clone(), l.clone());
                }
            }
        }
        labels
    }

    /// Builder: sets the label of the sentence task `task` (class id 0, no logits).
    pub fn with_label(mut self, task: &str, label: &str, prob: f32) -> Self {
        let p = TaskPrediction::Sentence {
            task: task.to_owned(),
            label: label.to_owned(),
            id: 0,
            prob,
            logits: Vec::new(),
        };
        match self.tasks.iter_mut().find(|t| t.task() == task) {
            Some(t) => *t = p,
            None => self.tasks.push(p),
        }
        self
    }

    /// Builder: sets the label of the task `intent`.
    pub fn with_intent(self, label: &str, prob: f32) -> Self {
        self.with_label(INTENT, label, prob)
    }

    /// Builder: adds a span of type `kind` to the span task `task`. Its word and byte ranges are
    /// those of the first run of the line's words that reads `text`; when none does, both are
    /// empty ranges at 0 (the span's text and type are what rules read).
    pub fn with_span(mut self, task: &str, kind: &str, text: &str, prob: f32) -> Self {
        let words = split_words(&self.text);
        let found = (0..words.len()).find_map(|s| {
            (s + 1..=words.len())
                .find(|&e| self.text[words[s].0..words[e - 1].1] == *text)
                .map(|e| (s, e))
        });
        let (start, end, byte_start, byte_end) = match found {
            Some((s, e)) => (s, e, words[s].0, words[e - 1].1),
            None => (0, 0, 0, 0),
        };
        let span = SlotSpan {
            kind: kind.to_owned(),
            text: text.to_owned(),
            start,
            end,
            char_start: char_offset(&self.text, byte_start),
            char_end: char_offset(&self.text, byte_end),
            byte_start,
            byte_end,
            prob,
        };
        let index = match self.tasks.iter().position(|t| t.task() == task) {
            Some(i) => i,
            None => {
                self.tasks.push(TaskPrediction::Spans {
                    task: task.to_owned(),
                    spans: Vec::new(),
                    tags: vec!["O".to_owned(); words.len()],
                });
                self.tasks.len() - 1
            }
        };
        if let TaskPrediction::Spans { spans, tags, .. } = &mut self.tasks[index] {
            for (w, tag) in tags.iter_mut().enumerate().take(end).skip(start) {
                let prefix = if w == start { "B" } else { "I" };
                *tag = format!("{prefix}-{kind}");
            }
            spans.push(span);
        }
        self
    }

    /// Builder: adds a slot (a span of the task `tags`).
    pub fn with_slot(self, kind: &str, text: &str, prob: f32) -> Self {
        self.with_span(TAGS, kind, text, prob)
    }
}

/// The spans of a span task's `tags` over the line's `words`, with their text, byte range and mean
/// tag probability.
/// The character (Unicode scalar value) offset of the byte offset `byte` of `text` (a character
/// boundary).
pub fn char_offset(text: &str, byte: usize) -> usize {
    text.get(..byte).map_or(0, |t| t.chars().count())
}

fn span_list(
    text: &str,
    words: &[(usize, usize)],
    task: &TaskInfo,
    tags: &[String],
    probs: &[Vec<f32>],
) -> Vec<SlotSpan> {
    spans(tags)
        .into_iter()
        .filter(|s| s.end <= words.len() && s.start < s.end)
        .map(|s| {
            let (cs, ce) = (words[s.start].0, words[s.end - 1].1);
            let prob = (s.start..s.end)
                .map(|w| {
                    let id = task.labels.iter().position(|t| *t == tags[w]).unwrap_or(0);
                    probs.get(w).and_then(|p| p.get(id)).copied().unwrap_or(0.0)
                })
                .sum::<f32>()
                / (s.end - s.start) as f32;
            SlotSpan {
                kind: s.kind,
                text: text[cs..ce].to_string(),
                start: s.start,
                end: s.end,
                char_start: char_offset(text, cs),
                char_end: char_offset(text, ce),
                byte_start: cs,
                byte_end: ce,
                prob,
            }
        })
        .collect()
}
