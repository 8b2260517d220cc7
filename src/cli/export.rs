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

/// The self-check figures with the legacy `intent_*` / `slot_*` keys taken from the tasks `intent`
/// and `tags` themselves (the library sums every sentence task under `intent_*` and every token
/// task under `slot_*`), and left out when the model lacks that task.
fn only_present_tasks(mut v: serde_json::Value) -> serde_json::Value {
    let Some(check) = v.get_mut("check").and_then(|c| c.as_object_mut()) else {
        return v;
    };
    let tasks = check.get("tasks").cloned().unwrap_or_default();
    for (task, prefix, diff) in [
        ("intent", "intent_", "max_diff_intent_logit"),
        ("tags", "slot_", "max_diff_slot_logit"),
    ] {
        check.retain(|k, _| !(k.starts_with(prefix) || k == diff));
        if let Some(t) = tasks.get(task) {
            check.insert(format!("{prefix}ids"), t["ids"].clone());
            check.insert(format!("{prefix}agreement"), t["agreement"].clone());
            check.insert(diff.to_string(), t["max_diff_logit"].clone());
        }
    }
    v
}
