//! JSON lines: one object per line. `text` (a string) or `words` (an array of strings) holds the
//! utterance; every other string-valued key is a sentence task (`"intent"`, `"sentiment"`, ...)
//! and every other key holding an array of strings is a token task with one label per word
//! (`"tags"`, `"pos"`, ...). `null` values, keys of other types and reserved names such as `id`
//! are ignored; a key given twice, or `text` and `words` that disagree, is an error. Blank lines
//! are skipped.

use std::fmt;
use std::path::Path;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::error::DataError;
use super::example::{Example, Labels, Origin, INTENT, TAGS};
use super::text::{
    check_tags, check_task_name, check_token_labels, clean_label, numbered_lines, words_of,
    RESERVED_TASK_NAMES,
};

/// Parses the JSON-lines `text` of the file `path`.
pub(super) fn parse(path: &Path, text: &str) -> Result<Vec<Example>, DataError> {
    let mut examples = Vec::new();
    for (line, raw) in numbered_lines(text) {
        if raw.trim().is_empty() {
            continue;
        }
        examples.push(parse_line(path, line, raw)?);
    }
    Ok(examples)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The fields of one top-level JSON object in file order, refusing a key given twice (serde_json's
/// own map keeps the last silently).
struct Fields(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut out: Vec<(String, Value)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    if out.iter().any(|(seen, _)| *seen == k) {
                        return Err(serde::de::Error::custom(format!(
                            "key \"{k}\" appears twice in the object"
                        )));
                    }
                    out.push((k, v));
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A JSON array of strings, or an error naming the field and the offending element.
fn string_array(
    v: &Value,
    field: &str,
    path: &Path,
    line: usize,
) -> Result<Vec<String>, DataError> {
    let Value::Array(items) = v else {
        return Err(DataError::at(
            path,
            line,
            format!(
                "field \"{field}\": expected an array of strings, found {}",
                type_name(v)
            ),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Ok(s.clone()),
            other => Err(DataError::at(
                path,
                line,
                format!(
                    "field \"{field}\": element {} is {}, expected a string",
                    i + 1,
                    type_name(other)
                ),
            )),
        })
        .collect()
}

fn parse_line(path: &Path, line: usize, raw: &str) -> Result<Example, DataError> {
    let fields = parse_fields(path, line, raw)?;
    let words = words_of_line(&fields, path, line)?;
    let mut labels = Labels::default();
    for (key, value) in &fields {
        // `text`/`words` are the utterance; other reserved names (`id`, ...) are metadata.
        if !RESERVED_TASK_NAMES.contains(&key.as_str()) {
            add_label(&mut labels, key, value, words.len(), (path, line))?;
        }
    }
    if labels.is_empty() {
        return Err(DataError::at(
            path,
            line,
            "no labels: expected a task field such as \"intent\" (a string) or \"tags\" (one per word)",
        ));
    }
    Ok(Example {
        words,
        labels,
        origin: Origin {
            file: path.to_path_buf(),
            line,
        },
    })
}

/// The fields of one line, in order; a line that is not a JSON object is an error naming what it
/// is (or where its JSON breaks).
fn parse_fields(path: &Path, line: usize, raw: &str) -> Result<Vec<(String, Value)>, DataError> {
    let e = match serde_json::from_str::<Fields>(raw) {
        Ok(f) => return Ok(f.0),
        Err(e) => e,
    };
    // A line that is valid JSON but not an object gets the type named.
    if let Ok(v) = serde_json::from_str::<Value>(raw) {
        if !v.is_object() {
            let found = type_name(&v);
            let msg = format!("expected a JSON object, found {found}");
            return Err(DataError::at(path, line, msg));
        }
    }
    // serde_json's message ends in "at line 1 column N"; the line is ours, keep the column.
    let msg = e.to_string();
    let msg = msg
        .rsplit_once(" at line ")
        .map_or(msg.as_str(), |(m, _)| m);
    let what = if e.is_data() { "" } else { "invalid JSON: " };
    let msg = format!("{what}{msg} (column {})", e.column());
    Err(DataError::at(path, line, msg))
}

/// The words of a line: `words` (non-empty, no empty word, no whitespace inside a word) or the
/// words of `text`; both given must agree.
fn words_of_line(
    fields: &[(String, Value)],
    path: &Path,
    line: usize,
) -> Result<Vec<String>, DataError> {
    let get = |k: &str| {
        fields
            .iter()
            .find(|(n, v)| n == k && !v.is_null())
            .map(|(_, v)| v)
    };
    let at = |msg: String| DataError::at(path, line, msg);
    let from_text = match get("text") {
        Some(Value::String(t)) => Some(words_of(t, path, line, "field \"text\"")?),
        Some(other) => {
            let found = type_name(other);
            return Err(at(format!(
                "field \"text\": expected a string, found {found}"
            )));
        }
        None => None,
    };
    let Some(w) = get("words") else {
        return from_text.ok_or_else(|| at("missing field \"text\" (or \"words\")".into()));
    };
    let words = string_array(w, "words", path, line)?;
    if words.is_empty() {
        return Err(at("field \"words\": empty list of words".into()));
    }
    for (i, w) in words.iter().enumerate() {
        if w.is_empty() {
            return Err(at(format!("field \"words\": word {} is empty", i + 1)));
        }
        if w.chars().any(char::is_whitespace) {
            let msg = format!(
                "field \"words\": word {} ({w:?}) contains whitespace",
                i + 1
            );
            return Err(at(msg));
        }
    }
    match from_text {
        Some(t) if t != words => Err(at(format!(
            "fields \"text\" and \"words\" disagree ({} words in the text, {} in \"words\"); give one of them",
            t.len(),
            words.len()
        ))),
        _ => Ok(words),
    }
}

/// Field `key` as a task's label: a string is a sentence label, an array of strings one label
/// per word (`tags`: BIO tags). `intent` and `tags` keep their strict types (a wrong one is a
/// mistake, not metadata); other fields of other types are metadata and ignored.
fn add_label(
    labels: &mut Labels,
    key: &str,
    value: &Value,
    words: usize,
    (path, line): (&Path, usize),
) -> Result<(), DataError> {
    let field = format!("field \"{key}\"");
    let task_name = || check_task_name(key).map_err(|m| DataError::at(path, line, m));
    match value {
        Value::Null => {}
        Value::String(s) if key != TAGS => {
            task_name()?;
            let label = clean_label(s, path, line, &field)?;
            labels.sentence.insert(key.to_string(), label);
        }
        Value::Array(items)
            if key == TAGS || (key != INTENT && items.iter().all(Value::is_string)) =>
        {
            task_name()?;
            let tags = string_array(value, key, path, line)?;
            if key == TAGS {
                check_tags(&tags, words, path, line, &field)?;
            } else {
                check_token_labels(&tags, words, path, line, &field)?;
            }
            labels.token.insert(key.to_string(), tags);
        }
        other if key == INTENT || key == TAGS => {
            let want = match key == INTENT {
                true => "a string",
                false => "an array of strings",
            };
            let found = type_name(other);
            let msg = format!("{field}: expected {want}, found {found}");
            return Err(DataError::at(path, line, msg));
        }
        _ => {}
    }
    Ok(())
}
