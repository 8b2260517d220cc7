//! `edgetune data check`: a dataset's label counts and problems, without a backbone
//! ([`edgetune::data::check_data`]).

use std::path::PathBuf;

use edgetune::data::{check_data, Format, ReadOptions};

use super::common::{self, Global};

/// Flags of `edgetune data`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands of `edgetune data`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check a dataset folder: per split and task the label counts, duplicated texts, texts with
    /// conflicting labels, blank lines and overlong examples; tasks with one label (training
    /// refuses them, exit code 1) and valid/test labels that train lacks.
    Check(CheckArgs),
}

/// Flags of `edgetune data check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The dataset folder (train, optionally valid and test).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Dataset format (default: detected from file names).
    #[arg(long)]
    pub format: Option<Format>,
    /// CoNLL column names (see `train --columns`).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// TSV/CSV: the name of the text column (see `train --text-column`).
    #[arg(long, value_name = "NAME")]
    pub text_column: Option<String>,
    /// Examples with more words than this are reported as overlong.
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub max_words: usize,
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<()> {
    let Command::Check(a) = a.command;
    if !a.dir.is_dir() {
        anyhow::bail!("{}: no such dataset folder", a.dir.display());
    }
    let read = ReadOptions {
        format: a.format,
        columns: a.columns,
        text_column: a.text_column,
    };
    let report = check_data(&a.dir, &read, a.max_words)?;
    if g.json {
        common::print_json(&report)?;
        if !report.errors.is_empty() {
            std::process::exit(1);
        }
        return Ok(());
    }
    print!("{}", report.text());
    match report.errors.first() {
        Some(_) => anyhow::bail!(
            "{}: training would refuse this dataset (see above)",
            a.dir.display()
        ),
        None => Ok(()),
    }
}
