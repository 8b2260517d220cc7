//! Sentence classification files: `label<TAB>text` (TSV) and `label,text` (CSV, RFC 4180 quoting).
//! A header row `label,text` or `intent,text` (any case) is skipped; blank lines are skipped.

use std::path::Path;

use super::{clean_intent, numbered_lines, words_of, DataError, Example, Origin};

/// True if the two fields are a header row.
fn is_header(label: &str, text: &str) -> bool {
    let label = label.trim();
    (label.eq_ignore_ascii_case("label") || label.eq_ignore_ascii_case("intent"))
        && text.trim().eq_ignore_ascii_case("text")
}

fn example(path: &Path, line: usize, label: &str, text: &str) -> Result<Example, DataError> {
    let intent = clean_intent(label, path, line, "label column")?;
    let words = words_of(text, path, line, "text column")?;
    Ok(Example {
        words,
        tags: None,
        intent: Some(intent),
        origin: Origin {
            file: path.to_path_buf(),
            line,
        },
    })
}

/// Parses the TSV `text` of the file `path`: the label, a tab, the text (which may contain more tabs).
pub(super) fn parse_tsv(path: &Path, text: &str) -> Result<Vec<Example>, DataError> {
    let mut examples = Vec::new();
    let mut first = true;
    for (line, raw) in numbered_lines(text) {
        if raw.trim().is_empty() {
            continue;
        }
        let Some((label, rest)) = raw.split_once('\t') else {
            return Err(DataError::at(
                path,
                line,
                "expected label<TAB>text, found no tab",
            ));
        };
        if std::mem::take(&mut first) && is_header(label, rest) {
            continue;
        }
        examples.push(example(path, line, label, rest)?);
    }
    Ok(examples)
}

/// One CSV record: its fields and the 1-based line it starts on.
struct Record {
    line: usize,
    fields: Vec<String>,
}

/// Splits CSV `text` into records following RFC 4180: fields separated by commas, records by
/// LF or CRLF; a field in double quotes may contain commas, line breaks and `""` for a quote.
/// Spaces and tabs around a quoted field are ignored.
fn records(path: &Path, text: &str) -> Result<Vec<Record>, DataError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while chars.peek().is_some() {
        let start_line = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        loop {
            // At the start of a field. Spaces before an opening quote are tolerated (and dropped).
            let mut after_blanks = chars.clone();
            while after_blanks.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
            if after_blanks.peek() == Some(&'"') {
                chars = after_blanks;
                let quote_line = line;
                chars.next();
                loop {
                    match chars.next() {
                        None => {
                            return Err(DataError::at(
                                path,
                                quote_line,
                                "unterminated quoted field (a \" opened here is never closed)",
                            ))
                        }
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            field.push(c);
                        }
                    }
                }
                while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
                match chars.peek() {
                    None | Some(',') | Some('\n') | Some('\r') => {}
                    Some(c) => {
                        return Err(DataError::at(
                            path,
                            line,
                            format!("unexpected {c:?} after a closing quote (expected a comma or the end of the line)"),
                        ))
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' || c == '\n' || c == '\r' {
                        break;
                    }
                    if c == '"' {
                        return Err(DataError::at(
                            path,
                            line,
                            "a quote inside an unquoted field (quote the whole field and double the inner quotes)",
                        ));
                    }
                    field.push(c);
                    chars.next();
                }
            }
            fields.push(std::mem::take(&mut field));
            // The field ended at a comma, a line break or the end of the text.
            if chars.next_if_eq(&',').is_some() {
                continue;
            }
            let cr = chars.next_if_eq(&'\r').is_some();
            let lf = chars.next_if_eq(&'\n').is_some();
            if cr || lf {
                line += 1;
            }
            break;
        }
        out.push(Record {
            line: start_line,
            fields,
        });
    }
    Ok(out)
}

/// Parses the CSV `text` of the file `path`: exactly two fields per record, label and text.
pub(super) fn parse_csv(path: &Path, text: &str) -> Result<Vec<Example>, DataError> {
    let mut examples = Vec::new();
    let mut first = true;
    for Record { line, fields } in records(path, text)? {
        if fields.iter().all(|f| f.trim().is_empty()) && fields.len() == 1 {
            continue;
        }
        if fields.len() != 2 {
            return Err(DataError::at(
                path,
                line,
                format!(
                    "expected 2 fields (label,text), found {}; quote the text if it contains commas",
                    fields.len()
                ),
            ));
        }
        if std::mem::take(&mut first) && is_header(&fields[0], &fields[1]) {
            continue;
        }
        examples.push(example(path, line, &fields[0], &fields[1])?);
    }
    Ok(examples)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs(text: &str) -> Vec<(usize, Vec<String>)> {
        records(Path::new("x.csv"), text)
            .unwrap()
            .into_iter()
            .map(|r| (r.line, r.fields))
            .collect()
    }

    #[test]
    fn rfc4180_quoting_and_line_numbers() {
        let got = recs("a,b\r\n\"x, \"\"y\"\"\", \"multi\nline\" \nc,\n");
        assert_eq!(
            got,
            vec![
                (1, vec!["a".to_string(), "b".to_string()]),
                (2, vec!["x, \"y\"".to_string(), "multi\nline".to_string()]),
                (4, vec!["c".to_string(), String::new()]),
            ]
        );
    }

    #[test]
    fn unterminated_quote_names_opening_line() {
        let err = records(Path::new("x.csv"), "a,b\nc,\"open\n\n")
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "x.csv:2: unterminated quoted field (a \" opened here is never closed)"
        );
    }
}
