//! `edgetune actions check`: an actions file against a model's labels, offline.

use std::io::Write;
use std::path::PathBuf;

use edgetune::device::{model_labels, Actions};

use super::common::{self, Global};

/// Flags of `edgetune actions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands of `edgetune actions`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check an actions file: syntax, schema and values, then every task, label and slot type it
    /// names against the model's (nothing is opened on the hardware). Prints each rule, or every
    /// problem with its rule and field.
    Check(CheckArgs),
}

/// Flags of `edgetune actions check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The actions file (e.g. examples/actions.toml).
    pub file: PathBuf,
    /// A merged model exported by `edgetune export` (its labels are read from its metadata).
    #[arg(
        long,
        value_name = "MERGED.onnx",
        required_unless_present = "run",
        conflicts_with = "run"
    )]
    pub model: Option<PathBuf>,
    /// A finished run directory (its labels are read from its config.json).
    #[arg(long, value_name = "RUN")]
    pub run: Option<PathBuf>,
}

pub fn run(_g: &Global, a: Args) -> anyhow::Result<()> {
    match a.command {
        Command::Check(c) => check(c),
    }
}

fn check(a: CheckArgs) -> anyhow::Result<()> {
    let model = common::model_path(a.run.as_ref(), a.model.as_ref())?;
    let labels = model_labels(&model)?;
    let actions = Actions::load(&a.file)?;
    actions.check_labels(&labels)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: {} rules, valid for the model",
        a.file.display(),
        actions.rules.len()
    )?;
    for rule in &actions.rules {
        writeln!(out, "  {rule}")?;
    }
    Ok(())
}
