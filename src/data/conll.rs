//! CoNLL token files: one token per line, whitespace-separated columns, blank lines between
//! sentences, `-DOCSTART-` lines (and the blank line after them) skipped.
//!
//! Without column names the token is the first column and its BIO tag (task `tags`) the last (at
//! least two columns). With column names (`--columns word,pos,chunk,ner`) every line must have
//! that many columns: the column named `word` or `token` holds the words, a column named `_` is
//! skipped, and every other column is a token task of that name.

use std::collections::BTreeMap;
use std::path::Path;

use super::error::DataError;
use super::example::{Example, Labels, Origin, INTENT, TAGS};
use super::text::{check_task_name, numbered_lines, validate_tag};

/// The meaning of the columns.
enum Layout {
    /// First column the word, last column the `tags`.
    Default,
    /// `(word column, [(column, task name)])`.
    Named(usize, Vec<(usize, String)>),
}

fn layout(path: &Path, columns: Option<&[String]>) -> Result<Layout, DataError> {
    let Some(names) = columns else {
        return Ok(Layout::Default);
    };
    let bad = |m: String| DataError::file(path, format!("--columns: {m}"));
    let words: Vec<usize> = names
        .iter()
        .enumerate()
        .filter(|(_, n)| *n == "word" || *n == "token")
        .map(|(i, _)| i)
        .collect();
    let word = match words.as_slice() {
        [w] => *w,
        [] => return Err(bad("no column is named `word` (or `token`)".into())),
        _ => return Err(bad("more than one column is named `word`/`token`".into())),
    };
    let mut tasks: Vec<(usize, String)> = Vec::new();
    for (i, n) in names.iter().enumerate() {
        if i == word || n == "_" {
            continue;
        }
        check_task_name(n).map_err(bad)?;
        if n == INTENT {
            return Err(bad(
                "`intent` is the task of one label per sentence, not a column of word labels"
                    .into(),
            ));
        }
        if tasks.iter().any(|(_, t)| t == n) {
            return Err(bad(format!("column name `{n}` appears twice")));
        }
        tasks.push((i, n.clone()));
    }
    if tasks.is_empty() {
        return Err(bad(
            "no task column (every column but the words is `_`)".into()
        ));
    }
    Ok(Layout::Named(word, tasks))
}

/// A sentence being read: its first line, words and labels per task.
type Current = Option<(usize, Vec<String>, BTreeMap<String, Vec<String>>)>;

/// Parses the CoNLL `text` of the file `path`.
pub(super) fn parse(
    path: &Path,
    text: &str,
    columns: Option<&[String]>,
) -> Result<Vec<Example>, DataError> {
    let layout = layout(path, columns)?;
    let mut examples = Vec::new();
    let mut current: Current = None;
    for (line, raw) in numbered_lines(text) {
        let cols: Vec<&str> = raw.split_whitespace().collect();
        if cols.is_empty() {
            flush(&mut current, &mut examples, path);
            continue;
        }
        if cols[0] == "-DOCSTART-" {
            // A document boundary also ends a sentence; the blank line after it is skipped as any blank line.
            flush(&mut current, &mut examples, path);
            continue;
        }
        let (_, words, labels) = current.get_or_insert_with(|| (line, Vec::new(), BTreeMap::new()));
        match &layout {
            Layout::Default => {
                if cols.len() < 2 {
                    return Err(DataError::at(
                        path,
                        line,
                        format!(
                            "expected at least 2 columns (token ... tag), found 1 (\"{}\")",
                            cols[0]
                        ),
                    ));
                }
                let tag = cols[cols.len() - 1];
                validate_tag(tag)
                    .map_err(|reason| DataError::at(path, line, format!("tag column: {reason}")))?;
                words.push(cols[0].to_string());
                labels
                    .entry(TAGS.to_string())
                    .or_default()
                    .push(tag.to_string());
            }
            Layout::Named(word, tasks) => {
                let want = columns.map_or(0, <[String]>::len);
                if cols.len() != want {
                    return Err(DataError::at(
                        path,
                        line,
                        format!(
                            "expected {want} columns ({}), found {}",
                            columns.unwrap_or_default().join(" "),
                            cols.len()
                        ),
                    ));
                }
                words.push(cols[*word].to_string());
                for (i, name) in tasks {
                    let label = cols[*i];
                    if name == TAGS {
                        validate_tag(label).map_err(|reason| {
                            DataError::at(path, line, format!("column `{name}`: {reason}"))
                        })?;
                    }
                    labels
                        .entry(name.clone())
                        .or_default()
                        .push(label.to_string());
                }
            }
        }
    }
    flush(&mut current, &mut examples, path);
    Ok(examples)
}

fn flush(current: &mut Current, examples: &mut Vec<Example>, path: &Path) {
    if let Some((line, words, token)) = current.take() {
        examples.push(Example {
            words,
            labels: Labels {
                sentence: BTreeMap::new(),
                token,
            },
            origin: Origin {
                file: path.to_path_buf(),
                line,
            },
        });
    }
}
