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
    /// are scored; the run's other tasks are left out. Default: the run's own data (kept in the
    /// run, read with its format and --columns), split --split (valid when it has no test split).
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
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
    /// Which version of the run (`edgetune history RUN`; default: the current one).
    #[arg(long = "version", value_name = "N")]
    pub run_version: Option<u64>,
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
    let (_, dir) = edgetune::run::versions::resolve(&a.run, a.run_version)?;
    let (rc, model) = edgetune::run::load_run(&dir)?;
    let split = match &a.data {
        Some(path) => {
            let read = ReadOptions {
                format: a.format,
                columns: a.columns.clone(),
            };
            data::load_eval_split(path, &a.split, &read)?
        }
        None => own_split(&a, rc.training.settings.seed)?,
    };
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
            dir.display()
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

/// The split `--split` of the run's own data (`valid` when it has no such split), read as
/// `train` read it.
fn own_split(a: &Args, seed: u64) -> anyhow::Result<data::Split> {
    use anyhow::Context;
    use edgetune::run::snapshot::{data_folder, DataSource};
    let root = edgetune::run::versions::root_of(&a.run);
    let folder = data_folder(&root);
    let source = DataSource::read(&folder)?.with_context(|| {
        format!(
            "{} does not keep its training data (trained before runs did); pass --data PATH",
            root.display()
        )
    })?;
    anyhow::ensure!(
        a.format.is_none() && a.columns.is_none(),
        "--format and --columns apply to --data; the run's own data is read as it was at training"
    );
    let dataset = source.load(&folder, seed)?;
    match a.split.as_str() {
        "test" => match dataset.test {
            Some(t) => Ok(t),
            None => {
                eprintln!("note: the run's data has no test split; evaluating valid");
                Ok(dataset.valid)
            }
        },
        "valid" => Ok(dataset.valid),
        "train" => Ok(dataset.train),
        other => anyhow::bail!("--split {other}: the run's own data has train, valid and test"),
    }
}
