//! Sentence classification files: `label<TAB>text` (TSV) and `label,text` (CSV, RFC 4180 quoting),
//! one task named `intent`. A header line whose last column is `text` names the columns instead:
//! `intent<TAB>sentiment<TAB>text` gives two sentence tasks (a column named `label` is `intent`).
//! Blank lines are skipped; in a TSV file the text (the last column) may contain tabs.

use std::collections::BTreeMap;
use std::path::Path;

use super::error::DataError;
use super::example::{Example, Labels, Origin, INTENT, TAGS};
use super::text::{check_task_name, clean_label, numbered_lines, words_of};

/// The task names of a header row (`text` last), or `None` when the row is data. A header whose
/// names are not usable task names is an error.
fn header(fields: &[&str], path: &Path, line: usize) -> Result<Option<Vec<String>>, DataError> {
    let Some((last, tasks)) = fields.split_last() else {
        return Ok(None);
    };
    if tasks.is_empty() || !last.trim().eq_ignore_ascii_case("text") {
        return Ok(None);
    }
    let mut names: Vec<String> = Vec::with_capacity(tasks.len());
    for f in tasks {
        let f = f.trim();
        let name = if f.eq_ignore_ascii_case("label") || f.eq_ignore_ascii_case("intent") {
            INTENT.to_string()
        } else {
            f.to_string()
        };
        check_task_name(&name).map_err(|m| DataError::at(path, line, format!("header: {m}")))?;
        if name == TAGS {
            return Err(DataError::at(
                path,
                line,
                "header: `tags` is the task of one BIO tag per word, not a label of the whole text",
            ));
        }
        if names.contains(&name) {
            return Err(DataError::at(
                path,
                line,
                format!("header: column `{name}` appears twice"),
            ));
        }
        names.push(name);
    }
    Ok(Some(names))
}

/// One example from its label fields (named by `tasks`) and its text.
fn example(
    path: &Path,
    line: usize,
    tasks: &[String],
    labels: &[&str],
    text: &str,
) -> Result<Example, DataError> {
    let mut sentence = BTreeMap::new();
    for (task, label) in tasks.iter().zip(labels) {
        let what = if tasks.len() == 1 && task == INTENT {
            "label column".to_string()
        } else {
            format!("column `{task}`")
        };
        sentence.insert(task.clone(), clean_label(label, path, line, &what)?);
    }
    let words = words_of(text, path, line, "text column")?;
    Ok(Example {
        words,
        labels: Labels {
            sentence,
            token: BTreeMap::new(),
        },
        origin: Origin {
            file: path.to_path_buf(),
            line,
        },
    })
}

/// Parses the TSV `text` of the file `path`.
pub(super) fn parse_tsv(path: &Path, text: &str) -> Result<Vec<Example>, DataError> {
    let mut examples = Vec::new();
    let mut tasks: Option<Vec<String>> = None;
    let mut first = true;
    for (line, raw) in numbered_lines(text) {
        if raw.trim().is_empty() {
            continue;
        }
        if std::mem::take(&mut first) {
            let fields: Vec<&str> = raw.split('\t').collect();
            if let Some(names) = header(&fields, path, line)? {
                tasks = Some(names);
                continue;
            }
        }
        let names = tasks.get_or_insert_with(|| vec![INTENT.to_string()]);
        let n = names.len() + 1;
        let fields: Vec<&str> = raw.splitn(n, '\t').collect();
        if fields.len() != n {
            return Err(DataError::at(
                path,
                line,
                if n == 2 {
                    "expected label<TAB>text, found no tab".to_string()
                } else {
                    format!(
                        "expected {n} tab-separated columns ({}, text), found {}",
                        names.join(", "),
                        fields.len()
                    )
                },
            ));
        }
        examples.push(example(path, line, names, &fields[..n - 1], fields[n - 1])?);
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

/// Parses the CSV `text` of the file `path`: label fields and the text, as many per record as the
/// header names (two without a header).
pub(super) fn parse_csv(path: &Path, text: &str) -> Result<Vec<Example>, DataError> {
    let mut examples = Vec::new();
    let mut tasks: Option<Vec<String>> = None;
    let mut first = true;
    for Record { line, fields } in records(path, text)? {
        if fields.iter().all(|f| f.trim().is_empty()) && fields.len() == 1 {
            continue;
        }
        let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
        if std::mem::take(&mut first) {
            if let Some(names) = header(&refs, path, line)? {
                tasks = Some(names);
                continue;
            }
        }
        let names = tasks.get_or_insert_with(|| vec![INTENT.to_string()]);
        let n = names.len() + 1;
        if refs.len() != n {
            return Err(DataError::at(
                path,
                line,
                if n == 2 {
                    format!(
                        "expected 2 fields (label,text), found {}; quote the text if it contains commas",
                        refs.len()
                    )
                } else {
                    format!(
                        "expected {n} fields ({}, text), found {}; quote the text if it contains commas",
                        names.join(", "),
                        refs.len()
                    )
                },
            ));
        }
        examples.push(example(path, line, names, &refs[..n - 1], refs[n - 1])?);
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
