//! Corrections: what a client says the right answer to a text is, checked against the model's
//! tasks and completed into a training example.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::protocol::{check_text, ErrorCode, RequestError};
use crate::data::{split_words, Labels, TaskInfo, TaskKind};

/// Where a correction came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Source {
    /// A `{"correct": ...}` request.
    Client,
    /// The feedback button ("the last answer was wrong"): the labels the model gave, which the
    /// user rejected; the correction's label is the model's runner-up.
    Button {
        /// Task -> the rejected label.
        rejected: BTreeMap<String, String>,
    },
}

/// A checked correction: the words of its text and a label for every task of the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Correction {
    /// The text as given.
    pub text: String,
    /// Its words (split at whitespace, as the training data's).
    pub words: Vec<String>,
    /// Every task's labels: those given, the others as the serving model predicted them.
    pub labels: Labels,
    /// The tasks the correction gives (a retrained model must answer these as given).
    pub given: Vec<String>,
    /// Where it came from.
    pub source: Source,
}

/// Most words in a correction's text: 256 (an utterance has tens; every word costs memory in the
/// journal's live list and features in every retrain).
pub const MAX_CORRECTION_WORDS: usize = 256;

fn bad(message: impl Into<String>) -> RequestError {
    RequestError::new(ErrorCode::BadCorrection, message)
}

/// The words of a correction's text.
pub fn words_of(text: &str) -> Vec<String> {
    split_words(text)
        .into_iter()
        .map(|(s, e)| text[s..e].to_string())
        .collect()
}

/// Checks a `{"correct": {...}}` object against the model's `tasks`: `text` is a non-empty
/// string; every other key names a task, with one of its labels (sentence task) or one label per
/// word (token task); at least one task is given. Returns the text, its words and the given labels.
pub fn check(
    obj: &Map<String, Value>,
    tasks: &[TaskInfo],
) -> Result<(String, Vec<String>, Labels), RequestError> {
    let text = match obj.get("text") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(bad(format!("\"text\" must be a string, got {other}"))),
        None => return Err(bad("a correction needs \"text\"")),
    };
    check_text(&text).map_err(|e| bad(e.message))?;
    let words = words_of(&text);
    if words.is_empty() {
        return Err(bad("\"text\" has no words"));
    }
    if words.len() > MAX_CORRECTION_WORDS {
        return Err(bad(format!(
            "\"text\" has {} words; a correction has at most {MAX_CORRECTION_WORDS}",
            words.len()
        )));
    }
    let names = || {
        tasks
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut labels = Labels::default();
    for (key, value) in obj {
        if key == "text" {
            continue;
        }
        let Some(task) = tasks.iter().find(|t| &t.name == key) else {
            return Err(bad(format!(
                "\"{key}\" is not a task of the model (its tasks: {})",
                names()
            )));
        };
        if task.kind.is_token() {
            let list = token_labels(key, value, task, &words)?;
            labels.token.insert(key.clone(), list);
        } else {
            labels
                .sentence
                .insert(key.clone(), sentence_label(key, value, task)?);
        }
    }
    if labels.is_empty() {
        return Err(bad(format!(
            "a correction gives the right label of at least one task (the model's tasks: {})",
            names()
        )));
    }
    Ok((text, words, labels))
}

/// The labels `value` gives the token task `task` (under `key`): one of its labels per word.
fn token_labels(
    key: &str,
    value: &Value,
    task: &TaskInfo,
    words: &[String],
) -> Result<Vec<String>, RequestError> {
    let Value::Array(items) = value else {
        return Err(bad(format!(
            "\"{key}\" must be a list of labels, one per word of the text ({} words)",
            words.len()
        )));
    };
    if items.len() != words.len() {
        return Err(bad(format!(
            "\"{key}\" has {} labels but the text has {} words ({:?})",
            items.len(),
            words.len(),
            words
        )));
    }
    let mut list = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Some(l) = item.as_str() else {
            return Err(bad(format!("\"{key}\"[{i}] must be a string, got {item}")));
        };
        if !task.labels.iter().any(|x| x == l) {
            return Err(bad(format!(
                "\"{key}\"[{i}] = \"{l}\" (word \"{}\") is not a label of task \"{key}\"",
                words[i]
            )));
        }
        list.push(l.to_string());
    }
    Ok(list)
}

/// The label `value` gives the sentence task `task` (under `key`): one of its labels.
fn sentence_label(key: &str, value: &Value, task: &TaskInfo) -> Result<String, RequestError> {
    let Some(l) = value.as_str() else {
        return Err(bad(format!(
            "\"{key}\" must be a label (a string), got {value}"
        )));
    };
    if !task.labels.iter().any(|x| x == l) {
        let mut shown: Vec<&str> = task.labels.iter().take(12).map(String::as_str).collect();
        if task.labels.len() > 12 {
            shown.push("...");
        }
        return Err(bad(format!(
            "\"{l}\" is not a label of task \"{key}\" (its labels: {})",
            shown.join(", ")
        )));
    }
    Ok(l.to_string())
}

/// Checks a complete correction before it is journalled and again when a retrain replays it,
/// against the model's `tasks` and the corrections kept before it (`earlier`): at most
/// [`MAX_CORRECTION_WORDS`] words; every label one of its task's; a given spans task's tags a valid
/// BIO sequence (an `I-X` follows `B-X` or `I-X`: the model's decoding can never answer otherwise,
/// so the correction could never be learned); no earlier correction of the same words (case
/// aside) giving one of its tasks another label. On error, the reason.
///
/// This is the one place a correction is judged; further checks belong here.
pub fn validate(
    c: &Correction,
    tasks: &[TaskInfo],
    earlier: &[(u64, Correction)],
) -> Result<(), String> {
    if c.words.is_empty() || c.words.len() > MAX_CORRECTION_WORDS {
        return Err(format!(
            "{} words (a correction has 1 to {MAX_CORRECTION_WORDS})",
            c.words.len()
        ));
    }
    for (name, label) in &c.labels.sentence {
        let task = find_task(tasks, name)?;
        if !task.labels.contains(label) {
            return Err(format!("\"{label}\" is not a label of task \"{name}\""));
        }
    }
    for (name, list) in &c.labels.token {
        let task = find_task(tasks, name)?;
        if list.len() != c.words.len() {
            return Err(format!(
                "\"{name}\" has {} labels for {} words",
                list.len(),
                c.words.len()
            ));
        }
        if let Some(l) = list.iter().find(|l| !task.labels.contains(l)) {
            return Err(format!("\"{l}\" is not a label of task \"{name}\""));
        }
        if task.kind == TaskKind::Spans && c.given.contains(name) {
            check_bio(name, list, &c.words)?;
        }
    }
    let key = |words: &[String]| words.iter().map(|w| w.to_lowercase()).collect::<Vec<_>>();
    let mine = key(&c.words);
    for (seq, e) in earlier.iter().filter(|(_, e)| key(&e.words) == mine) {
        for task in c.given.iter().filter(|t| e.given.contains(t)) {
            let differs = c.labels.sentence.get(task) != e.labels.sentence.get(task)
                || c.labels.token.get(task) != e.labels.token.get(task);
            if differs {
                return Err(format!(
                    "correction {seq} gives the same text another \"{task}\"; withdraw it first \
                     ({{\"forget\": {seq}}})"
                ));
            }
        }
    }
    Ok(())
}

fn find_task<'t>(tasks: &'t [TaskInfo], name: &str) -> Result<&'t TaskInfo, String> {
    tasks
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| format!("\"{name}\" is not a task of the model"))
}

/// An `I-X` tag must follow `B-X` or `I-X`.
fn check_bio(name: &str, tags: &[String], words: &[String]) -> Result<(), String> {
    let mut prev: Option<&str> = None;
    for (i, tag) in tags.iter().enumerate() {
        if let Some(kind) = tag.strip_prefix("I-") {
            let continues = prev.is_some_and(|p| {
                p.strip_prefix("B-").or_else(|| p.strip_prefix("I-")) == Some(kind)
            });
            if !continues {
                return Err(format!(
                    "\"{name}\"[{i}] = \"{tag}\" (word \"{}\") does not continue a B-{kind} or I-{kind} \
                     (invalid BIO: a slot begins with B-)",
                    words[i]
                ));
            }
        }
        prev = Some(tag);
    }
    Ok(())
}

/// Completes `given` with the model's own labels (`predicted`) for the tasks it does not give:
/// a training example needs every task.
pub fn complete(given: &Labels, predicted: &Labels) -> Labels {
    let mut out = predicted.clone();
    for (k, v) in &given.sentence {
        out.sentence.insert(k.clone(), v.clone());
    }
    for (k, v) in &given.token {
        out.token.insert(k.clone(), v.clone());
    }
    out
}

/// The task names `labels` gives.
pub fn given_tasks(labels: &Labels) -> Vec<String> {
    labels
        .sentence
        .keys()
        .chain(labels.token.keys())
        .cloned()
        .collect()
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
                labels: vec!["O".into(), "B-room".into(), "I-room".into()],
            },
        ]
    }

    fn err(v: Value) -> String {
        check(v.as_object().unwrap(), &tasks()).unwrap_err().message
    }

    #[test]
    fn accepts_a_full_correction() {
        let v = json!({"text": "kitchen off", "intent": "turn_off", "tags": ["B-room", "O"]});
        let (text, words, labels) = check(v.as_object().unwrap(), &tasks()).unwrap();
        assert_eq!(text, "kitchen off");
        assert_eq!(words, ["kitchen", "off"]);
        assert_eq!(labels.intent(), Some("turn_off"));
        assert_eq!(given_tasks(&labels), ["intent", "tags"]);
    }

    #[test]
    fn names_what_is_wrong() {
        assert!(err(json!({"text": "a b", "tags": ["O"]}))
            .contains("1 labels but the text has 2 words"));
        assert!(
            err(json!({"text": "a", "intent": "dance"})).contains("not a label of task \"intent\"")
        );
        assert!(err(json!({"text": "a", "mood": "x"})).contains("not a task of the model"));
        assert!(err(json!({"text": "a b", "tags": ["O", "B-city"]})).contains("[1] = \"B-city\""));
        assert!(err(json!({"text": "a"})).contains("at least one task"));
        assert!(err(json!({"text": "  ", "intent": "turn_on"})).contains("no words"));
        assert!(err(json!({"intent": "turn_on"})).contains("needs \"text\""));
    }

    fn full(text: &str, intent: &str, tags: &[&str]) -> Correction {
        let mut labels = Labels::default();
        labels.sentence.insert("intent".into(), intent.into());
        labels
            .token
            .insert("tags".into(), tags.iter().map(|t| t.to_string()).collect());
        Correction {
            text: text.into(),
            words: words_of(text),
            labels,
            given: vec!["intent".into(), "tags".into()],
            source: Source::Client,
        }
    }

    #[test]
    fn validates_bio_conflicts_labels_and_size() {
        let ok = full("kitchen light off", "turn_off", &["B-room", "I-room", "O"]);
        assert!(validate(&ok, &tasks(), &[]).is_ok());
        let e = validate(
            &full("kitchen off", "turn_off", &["I-room", "O"]),
            &tasks(),
            &[],
        )
        .unwrap_err();
        assert!(e.contains("invalid BIO"), "{e}");
        let e = validate(
            &full("Kitchen light OFF", "turn_on", &["B-room", "I-room", "O"]),
            &tasks(),
            &[(7, ok.clone())],
        )
        .unwrap_err();
        assert!(
            e.contains("correction 7") && e.contains("\"forget\": 7"),
            "{e}"
        );
        let mut unknown = ok.clone();
        unknown
            .labels
            .sentence
            .insert("intent".into(), "dance".into());
        assert!(validate(&unknown, &tasks(), &[])
            .unwrap_err()
            .contains("not a label"));
        let long = "w ".repeat(MAX_CORRECTION_WORDS + 1);
        assert!(err(json!({"text": long, "intent": "turn_on"})).contains("at most 256"));
    }

    #[test]
    fn completes_with_the_prediction() {
        let mut given = Labels::default();
        given.sentence.insert("intent".into(), "turn_off".into());
        let mut predicted = Labels::default();
        predicted.sentence.insert("intent".into(), "turn_on".into());
        predicted.token.insert("tags".into(), vec!["B-room".into()]);
        let full = complete(&given, &predicted);
        assert_eq!(full.intent(), Some("turn_off"));
        assert_eq!(full.tags().unwrap(), ["B-room"]);
    }
}
