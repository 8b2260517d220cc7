//! CoNLL token files: one token per line, the token in the first column and its tag in the last
//! (whitespace-separated, at least two columns); blank lines separate sentences; `-DOCSTART-`
//! lines (and the blank line after them) are skipped. Token tagging only.

use std::path::Path;

use super::{validate_tag, DataError, Example, Origin};

/// Parses the CoNLL `text` of the file `path`.
pub(super) fn parse(path: &Path, text: &str) -> Result<Vec<Example>, DataError> {
    let mut examples = Vec::new();
    // The sentence being read: its first line, words and tags.
    let mut current: Option<(usize, Vec<String>, Vec<String>)> = None;
    for (line, raw) in super::numbered_lines(text) {
        let columns: Vec<&str> = raw.split_whitespace().collect();
        if columns.is_empty() {
            flush(&mut current, &mut examples, path);
            continue;
        }
        if columns[0] == "-DOCSTART-" {
            // A document boundary also ends a sentence; the blank line after it is skipped as any blank line.
            flush(&mut current, &mut examples, path);
            continue;
        }
        if columns.len() < 2 {
            return Err(DataError::at(
                path,
                line,
                format!(
                    "expected at least 2 columns (token ... tag), found 1 (\"{}\")",
                    columns[0]
                ),
            ));
        }
        let tag = columns[columns.len() - 1];
        validate_tag(tag)
            .map_err(|reason| DataError::at(path, line, format!("tag column: {reason}")))?;
        let (_, words, tags) = current.get_or_insert_with(|| (line, Vec::new(), Vec::new()));
        words.push(columns[0].to_string());
        tags.push(tag.to_string());
    }
    flush(&mut current, &mut examples, path);
    Ok(examples)
}

fn flush(
    current: &mut Option<(usize, Vec<String>, Vec<String>)>,
    examples: &mut Vec<Example>,
    path: &Path,
) {
    if let Some((line, words, tags)) = current.take() {
        examples.push(Example {
            words,
            tags: Some(tags),
            intent: None,
            origin: Origin {
                file: path.to_path_buf(),
                line,
            },
        });
    }
}
