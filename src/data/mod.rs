//! Datasets: labelled utterances in JointBERT, JSON lines, CoNLL and TSV/CSV formats, with any
//! number of named tasks, sentence-level (`intent`, `sentiment`, ...) and token-level (`tags`,
//! `pos`, ...).
//!
//! A dataset directory holds splits named `train`, `valid` and `test`. A split `NAME` is either a
//! JointBERT folder `NAME/` (`seq.in`, `seq.out`, `label`) or a single file `NAME.jsonl`,
//! `NAME.txt`/`NAME.conll` (CoNLL) or `NAME.tsv`/`NAME.csv`. Every problem with the input is
//! reported as a [`DataError`] naming the file and, when there is one, the 1-based line.

pub mod check;
mod conll;
mod delimited;
pub mod error;
pub mod example;
pub mod format;
mod jointbert;
mod jsonl;
pub mod load;
pub mod text;

pub use check::{check_data, DataCheck};
pub use error::DataError;
pub use example::{Dataset, Example, Labels, Origin, Split, TaskInfo, TaskKind, INTENT, TAGS};
pub use format::{Format, UnknownFormat};
pub use load::{
    load_dataset, load_eval_split, load_split, parse_jointbert, parse_text, read_file_split,
    ReadOptions,
};
pub use text::{check_task_name, split_words, validate_tag};
