//! `edgetune export`: one ONNX file with the run's backbone, word pooling and every task head,
//! checked against the training pipeline before it is written ([`edgetune::onnx::export`]).

use std::path::PathBuf;

use edgetune::backbone::SessionOptions;
use edgetune::onnx::export::{export_run, ExportOptions};

use super::common;
use super::common::Global;

/// Flags of `edgetune export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A finished run directory.
    #[arg(long, value_name = "RUN")]
    pub run: PathBuf,
    /// The merged model to write (`tokenizer.json` is written beside it).
    #[arg(long, value_name = "MERGED.onnx")]
    pub out: PathBuf,
    /// Replace an existing --out (and the tokenizer.json beside it).
    #[arg(long)]
    pub force: bool,
    /// Backbone override (must be the one the run was trained on).
    #[arg(long, value_name = "PATH")]
    pub backbone: Option<PathBuf>,
    /// Extra sentences for the self-check, one per line (in addition to the built-in ones).
    #[arg(long, value_name = "FILE")]
    pub check_file: Option<PathBuf>,
    /// For a run trained with --unfreeze-top: keep the fine-tuned layers in fp32 (logits match the
    /// run within 1e-4) instead of re-quantizing them to dynamic int8 (smaller, faster; must agree
    /// with the run on at least 98% of the check sentences' predicted ids).
    #[arg(long)]
    pub fp32_layers: bool,
    /// Print the self-check figures as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Which version of the run (`edgetune history RUN` lists them; default: the current one).
    #[arg(long = "version", value_name = "N")]
    pub run_version: Option<u64>,
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<()> {
    let threads = common::setup_threads(g)?;
    common::init_runtime(g)?;
    let (version, run) = edgetune::run::versions::resolve(&a.run, a.run_version)?;
    if version > 0 {
        eprintln!(
            "exporting version {version} of {} ({})",
            a.run.display(),
            run.display()
        );
    }
    let report = export_run(&ExportOptions {
        run,
        out: a.out,
        backbone: a.backbone,
        check_file: a.check_file,
        fp32_layers: a.fp32_layers,
        force: a.force,
        session: SessionOptions::with_threads(threads),
        progress: true,
    })?;
    for n in &report.notes {
        eprintln!("{n}");
    }
    if a.json {
        println!("{}", report.json);
    }
    Ok(())
}
