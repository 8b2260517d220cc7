//! Sentence classification files: `label<TAB>text` (TSV) and `label,text` (CSV, RFC 4180 quoting),
//! one task named `intent`. A header row is found by the *name* of its text column: `text`,
//! `sentence` or `utterance` (any case), or the name `--text-column` gives, anywhere in the
//! row; every other column is a sentence task (a column named `label` is `intent`):
//! `intent<TAB>sentiment<TAB>text` gives two tasks, `sentence,label` one. A first row that names
//! a label column (`label`, `intent`) but no text column is an error listing its columns. Blank
//! lines are skipped; in a TSV file whose text is the last column the text may contain tabs.

use std::collections::BTreeMap;
use std::path::Path;

use super::error::DataError;
use super::example::{Example, Labels, Origin, INTENT, TAGS};
use super::text::{check_task_name, clean_label, numbered_lines, words_of};

/// Names a text column is recognised by in a header row (compared without case).
pub const TEXT_COLUMNS: &[&str] = &["text", "sentence", "utterance"];

/// The columns of a file: the task of each label column and where the text is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Columns {
    /// The task names of the label columns, in file order.
    tasks: Vec<String>,
    /// The index of the text column among all columns.
    text: usize,
}

impl Columns {
    /// `label<TAB>text`: one task, `intent`.
    fn headerless() -> Self {
        Self {
            tasks: vec![INTENT.to_string()],
            text: 1,
        }
    }

    /// How many columns a row has.
    fn len(&self) -> usize {
        self.tasks.len() + 1
    }

    /// The columns' names for messages (`intent, text`).
    fn names(&self) -> String {
        let mut n: Vec<&str> = self.tasks.iter().map(String::as_str).collect();
        n.insert(self.text, "text");
        n.join(", ")
    }

    /// The label fields and the text of a row of `len()` fields.
    fn split<'a>(&self, fields: &[&'a str]) -> (Vec<&'a str>, &'a str) {
        let mut labels = fields.to_vec();
        let text = labels.remove(self.text);
        (labels, text)
    }
}

/// The columns a header row names, or `None` when the row is data. `text_column`: the text
/// column's name (`--text-column`), else any of [`TEXT_COLUMNS`]. A header whose names are not
/// usable task names, or a row that names a label column but no text column, is an error.
fn header(
    fields: &[&str],
    text_column: Option<&str>,
    path: &Path,
    line: usize,
) -> Result<Option<Columns>, DataError> {
    let is_text = |f: &str| match text_column {
        Some(name) => f.trim() == name,
        None => TEXT_COLUMNS
            .iter()
            .any(|t| f.trim().eq_ignore_ascii_case(t)),
    };
    let Some(text) = fields.iter().position(|f| is_text(f)) else {
        let is_label = |f: &&str| {
            ["label", INTENT]
                .iter()
                .any(|l| f.trim().eq_ignore_ascii_case(l))
        };
        if text_column.is_some() || fields.iter().any(is_label) {
            let cols: Vec<&str> = fields.iter().map(|f| f.trim()).collect();
            return Err(DataError::at(
                path,
                line,
                format!(
                    "header without a text column{}: its columns are {}; name the text column `text` or pass --text-column NAME",
                    text_column.map_or(String::new(), |n| format!(" named `{n}`")),
                    cols.join(", ")
                ),
            ));
        }
        return Ok(None);
    };
    if fields.len() < 2 {
        return Err(DataError::at(
            path,
            line,
            "header with a text column but no label column",
        ));
    }
    let mut names: Vec<String> = Vec::with_capacity(fields.len() - 1);
    for (i, f) in fields.iter().enumerate() {
        if i == text {
            continue;
        }
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
    Ok(Some(Columns { tasks: names, text }))
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

/// Parses the TSV `text` of the file `path` (`text_column`: see [`header`]).
pub(super) fn parse_tsv(
    path: &Path,
    text: &str,
    text_column: Option<&str>,
) -> Result<Vec<Example>, DataError> {
    let mut examples = Vec::new();
    let mut columns: Option<Columns> = None;
    let mut first = true;
    for (line, raw) in numbered_lines(text) {
        if raw.trim().is_empty() {
            continue;
        }
        if std::mem::take(&mut first) {
            let fields: Vec<&str> = raw.split('\t').collect();
            if let Some(c) = header(&fields, text_column, path, line)? {
                columns = Some(c);
                continue;
            }
        }
        let cols = columns.get_or_insert_with(Columns::headerless);
        let n = cols.len();
        // Tabs inside the text are kept when it is the last column.
        let fields: Vec<&str> = if cols.text + 1 == n {
            raw.splitn(n, '\t').collect()
        } else {
            raw.split('\t').collect()
        };
        if fields.len() != n {
            return Err(DataError::at(
                path,
                line,
                if n == 2 && cols.text == 1 {
                    "expected label<TAB>text, found no tab".to_string()
                } else {
                    format!(
                        "expected {n} tab-separated columns ({}), found {}",
                        cols.names(),
                        fields.len()
                    )
                },
            ));
        }
        let (labels, text) = cols.split(&fields);
        examples.push(example(path, line, &cols.tasks, &labels, text)?);
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
/// header names (two without a header; `text_column`: see [`header`]).
pub(super) fn parse_csv(
    path: &Path,
    text: &str,
    text_column: Option<&str>,
) -> Result<Vec<Example>, DataError> {
    let mut examples = Vec::new();
    let mut columns: Option<Columns> = None;
    let mut first = true;
    for Record { line, fields } in records(path, text)? {
        if fields.iter().all(|f| f.trim().is_empty()) && fields.len() == 1 {
            continue;
        }
        let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
        if std::mem::take(&mut first) {
            if let Some(c) = header(&refs, text_column, path, line)? {
                columns = Some(c);
                continue;
            }
        }
        let cols = columns.get_or_insert_with(Columns::headerless);
        let n = cols.len();
        if refs.len() != n {
            return Err(DataError::at(
                path,
                line,
                if n == 2 && cols.text == 1 {
                    format!(
                        "expected 2 fields (label,text), found {}; quote the text if it contains commas",
                        refs.len()
                    )
                } else {
                    format!(
                        "expected {n} fields ({}), found {}; quote the text if it contains commas",
                        cols.names(),
                        refs.len()
                    )
                },
            ));
        }
        let (labels, text) = cols.split(&refs);
        examples.push(example(path, line, &cols.tasks, &labels, text)?);
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

#[cfg(test)]
mod header_tests {
    use super::*;

    fn tasks_and_words(
        text: &str,
        col: Option<&str>,
    ) -> Vec<(BTreeMap<String, String>, Vec<String>)> {
        parse_tsv(Path::new("x.tsv"), text, col)
            .unwrap()
            .into_iter()
            .map(|e| (e.labels.sentence, e.words))
            .collect()
    }

    #[test]
    fn header_found_by_the_text_column_name_anywhere() {
        for text in [
            "sentence\tlabel\ngreat phone\tpos\nbad one\tneg\n",
            "label\tsentence\npos\tgreat phone\nneg\tbad one\n",
            "Utterance\tintent\ngreat phone\tpos\nbad one\tneg\n",
        ] {
            let got = tasks_and_words(text, None);
            assert_eq!(got.len(), 2, "{text}");
            assert_eq!(
                got[0].0.get(INTENT).map(String::as_str),
                Some("pos"),
                "{text}"
            );
            assert_eq!(got[0].1, vec!["great", "phone"], "{text}");
        }
        let got = tasks_and_words("mood\tbody\tsource\nhappy\tso good\tweb\n", Some("body"));
        assert_eq!(got[0].1, vec!["so", "good"]);
        assert_eq!(got[0].0.get("source").map(String::as_str), Some("web"));
    }

    #[test]
    fn header_without_a_text_column_lists_the_columns() {
        let err = parse_tsv(Path::new("x.tsv"), "label\tcomment\npos\tgood\n", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x.tsv:1") && err.contains("label, comment"),
            "{err}"
        );
        assert!(err.contains("--text-column"), "{err}");
        let err = parse_csv(Path::new("x.csv"), "a,b\nx,y\n", Some("body"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("named `body`") && err.contains("a, b"),
            "{err}"
        );
    }
}
