//! `edgetune eval`.

use std::path::PathBuf;

use edgetune::backbone::SessionOptions;
use edgetune::data::{self, Format, ReadOptions, Split, TaskKind};
use edgetune::eval::{check_shared_tasks, evaluate_predictor, evaluate_run, render_table, RunEval};
use edgetune::report::write_eval_plots;
use edgetune::ModelPath;

use super::common;
use super::common::Global;

/// Flags of `edgetune eval`.
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "edgetune eval --run RUN [--data PATH] [OPTIONS]\n       edgetune eval --model MERGED.onnx --data PATH [OPTIONS]"
)]
pub struct Args {
    /// What to score: a run (its backbone and heads, features from the cache) or the merged model
    /// actually deployed (`edgetune export`'s file, run by ONNX Runtime as `infer --model` runs it).
    #[command(flatten)]
    pub source: common::ModelArgs,
    /// A dataset directory (with --split) or a single data file / JointBERT folder. The tasks it
    /// shares with the model are scored (an error if there are none). Default with --run: the
    /// run's own data (kept in the run, read with its format and --columns), split --split (valid
    /// when it has no test split).
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// With --run: which version of the run (`edgetune history RUN`; default: the current one).
    #[arg(long = "version", value_name = "N", requires = "run")]
    pub run_version: Option<u64>,
    /// Which split of the dataset directory to evaluate.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Data format (default: detected).
    #[arg(long)]
    pub format: Option<Format>,
    /// CoNLL column names (see `train --columns`).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// TSV/CSV: the name of the text column in the header row (see `train --text-column`).
    #[arg(long, value_name = "NAME")]
    pub text_column: Option<String>,
    /// Backbone override for --run (must be the one the run was trained on).
    #[arg(long, value_name = "PATH", requires = "run")]
    pub backbone: Option<PathBuf>,
    /// Feature cache directory (--run; default: $EDGETUNE_CACHE, else ~/.cache/edgetune).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Also write the evaluation pictures into DIR: a confusion matrix per sentence task and F1
    /// bars per label of every token task, each as SVG, PNG and JSON (the plotted data). Files of
    /// other names in DIR are left alone.
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// Replace pictures of the same names in --plots DIR.
    #[arg(long)]
    pub force: bool,
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<()> {
    let source = match a.source.model_path()? {
        ModelPath::Run(root) => {
            ModelPath::Run(edgetune::run::versions::resolve(&root, a.run_version)?.1)
        }
        merged => merged,
    };
    if let Some(b) = &a.backbone {
        common::check_backbone(b, &["--run", "--model", "--backbone"])?;
    }
    let threads = common::setup_threads(g)?;
    let split = match (&a.data, &source) {
        (Some(path), _) => {
            if !path.exists() {
                anyhow::bail!("--data {}: no such file or folder", path.display());
            }
            let read = ReadOptions {
                format: a.format,
                columns: a.columns.clone(),
                text_column: a.text_column.clone(),
            };
            data::load_eval_split(path, &a.split, &read)?
        }
        (None, ModelPath::Run(dir)) => own_split(&a, dir)?,
        (None, ModelPath::Merged(_)) => anyhow::bail!("--data is required with --model"),
    };
    let model_tasks = source.tasks()?;
    let what = match &source {
        ModelPath::Run(p) => format!("run {}", p.display()),
        ModelPath::Merged(p) => format!("merged model {}", p.display()),
    };
    check_shared_tasks(&split, &what, &model_tasks)?;
    if let Some(dir) = &a.plots {
        common::check_output_dir(dir, a.force, "--plots", &plot_names(&split, &model_tasks))?;
    }
    common::init_runtime(g)?;
    let (ev, max_tokens) = match &source {
        ModelPath::Run(dir) => {
            let (rc, model) = edgetune::run::load_run(dir)?;
            let files = edgetune::run::backbone_files(&rc, a.backbone.as_deref())?;
            let mut ctx = common::feature_context(
                files,
                Some(rc.backbone.max_tokens),
                threads,
                a.cache_dir.clone(),
                !g.quiet && !g.json,
            )?;
            (
                evaluate_run(&rc, &model, &split, &mut ctx)?,
                Some(rc.backbone.max_tokens),
            )
        }
        ModelPath::Merged(_) => {
            let mut predictor = source.open(None, &SessionOptions::with_threads(threads))?;
            (evaluate_predictor(predictor.as_mut(), &split)?, None)
        }
    };
    if let Some(dir) = &a.plots {
        let p = write_eval_plots(dir, &ev.report, &split.name)?;
        if !g.quiet && !g.json {
            eprintln!(
                "{} picture files written to {}",
                p.files.len(),
                dir.display()
            );
        }
    }
    let unknown = unknown_labels(&split, &model_tasks);
    if !g.json {
        for w in &unknown {
            eprintln!("warning: {w}");
        }
    }
    if g.json {
        return common::print_json(&eval_json(&ev, &unknown)?);
    }
    println!(
        "{} ({} examples, {source})",
        split.source.display(),
        split.examples.len(),
    );
    if ev.truncated > 0 {
        println!(
            "note: {} examples were truncated{}; their cut words count as tagged O",
            ev.truncated,
            max_tokens.map_or(String::new(), |t| format!(" at {t} tokens"))
        );
    }
    print!("{}", render_table(&ev.report));
    Ok(())
}

/// The picture files `write_eval_plots` writes for the tasks the split and model share.
fn plot_names(split: &Split, model_tasks: &[edgetune::data::TaskInfo]) -> Vec<String> {
    let data: Vec<String> = split.tasks().into_iter().map(|t| t.name).collect();
    model_tasks
        .iter()
        .filter(|t| data.contains(&t.name))
        .flat_map(|t| {
            let kind = if t.kind == TaskKind::Sentence {
                "confusion"
            } else {
                "f1"
            };
            ["svg", "png", "json"].map(|ext| format!("{}_{kind}_{}.{ext}", t.name, split.name))
        })
        .collect()
}

/// One line per label of the split that the model does not know, per task (its examples count as
/// wrong).
fn unknown_labels(split: &Split, model_tasks: &[edgetune::data::TaskInfo]) -> Vec<String> {
    let mut out = Vec::new();
    for t in model_tasks {
        for (label, n) in split.label_counts(&t.name) {
            if !t.labels.contains(&label) {
                out.push(format!(
                    "task `{}`: label `{label}` ({n} {}) is not one the model knows; it counts as wrong",
                    t.name,
                    if t.kind.is_token() { "words" } else { "examples" }
                ));
            }
        }
    }
    out
}

/// `eval --json`: the metrics' keys, with `truncated_examples`, `unseen_intents`,
/// `unseen_slot_types` and `unknown_labels` when there are any.
fn eval_json(ev: &RunEval, unknown: &[String]) -> anyhow::Result<serde_json::Value> {
    let report = &ev.report;
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
    if !unknown.is_empty() {
        v["unknown_labels"] = serde_json::to_value(unknown)?;
    }
    Ok(v)
}

/// The split `--split` of the run's own data (`valid` when it has no such split), read as
/// `train` read it.
fn own_split(a: &Args, dir: &std::path::Path) -> anyhow::Result<Split> {
    use anyhow::Context;
    use edgetune::run::snapshot::{data_folder, DataSource};
    let rc = edgetune::run::read_config(dir)?;
    let root = edgetune::run::versions::root_of(dir);
    let folder = data_folder(&root);
    let source = DataSource::read(&folder)?.with_context(|| {
        format!(
            "{} does not keep its training data (trained before runs did); pass --data PATH",
            root.display()
        )
    })?;
    anyhow::ensure!(
        a.format.is_none() && a.columns.is_none() && a.text_column.is_none(),
        "--format, --columns and --text-column apply to --data; the run's own data is read as it was at training"
    );
    let dataset = source.load(&folder, rc.training.settings.seed)?;
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
