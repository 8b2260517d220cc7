//! One input line's answer as JSON: the same for a run (`infer --run`) and a merged model
//! (`infer --model`), and the unit `serve` answers with.
//!
//! Keys: `text`; per sentence task `NAME: {"label", "prob"}` (and `NAME_logits` on request); the
//! span task `tags` as `slots: [{"type", "text", "start", "end", "char_start", "char_end", "prob"}]`,
//! other span tasks under their name in the same form; per-word tasks as `NAME: [label per word]`;
//! `truncated: true` when the token limit cut the input.

use serde::Serialize;
use serde_json::{json, Value};

use crate::data::{split_words, TaskInfo, TaskKind, TAGS};
use crate::metrics::spans;
use crate::model::{to_labels, Decoded, TaskOutput};

/// A span found in a text: type, text, word range and character (byte) range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotSpan {
    /// The chunk type (`X` of `B-X`/`I-X`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The words of the span as they appear in the input.
    pub text: String,
    /// First word (0-based).
    pub start: usize,
    /// One past the last word.
    pub end: usize,
    /// Byte offset of the first character in the input line.
    pub char_start: usize,
    /// Byte offset one past the last character.
    pub char_end: usize,
    /// Mean probability of the span's tags.
    pub prob: f32,
}

/// The JSON answer for `text` from its decoded outputs. `kept`: per word, whether it had features
/// (false when truncation cut it); `logits`: also print each sentence task's logits.
pub fn answer(
    text: &str,
    tasks: &[TaskInfo],
    d: &Decoded,
    kept: &[bool],
    truncated: bool,
    logits: bool,
) -> Value {
    let words = split_words(text);
    let labels = to_labels(tasks, d, kept);
    let mut v = json!({ "text": text });
    for (task, out) in tasks.iter().zip(&d.tasks) {
        match (task.kind, out) {
            (
                TaskKind::Sentence,
                Some(TaskOutput::Sentence {
                    prob, logits: l, ..
                }),
            ) => {
                if let Some(label) = labels.sentence.get(&task.name) {
                    v[&task.name] = json!({ "label": label, "prob": prob });
                    if logits {
                        v[format!("{}_logits", task.name)] = json!(l);
                    }
                }
            }
            (TaskKind::Spans, Some(TaskOutput::Token { probs })) => {
                let Some(tags) = labels.token.get(&task.name) else {
                    continue;
                };
                let found: Vec<SlotSpan> = spans(tags)
                    .into_iter()
                    .filter(|s| s.end <= words.len() && s.start < s.end)
                    .map(|s| {
                        let (cs, ce) = (words[s.start].0, words[s.end - 1].1);
                        let prob = (s.start..s.end)
                            .map(|w| {
                                let id =
                                    task.labels.iter().position(|t| *t == tags[w]).unwrap_or(0);
                                probs.get(w).and_then(|p| p.get(id)).copied().unwrap_or(0.0)
                            })
                            .sum::<f32>()
                            / (s.end - s.start) as f32;
                        SlotSpan {
                            kind: s.kind,
                            text: text[cs..ce].to_string(),
                            start: s.start,
                            end: s.end,
                            char_start: cs,
                            char_end: ce,
                            prob,
                        }
                    })
                    .collect();
                let key = if task.name == TAGS {
                    "slots"
                } else {
                    task.name.as_str()
                };
                v[key] = json!(found);
            }
            (TaskKind::Tokens, Some(TaskOutput::Token { .. })) => {
                if let Some(l) = labels.token.get(&task.name) {
                    v[&task.name] = json!(l);
                }
            }
            _ => {}
        }
    }
    if truncated {
        v["truncated"] = json!(true);
    }
    v
}
