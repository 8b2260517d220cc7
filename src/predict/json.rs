//! A prediction as JSON: the answer format of `infer` and `serve` (and of the reference client in
//! `examples/python/`), and the task names it cannot tell apart from its own keys.
//!
//! Keys, in byte order: `text`; per sentence task `NAME: {"label", "prob"}` (and `NAME_logits` on
//! request); the span task `tags` as `slots: [{"char_end", "char_start", "end", "prob", "start",
//! "text", "type"}]`, other span tasks under their name in the same form; per-word tasks as
//! `NAME: [label per word]`; `truncated: true` when the token limit cut the line. A line that got
//! no prediction is `{"error": WHY, "text"}`. Probabilities and logits are `f32` values written as
//! the `f64` they widen to (`0.8999999761581421`, not `0.9`), non-finite ones as `null`.

use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;

use crate::data::{TaskInfo, TaskKind, TAGS};

use super::prediction::{Prediction, SlotSpan, TaskPrediction};

/// The key of the span task [`TAGS`] in an answer.
pub const SLOTS_KEY: &str = "slots";

/// The answer's own keys, which no task may be named.
pub const ANSWER_KEYS: &[&str] = &["text", SLOTS_KEY, "truncated", "error"];

/// The suffix of a sentence task's logits key (`NAME_logits`).
pub const LOGITS_SUFFIX: &str = "_logits";

/// The key a task's prediction is written under: `slots` for the span task `tags`, else its name.
pub fn answer_key(task: &str, kind: TaskKind) -> &str {
    if kind == TaskKind::Spans && task == TAGS {
        SLOTS_KEY
    } else {
        task
    }
}

/// Checks that every task's keys in an answer are its own: no task is named like a key of the
/// answer ([`ANSWER_KEYS`]) or like another sentence task's logits (`NAME_logits`). On error,
/// returns the reason, naming the task.
pub fn check_answer_keys(tasks: &[TaskInfo]) -> Result<(), String> {
    for t in tasks {
        if ANSWER_KEYS.contains(&t.name.as_str()) {
            return Err(format!(
                "task name {:?} is a key of the answers ({}); rename the task",
                t.name,
                ANSWER_KEYS.join(", ")
            ));
        }
        let logits_of = t.name.strip_suffix(LOGITS_SUFFIX);
        if let Some(other) = tasks
            .iter()
            .find(|o| o.kind == TaskKind::Sentence && Some(o.name.as_str()) == logits_of)
        {
            return Err(format!(
                "task name {:?} is the key of the logits of the sentence task {:?} in the answers; rename one of them",
                t.name, other.name
            ));
        }
    }
    Ok(())
}

/// A prediction as JSON, with or without each sentence task's logits ([`Prediction::json`]).
#[derive(Debug, Clone, Copy)]
pub struct PredictionJson<'a> {
    prediction: &'a Prediction,
    logits: bool,
}

impl Prediction {
    /// The prediction as JSON; `logits`: also each sentence task's logits (`NAME_logits`).
    /// `Serialize` on a [`Prediction`] itself writes it without logits.
    pub fn json(&self, logits: bool) -> PredictionJson<'_> {
        PredictionJson {
            prediction: self,
            logits,
        }
    }
}

impl Serialize for Prediction {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json(false).serialize(serializer)
    }
}

/// One value of an answer's object.
enum Entry<'a> {
    Text(&'a str),
    Label(&'a str, f32),
    Floats(&'a [f32]),
    Spans(&'a [SlotSpan]),
    Labels(&'a [String]),
    True,
}

impl Serialize for Entry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Entry::Text(t) => s.serialize_str(t),
            Entry::Label(label, prob) => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("label", label)?;
                m.serialize_entry("prob", &f64::from(*prob))?;
                m.end()
            }
            Entry::Floats(v) => {
                let mut q = s.serialize_seq(Some(v.len()))?;
                for x in *v {
                    q.serialize_element(&f64::from(*x))?;
                }
                q.end()
            }
            Entry::Spans(v) => v.serialize(s),
            Entry::Labels(v) => v.serialize(s),
            Entry::True => s.serialize_bool(true),
        }
    }
}

impl Serialize for PredictionJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let p = self.prediction;
        let mut entries: Vec<(std::borrow::Cow<'_, str>, Entry<'_>)> = Vec::new();
        entries.push(("text".into(), Entry::Text(&p.text)));
        let why;
        if let Some(e) = p.error {
            why = e.to_string();
            entries.push(("error".into(), Entry::Text(&why)));
        }
        for t in &p.tasks {
            match t {
                TaskPrediction::Sentence {
                    task,
                    label,
                    prob,
                    logits,
                    ..
                } => {
                    entries.push((task.as_str().into(), Entry::Label(label, *prob)));
                    if self.logits {
                        entries.push((
                            format!("{task}{LOGITS_SUFFIX}").into(),
                            Entry::Floats(logits),
                        ));
                    }
                }
                TaskPrediction::Spans { task, spans, .. } => {
                    let key = answer_key(task, TaskKind::Spans);
                    entries.push((key.into(), Entry::Spans(spans)));
                }
                TaskPrediction::Tokens { task, labels } => {
                    entries.push((task.as_str().into(), Entry::Labels(labels)));
                }
            }
        }
        if p.truncated {
            entries.push(("truncated".into(), Entry::True));
        }
        // Keys in byte order, as a JSON object of `serde_json` writes them; a key given twice keeps
        // its last value.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut map = serializer.serialize_map(None)?;
        for (i, (key, value)) in entries.iter().enumerate() {
            if entries.get(i + 1).is_some_and(|next| next.0 == *key) {
                continue;
            }
            map.serialize_entry(key.as_ref(), value)?;
        }
        map.end()
    }
}

impl Serialize for SlotSpan {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(Some(9))?;
        m.serialize_entry("byte_end", &self.byte_end)?;
        m.serialize_entry("byte_start", &self.byte_start)?;
        m.serialize_entry("char_end", &self.char_end)?;
        m.serialize_entry("char_start", &self.char_start)?;
        m.serialize_entry("end", &self.end)?;
        m.serialize_entry("prob", &f64::from(self.prob))?;
        m.serialize_entry("start", &self.start)?;
        m.serialize_entry("text", &self.text)?;
        m.serialize_entry("type", &self.kind)?;
        m.end()
    }
}
