//! Text-level helpers shared by the format parsers: words, labels, lines, UTF-8.

use std::path::Path;

use super::error::DataError;

/// Byte spans `(start, end)` of the whitespace-separated words of `text` (Unicode whitespace).
pub fn split_words(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, text.len()));
    }
    spans
}

/// Checks one BIO tag: `O`, `B-X` or `I-X` with a non-empty type `X` without whitespace.
/// On error, returns the reason.
pub fn validate_tag(tag: &str) -> Result<(), String> {
    if tag == "O" {
        return Ok(());
    }
    let kind = match tag.strip_prefix("B-").or_else(|| tag.strip_prefix("I-")) {
        Some(kind) => kind,
        None if tag.is_empty() => {
            return Err("empty tag (expected O, B-TYPE or I-TYPE)".to_string())
        }
        None => {
            return Err(format!(
                "malformed tag \"{tag}\" (expected O, B-TYPE or I-TYPE)"
            ))
        }
    };
    if kind.is_empty() {
        return Err(format!(
            "malformed tag \"{tag}\": empty slot type after \"{}\"",
            &tag[..2]
        ));
    }
    if kind.chars().any(char::is_whitespace) {
        return Err(format!(
            "malformed tag \"{tag}\": slot type contains whitespace"
        ));
    }
    Ok(())
}

/// Longest line of a data file: 64 KiB, as `serve` and `infer` read a line (a sentence is far
/// shorter; one huge line would cost many times its size once parsed).
pub const MAX_DATA_LINE_BYTES: usize = 64 * 1024;

/// Largest data file read: 4 GiB (the bound is on bytes read; a FIFO or device is refused).
pub const MAX_DATA_FILE_BYTES: u64 = 4 << 30;

/// An error naming `path:line` for the first line longer than [`MAX_DATA_LINE_BYTES`].
fn check_line_lengths(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    for (number, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.len() > MAX_DATA_LINE_BYTES {
            return Err(DataError::at(
                path,
                number + 1,
                format!(
                    "line of {} bytes, longer than the limit of {MAX_DATA_LINE_BYTES}",
                    line.len()
                ),
            ));
        }
    }
    Ok(())
}

/// Reads a whole file as UTF-8 (a leading byte-order mark is dropped). Invalid UTF-8 is reported
/// with the line it is on.
pub fn read_text(path: &Path) -> Result<String, DataError> {
    let mut bytes =
        crate::fsutil::read_bounded(path, MAX_DATA_FILE_BYTES, crate::fsutil::Links::Follow)
            .map_err(|e| DataError::io(path, e))?;
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        bytes.drain(..3);
    }
    check_line_lengths(path, &bytes)?;
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let valid = e.utf8_error().valid_up_to();
        let line = bytes[..valid].iter().filter(|&&b| b == b'\n').count() + 1;
        let column = valid
            - bytes[..valid]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1)
            + 1;
        DataError::at(
            path,
            line,
            format!(
                "invalid UTF-8 (byte 0x{:02X} at byte column {column})",
                bytes[valid]
            ),
        )
    })
}

/// Lines of `text` with their 1-based numbers; a trailing `\r` is dropped.
pub fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
}

/// `what: message`, or just `message` when `what` is empty.
pub fn prefixed(what: &str, message: &str) -> String {
    if what.is_empty() {
        message.to_string()
    } else {
        format!("{what}: {message}")
    }
}

/// Splits `text` into words; errors (naming `field`) if there are none.
pub fn words_of(
    text: &str,
    path: &Path,
    line: usize,
    field: &str,
) -> Result<Vec<String>, DataError> {
    let words: Vec<String> = split_words(text)
        .into_iter()
        .map(|(s, e)| text[s..e].to_string())
        .collect();
    if words.is_empty() {
        return Err(DataError::at(
            path,
            line,
            prefixed(field, "text has no words"),
        ));
    }
    Ok(words)
}

/// Validates a tag sequence against the words; `what` prefixes messages (e.g. `field "tags"`).
pub fn check_tags(
    tags: &[String],
    n_words: usize,
    path: &Path,
    line: usize,
    what: &str,
) -> Result<(), DataError> {
    if tags.len() != n_words {
        return Err(DataError::at(
            path,
            line,
            prefixed(what, &format!("{} tags for {n_words} words", tags.len())),
        ));
    }
    for (i, tag) in tags.iter().enumerate() {
        validate_tag(tag).map_err(|reason| {
            DataError::at(
                path,
                line,
                prefixed(what, &format!("tag {}: {reason}", i + 1)),
            )
        })?;
    }
    Ok(())
}

/// Validates a sentence-level label of any task (non-empty; surrounding whitespace is dropped).
pub fn clean_label(label: &str, path: &Path, line: usize, what: &str) -> Result<String, DataError> {
    let label = label.trim();
    if label.is_empty() {
        return Err(DataError::at(path, line, prefixed(what, "empty label")));
    }
    Ok(label.to_string())
}

/// Validates the labels of a token task that is not BIO (part of speech, word attributes): one
/// non-empty label without whitespace per word.
pub fn check_token_labels(
    labels: &[String],
    n_words: usize,
    path: &Path,
    line: usize,
    what: &str,
) -> Result<(), DataError> {
    if labels.len() != n_words {
        return Err(DataError::at(
            path,
            line,
            prefixed(
                what,
                &format!("{} labels for {n_words} words", labels.len()),
            ),
        ));
    }
    for (i, l) in labels.iter().enumerate() {
        if l.is_empty() {
            return Err(DataError::at(
                path,
                line,
                prefixed(what, &format!("label {} is empty", i + 1)),
            ));
        }
        if l.chars().any(char::is_whitespace) {
            return Err(DataError::at(
                path,
                line,
                prefixed(
                    what,
                    &format!("label {} ({l:?}) contains whitespace", i + 1),
                ),
            ));
        }
    }
    Ok(())
}

/// Names that cannot be task names: the fields of a JSON line that are not labels (the utterance,
/// `text` or `words`, and the record's `id`). The keys of the answers and of `serve`'s protocol
/// are checked where they are defined (`crate::predict::check_answer_keys`, `serve`'s start).
pub const RESERVED_TASK_NAMES: &[&str] = &["text", "words", "id"];

/// Checks a task name from a key, a column header or the command line: 1 to 64 ASCII letters,
/// digits, `_` or `-`, starting with a letter (task names become parameter, file and ONNX output
/// names). On error, returns the reason.
pub fn check_task_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok && RESERVED_TASK_NAMES.contains(&name) {
        return Err(format!(
            "task name {name:?} is reserved (a JSON line's utterance or id); rename the key or column"
        ));
    }
    if ok {
        Ok(())
    } else {
        Err(format!(
            "task name {name:?} is not usable: 1-64 ASCII letters, digits, '_' or '-', starting with a letter"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names_reserve_only_the_fields_of_a_json_line() {
        for name in ["text", "words", "id"] {
            let e = check_task_name(name).unwrap_err();
            assert!(e.contains("reserved"), "{e}");
        }
        // Keys of the answers and of `serve`'s protocol are checked where they are defined.
        for name in [
            "cmd",
            "correct",
            "latency_ms",
            "unknown",
            "actions",
            "slots",
            "error",
        ] {
            assert_eq!(check_task_name(name), Ok(()), "{name}");
        }
        assert!(check_task_name("2x").is_err() && check_task_name("a b").is_err());
    }
}
