//! Errors from loading and validating an actions file.

use std::fmt;
use std::io;

use thiserror::Error;

/// Which rule a problem is in: 1-based index in file order, and its name if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    /// 1-based position of the `[[rule]]` in the file.
    pub index: usize,
    /// The rule's `name`, if given.
    pub name: Option<String>,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "rule {} \"{}\"", self.index, name),
            None => write!(f, "rule {}", self.index),
        }
    }
}

/// One problem found in an actions file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// 1-based (line, column) in the file, when known (schema errors).
    pub position: Option<(usize, usize)>,
    /// The rule the problem is in; `None` for file-level problems.
    pub rule: Option<RuleRef>,
    /// The field, as a TOML key path inside the rule (e.g. `pwm.max`, `i2c.bytes[2]`).
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(rule) = &self.rule {
            write!(f, "{rule}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "field \"{field}\": ")?;
        }
        f.write_str(&self.message)
    }
}

/// Why an actions file could not be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file as given.
        file: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The file is not valid TOML.
    #[error("{file}:{line}:{column}: TOML syntax error: {message}")]
    Syntax {
        /// The file as given.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// The parser's description.
        message: String,
    },
    /// The file is valid TOML but breaks the schema or a rule is invalid.
    #[error("{}", render(file, problems))]
    Invalid {
        /// The file as given.
        file: String,
        /// Every problem found (at least one), in file order.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The problems of an [`ConfigError::Invalid`] error (empty for the other kinds).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

fn render(file: &str, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| match p.position {
            Some((line, column)) => format!("{file}:{line}:{column}: {p}"),
            None => format!("{file}: {p}"),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Collects problems while validating, then turns them into one error.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<Problem>);

impl Problems {
    /// Records a problem in `rule`'s `field`.
    pub(crate) fn rule(&mut self, rule: &RuleRef, field: &str, message: impl Into<String>) {
        self.0.push(Problem {
            position: None,
            rule: Some(rule.clone()),
            field: Some(field.to_owned()),
            message: message.into(),
        });
    }

    /// Records a problem not tied to one field.
    pub(crate) fn general(
        &mut self,
        rule: Option<&RuleRef>,
        field: Option<&str>,
        message: impl Into<String>,
    ) {
        self.0.push(Problem {
            position: None,
            rule: rule.cloned(),
            field: field.map(str::to_owned),
            message: message.into(),
        });
    }

    /// `Ok(())` when nothing was recorded, else the error for `file`.
    pub(crate) fn finish(self, file: &str) -> Result<(), ConfigError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                file: file.to_owned(),
                problems: self.0,
            })
        }
    }
}

/// 1-based (line, column) of a byte offset in `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // "bé" is 3 bytes; the space after it is the 3rd character.
        assert_eq!(line_column(text, 9), (2, 3));
        assert_eq!(line_column(text, 999), (3, 1));
    }

    #[test]
    fn invalid_renders_one_line_per_problem() {
        let err = ConfigError::Invalid {
            file: "actions.toml".into(),
            problems: vec![
                Problem {
                    position: None,
                    rule: Some(RuleRef {
                        index: 2,
                        name: Some("dimmer".into()),
                    }),
                    field: Some("pwm.max".into()),
                    message: "must be greater than \"pwm.min\" (80)".into(),
                },
                Problem {
                    position: Some((3, 1)),
                    rule: None,
                    field: None,
                    message: "x".into(),
                },
            ],
        };
        assert_eq!(
            err.to_string(),
            "actions.toml: rule 2 \"dimmer\": field \"pwm.max\": must be greater than \"pwm.min\" (80)\n\
             actions.toml:3:1: x"
        );
    }
}
