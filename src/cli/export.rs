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
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<()> {
    let threads = common::setup_threads(g)?;
    common::init_runtime(g)?;
    let report = export_run(&ExportOptions {
        run: a.run,
        out: a.out,
        backbone: a.backbone,
        check_file: a.check_file,
        fp32_layers: a.fp32_layers,
        force: a.force,
        session: SessionOptions::with_threads(threads),
        progress: !g.quiet && !g.json,
    })?;
    if !g.quiet && !g.json {
        for n in &report.notes {
            eprintln!("{n}");
        }
    }
    if g.json {
        common::print_json(&only_present_tasks(report.json))?;
    }
    Ok(())
}

/// The self-check figures without the legacy `intent_*` / `slot_*` keys of a task the model does
/// not have (they would report the other sentence or token tasks under a name it lacks).
fn only_present_tasks(mut v: serde_json::Value) -> serde_json::Value {
    let has = |t: &str| v["tasks"].get(t).is_some();
    let (intent, tags) = (has("intent"), has("tags"));
    if let Some(obj) = v.as_object_mut() {
        obj.retain(|k, _| {
            !((k.starts_with("intent_") || k == "max_diff_intent_logit") && !intent
                || (k.starts_with("slot_") || k == "max_diff_slot_logit") && !tags)
        });
    }
    v
}
