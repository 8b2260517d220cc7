//! The on-disk formats of a split.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The on-disk format of a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A folder with `seq.in` (words), `seq.out` (BIO tags) and `label` (intent), one example per line.
    JointBert,
    /// JSON lines: `{"text": ...}` or `{"words": [...], "tags": [...]}`, with an optional `"intent"`.
    Jsonl,
    /// CoNLL token files: token in the first column, tag in the last, blank lines between sentences.
    Conll,
    /// `label<TAB>text`, one example per line.
    Tsv,
    /// `label,text` with RFC 4180 quoting.
    Csv,
}

impl Format {
    /// All formats, in the order they are listed in messages.
    pub const ALL: [Format; 5] = [
        Format::JointBert,
        Format::Jsonl,
        Format::Conll,
        Format::Tsv,
        Format::Csv,
    ];

    /// The lowercase name used on the command line and in serialized form.
    pub fn name(self) -> &'static str {
        match self {
            Format::JointBert => "jointbert",
            Format::Jsonl => "jsonl",
            Format::Conll => "conll",
            Format::Tsv => "tsv",
            Format::Csv => "csv",
        }
    }

    /// The format a file extension stands for (`jsonl`, `txt`, `conll`, `tsv`, `csv`; case-insensitive).
    pub fn from_extension(ext: &str) -> Option<Format> {
        match ext.to_ascii_lowercase().as_str() {
            "jsonl" => Some(Format::Jsonl),
            "txt" | "conll" => Some(Format::Conll),
            "tsv" => Some(Format::Tsv),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// The file extensions a split file may have, in the order candidates are reported.
pub const SPLIT_EXTENSIONS: [&str; 5] = ["jsonl", "txt", "conll", "tsv", "csv"];

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error of [`Format::from_str`]: the name is not one of the known formats.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown data format \"{0}\" (expected one of: jointbert, jsonl, conll, tsv, csv)")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Format::ALL
            .into_iter()
            .find(|f| f.name() == lower)
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}
