//! JointBERT folders: `seq.in` (whitespace-separated words), `seq.out` (one BIO tag per word) and
//! `label` (the intent): tasks `tags` and `intent`, line `i` of each file describing example `i`.
//! `seq.out` or `label` may be absent, and then that task is absent. Trailing blank lines are ignored.

use std::path::{Path, PathBuf};

use super::error::DataError;
use super::example::{Example, Labels, Origin, INTENT, TAGS};
use super::text::{check_tags, clean_label, numbered_lines, read_text, words_of};

/// The non-trailing-blank lines of a text.
fn lines_of(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = numbered_lines(text).map(|(_, l)| l.to_string()).collect();
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    lines
}

/// The text of a file in the folder, or `None` if the file does not exist.
fn read_file(folder: &Path, name: &str) -> Result<Option<String>, DataError> {
    let path = folder.join(name);
    if !path.exists() {
        return Ok(None);
    }
    read_text(&path).map(Some)
}

/// Reads the JointBERT folder `folder`.
pub(super) fn read(folder: &Path) -> Result<Vec<Example>, DataError> {
    let Some(seq_in) = read_file(folder, "seq.in")? else {
        return Err(DataError::file(
            folder,
            "no seq.in in this JointBERT folder",
        ));
    };
    let seq_out = read_file(folder, "seq.out")?;
    let label = read_file(folder, "label")?;
    parse(folder, &seq_in, seq_out.as_deref(), label.as_deref())
}

/// Parses the texts of a JointBERT folder's files (`folder` names them in errors).
pub(super) fn parse(
    folder: &Path,
    seq_in: &str,
    seq_out: Option<&str>,
    label: Option<&str>,
) -> Result<Vec<Example>, DataError> {
    let (seq_in, words_lines) = (folder.join("seq.in"), lines_of(seq_in));
    let seq_out: Option<(PathBuf, Vec<String>)> =
        seq_out.map(|t| (folder.join("seq.out"), lines_of(t)));
    let label: Option<(PathBuf, Vec<String>)> = label.map(|t| (folder.join("label"), lines_of(t)));
    if seq_out.is_none() && label.is_none() {
        return Err(DataError::file(
            folder,
            "has seq.in but neither seq.out (tags) nor label (intents), so there is nothing to learn",
        ));
    }
    for (path, lines) in seq_out.iter().chain(label.iter()) {
        if lines.len() != words_lines.len() {
            let first_odd = lines.len().min(words_lines.len()) + 1;
            return Err(DataError::at(
                path,
                first_odd,
                format!(
                    "{} lines, but {} has {}; the files must have one line per example",
                    lines.len(),
                    seq_in.display(),
                    words_lines.len()
                ),
            ));
        }
    }

    let mut examples = Vec::with_capacity(words_lines.len());
    for (i, text) in words_lines.iter().enumerate() {
        let line = i + 1;
        let words = words_of(text, &seq_in, line, "")?;
        let mut labels = Labels::default();
        if let Some((path, lines)) = &seq_out {
            let tags: Vec<String> = lines[i].split_whitespace().map(str::to_string).collect();
            check_tags(&tags, words.len(), path, line, "")?;
            labels.token.insert(TAGS.to_string(), tags);
        }
        if let Some((path, lines)) = &label {
            let intent = clean_label(&lines[i], path, line, "")?;
            labels.sentence.insert(INTENT.to_string(), intent);
        }
        examples.push(Example {
            words,
            labels,
            origin: Origin {
                file: seq_in.clone(),
                line,
            },
        });
    }
    Ok(examples)
}
