//! JSON lines: one object per line, `{"text": "...", "intent": "..."}` or
//! `{"words": [...], "tags": [...], "intent": "..."}`. Unknown keys are ignored, blank lines skipped.

use std::path::Path;

use serde_json::Value;

use super::{check_tags, clean_intent, numbered_lines, words_of, DataError, Example, Origin};

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
    let value: Value = serde_json::from_str(raw).map_err(|e| {
        // serde_json's message ends in "at line 1 column N"; the line is ours, keep only the column.
        let msg = e.to_string();
        let msg = msg
            .rsplit_once(" at line ")
            .map_or(msg.as_str(), |(m, _)| m)
            .to_string();
        DataError::at(
            path,
            line,
            format!("invalid JSON: {msg} (column {})", e.column()),
        )
    })?;
    let Value::Object(obj) = value else {
        return Err(DataError::at(
            path,
            line,
            format!("expected a JSON object, found {}", type_name(&value)),
        ));
    };
    let present = |k: &str| obj.get(k).filter(|v| !v.is_null());

    let words = match (present("words"), present("text")) {
        (Some(w), _) => {
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
            words
        }
        (None, Some(Value::String(t))) => words_of(t, path, line, "field \"text\"")?,
        (None, Some(other)) => {
            return Err(DataError::at(
                path,
                line,
                format!(
                    "field \"text\": expected a string, found {}",
                    type_name(other)
                ),
            ))
        }
        (None, None) => {
            return Err(DataError::at(
                path,
                line,
                "missing field \"text\" (or \"words\")",
            ))
        }
    };

    let tags = match present("tags") {
        Some(t) => {
            let tags = string_array(t, "tags", path, line)?;
            check_tags(&tags, words.len(), path, line, "field \"tags\"")?;
            Some(tags)
        }
        None => None,
    };

    let intent = match present("intent") {
        Some(Value::String(s)) => Some(clean_intent(s, path, line, "field \"intent\"")?),
        Some(other) => {
            return Err(DataError::at(
                path,
                line,
                format!(
                    "field \"intent\": expected a string, found {}",
                    type_name(other)
                ),
            ))
        }
        None => None,
    };

    if tags.is_none() && intent.is_none() {
        return Err(DataError::at(
            path,
            line,
            "no labels: expected field \"intent\" and/or \"tags\"",
        ));
    }
    Ok(Example {
        words,
        tags,
        intent,
        origin: Origin {
            file: path.to_path_buf(),
            line,
        },
    })
}
