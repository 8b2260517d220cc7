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
    let words = utterance(&fields, path, line)?;
    let labels = labels_of(&fields, words.len(), path, line)?;
    Ok(Example {
        words,
        labels,
        origin: Origin {
            file: path.to_path_buf(),
            line,
        },
    })
}

/// The fields of a line, in order (an error names what is not a JSON object).
fn parse_fields(path: &Path, line: usize, raw: &str) -> Result<Vec<(String, Value)>, DataError> {
    let parsed: Result<Fields, _> = serde_json::from_str(raw);
    match parsed {
        Ok(f) => Ok(f.0),
        Err(e) => {
            // A line that is valid JSON but not an object gets the type named.
            if let Ok(v) = serde_json::from_str::<Value>(raw) {
                if !v.is_object() {
                    return Err(DataError::at(
                        path,
                        line,
                        format!("expected a JSON object, found {}", type_name(&v)),
                    ));
                }
            }
            // serde_json's message ends in "at line 1 column N"; the line is ours, keep the column.
            let msg = e.to_string();
            let msg = msg
                .rsplit_once(" at line ")
                .map_or(msg.as_str(), |(m, _)| m)
                .to_string();
            let what = if e.is_data() { "" } else { "invalid JSON: " };
            Err(DataError::at(
                path,
                line,
                format!("{what}{msg} (column {})", e.column()),
            ))
        }
    }
}

/// The utterance's words: `text` split at whitespace, or `words`, or both when they agree.
fn utterance(
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

    let from_text = match get("text") {
        Some(Value::String(t)) => Some(words_of(t, path, line, "field \"text\"")?),
        Some(other) => {
            return Err(DataError::at(
                path,
                line,
                format!(
                    "field \"text\": expected a string, found {}",
                    type_name(other)
                ),
            ))
        }
        None => None,
    };
    match (get("words"), from_text) {
        (Some(w), from_text) => {
            let words = string_array(w, "words", path, line)?;
            if words.is_empty() {
                return Err(DataError::at(
                    path,
                    line,
                    "field \"words\": empty list of words",
                ));
            }
            for (i, w) in words.iter().enumerate() {
                if w.is_empty() {
                    return Err(DataError::at(
                        path,
                        line,
                        format!("field \"words\": word {} is empty", i + 1),
                    ));
                }
                if w.chars().any(char::is_whitespace) {
                    return Err(DataError::at(
                        path,
                        line,
                        format!(
                            "field \"words\": word {} ({w:?}) contains whitespace",
                            i + 1
                        ),
                    ));
                }
            }
            if let Some(t) = from_text {
                if t != words {
                    return Err(DataError::at(
                        path,
                        line,
                        format!(
                            "fields \"text\" and \"words\" disagree ({} words in the text, {} in \"words\"); give one of them",
                            t.len(),
                            words.len()
                        ),
                    ));
                }
            }
            Ok(words)
        }
        (None, Some(t)) => Ok(t),
        (None, None) => Err(DataError::at(
            path,
            line,
            "missing field \"text\" (or \"words\")",
        )),
    }
}

/// The labels of the fields that are tasks (`words` words per token task); `text`, `words`, `id`
/// and fields of other types are not.
fn labels_of(
    fields: &[(String, Value)],
    words: usize,
    path: &Path,
    line: usize,
) -> Result<Labels, DataError> {
    let mut labels = Labels::default();
    for (key, value) in fields {
        // `text`/`words` are the utterance; other reserved names (`id`, ...) are metadata.
        if RESERVED_TASK_NAMES.contains(&key.as_str()) {
            continue;
        }
        let field = format!("field \"{key}\"");
        match value {
            Value::Null => {}
            Value::String(s) if key != TAGS => {
                check_task_name(key).map_err(|m| DataError::at(path, line, m))?;
                labels
                    .sentence
                    .insert(key.clone(), clean_label(s, path, line, &field)?);
            }
            Value::Array(items)
                if key == TAGS || (key != INTENT && items.iter().all(Value::is_string)) =>
            {
                check_task_name(key).map_err(|m| DataError::at(path, line, m))?;
                let tags = string_array(value, key, path, line)?;
                if key == TAGS {
                    check_tags(&tags, words, path, line, &field)?;
                } else {
                    check_token_labels(&tags, words, path, line, &field)?;
                }
                labels.token.insert(key.clone(), tags);
            }
            // `intent` and `tags` keep their strict types: a wrong one is a mistake, not metadata.
            other if key == INTENT => {
                return Err(DataError::at(
                    path,
                    line,
                    format!("{field}: expected a string, found {}", type_name(other)),
                ))
            }
            other if key == TAGS => {
                return Err(DataError::at(
                    path,
                    line,
                    format!(
                        "{field}: expected an array of strings, found {}",
                        type_name(other)
                    ),
                ))
            }
            _ => {}
        }
    }
    if labels.is_empty() {
        return Err(DataError::at(
            path,
            line,
            "no labels: expected a task field such as \"intent\" (a string) or \"tags\" (one per word)",
        ));
    }
    Ok(labels)
}
