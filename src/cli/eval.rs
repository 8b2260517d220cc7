//! `edgetune eval`.

use std::path::PathBuf;

use edgetune::data::{self, Format, ReadOptions};
use edgetune::eval::{evaluate_run, render_table};
use edgetune::report::write_eval_plots;

use super::common;
use super::common::Global;

/// Flags of `edgetune eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A finished run directory.
    #[arg(long, value_name = "RUN")]
    pub run: PathBuf,
    /// A dataset directory (with --split) or a single data file / JointBERT folder. The tasks it has
    /// are scored; the run's other tasks are left out.
    #[arg(long, value_name = "PATH")]
    pub data: PathBuf,
    /// Which split of the dataset directory to evaluate.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Data format (default: detected).
    #[arg(long)]
    pub format: Option<Format>,
    /// CoNLL column names (see `train --columns`).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// Backbone override (must be the one the run was trained on).
    #[arg(long, visible_alias = "model", value_name = "PATH")]
    pub backbone: Option<PathBuf>,
    /// Feature cache directory.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Print one JSON object on stdout: `examples`, `intent_accuracy`, `slot_precision`,
    /// `slot_recall`, `slot_f1`, `sentence_accuracy` (where they apply), `tasks` (per task) and
    /// `all_tasks_accuracy`.
    #[arg(long)]
    pub json: bool,
    /// Also write the evaluation pictures into DIR: a confusion matrix per sentence task and F1
    /// bars per label of every token task, each as SVG, PNG and JSON (the plotted data).
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// Write into a --plots DIR that already holds files.
    #[arg(long)]
    pub force: bool,
    /// No progress output (else a bar on a terminal, a line every 5 s otherwise;
    /// $EDGETUNE_PROGRESS_SECS sets the interval).
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<()> {
    if let Some(dir) = &a.plots {
        common::check_output_dir(dir, a.force, "--plots")?;
    }
    let threads = common::setup_threads(g)?;
    let (rc, model) = edgetune::run::load_run(&a.run)?;
    let read = ReadOptions {
        format: a.format,
        columns: a.columns.clone(),
    };
    let split = data::load_eval_split(&a.data, &a.split, &read)?;
    common::init_runtime(g)?;
    let files = edgetune::run::backbone_files(&rc, a.backbone.as_deref())?;
    let mut ctx = common::feature_context(
        files,
        Some(rc.backbone.max_tokens),
        threads,
        a.cache_dir,
        !a.quiet,
    )?;
    let ev = evaluate_run(&rc, &model, &split, &mut ctx)?;
    let report = ev.report;
    if let Some(dir) = &a.plots {
        let p = write_eval_plots(dir, &report, &split.name)?;
        if !a.quiet {
            eprintln!(
                "{} picture files written to {}",
                p.files.len(),
                dir.display()
            );
        }
    }
    if a.json {
        let mut v = serde_json::to_value(&report.metrics)?;
        if ev.truncated > 0 {
            v["truncated_examples"] = ev.truncated.into();
        }
        let (ui, us) = (report.unseen_intents(), report.unseen_slot_types());
        if !ui.is_empty() {
            v["unseen_intents"] = serde_json::to_value(&ui)?;
        }
        if !us.is_empty() {
            v["unseen_slot_types"] = serde_json::to_value(&us)?;
        }
        println!("{v}");
    } else {
        println!(
            "{} ({} examples, run {})",
            split.source.display(),
            split.examples.len(),
            a.run.display()
        );
        if ev.truncated > 0 {
            println!(
                "note: {} examples were truncated at {} tokens; their cut words count as tagged O",
                ev.truncated, rc.backbone.max_tokens
            );
        }
        print!("{}", render_table(&report));
    }
    Ok(())
}
