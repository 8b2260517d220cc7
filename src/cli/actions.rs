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
    /// The model whose labels the file is checked against: a run (its config.json) or a merged
    /// model (its metadata).
    #[command(flatten)]
    pub source: common::ModelArgs,
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<()> {
    match a.command {
        Command::Check(c) => check(g, c),
    }
}

fn check(g: &Global, a: CheckArgs) -> anyhow::Result<()> {
    let model = a.source.model_path()?;
    let labels = model_labels(&model)?;
    let actions = Actions::load(&a.file)?;
    actions.check_labels(&labels)?;
    if g.json {
        let rules: Vec<String> = actions.rules.iter().map(|r| r.to_string()).collect();
        return common::print_json(&serde_json::json!({
            "file": a.file,
            "model": model.path(),
            "valid": true,
            "rules": rules,
        }));
    }
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
