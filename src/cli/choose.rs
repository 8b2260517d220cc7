//! `edgetune choose`: compare backbones (and unfrozen layers) on this device and recommend one.

use std::path::PathBuf;

use anyhow::{bail, Context};

use edgetune::backbone::{ModelFiles, SessionOptions};
use edgetune::choose::{
    choose, measure_answers, measure_extraction, parse_backbones, ChooseOptions, Limits,
};

use super::common;
use super::common::Global;

/// Flags of `edgetune choose`.
///
/// Each candidate (every backbone of --backbones, with every count of --unfreeze-top) is trained on
/// the same data, exported as a merged model and measured on this device, each step in its own
/// `edgetune` process: validation scores per task, batch-1 p50/p99 latency, cold start, peak RSS
/// while answering and while training, model bytes, extraction throughput. The table, choose.json
/// and a Pareto picture (score vs latency, bubble = memory) go into --out; the recommendation is
/// the best validation score within the limits (docs/choosing.md).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Dataset directory (any format `train` reads).
    #[arg(long, value_name = "DIR", required_unless_present_any = ["measure_model", "measure_backbone"])]
    pub data: Option<PathBuf>,
    /// The backbones to compare, comma-separated: model folders or .onnx files, each optionally
    /// named `NAME=PATH`.
    #[arg(long, value_name = "A,B,...", value_delimiter = ',', required_unless_present_any = ["measure_model", "measure_backbone"])]
    pub backbones: Vec<String>,
    /// Also compare unfrozen top layers: a list of counts, `0` being the frozen backbone (default
    /// `0`). Counts above 0 need each backbone's fp32 checkpoint (its manifest's, or --hf-weights).
    #[arg(long, value_name = "N,...", value_delimiter = ',')]
    pub unfreeze_top: Vec<usize>,
    /// The fp32 checkpoints for --unfreeze-top, one per backbone in order (default: the checkpoint
    /// each backbone was imported from).
    #[arg(long, value_name = "DIR,...", value_delimiter = ',')]
    pub hf_weights: Vec<PathBuf>,
    /// Rule out candidates whose batch-1 p50 latency is above MS milliseconds.
    #[arg(long, value_name = "MS")]
    pub max_latency: Option<f64>,
    /// Rule out candidates whose peak RSS (answering or training) is above SIZE (e.g. 512M, 1G).
    #[arg(long, value_name = "SIZE", value_parser = common::parse_size)]
    pub max_memory: Option<usize>,
    /// Rule out candidates whose merged model is larger than SIZE.
    #[arg(long, value_name = "SIZE", value_parser = common::parse_size)]
    pub max_size: Option<usize>,
    /// Train on the first N training examples (and N/3, at least 20, of valid and test); 0 = all.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Output folder: runs/ (one run and merged model per candidate), data/, choose.json,
    /// choose.txt, pareto.svg/.png/.json.
    #[arg(long, value_name = "DIR", default_value = "runs/choose")]
    pub out: PathBuf,
    /// Replace an earlier comparison in --out.
    #[arg(long)]
    pub force: bool,
    /// Batch-1 answers timed per candidate.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub predictions: usize,
    /// Training epochs for every candidate (default: training's own).
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,
    /// Training seed (the same for every candidate).
    #[arg(long, default_value_t = edgetune::train::TrainSettings::default().seed)]
    pub seed: u64,
    /// Feature cache directory (default: $EDGETUNE_CACHE, else ~/.cache/edgetune).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// (internal) Measure batch-1 answers of this merged model and print them as JSON.
    #[arg(long, value_name = "MERGED.onnx", hide = true)]
    pub measure_model: Option<PathBuf>,
    /// (internal) Measure extraction throughput of this backbone and print it as JSON.
    #[arg(
        long,
        value_name = "PATH",
        hide = true,
        conflicts_with = "measure_model"
    )]
    pub measure_backbone: Option<PathBuf>,
    /// (internal) Sentences of the measurements, one per line.
    #[arg(long, value_name = "FILE", hide = true)]
    pub sentences: Option<PathBuf>,
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<()> {
    let threads = common::setup_threads(g)?;
    if a.measure_model.is_some() || a.measure_backbone.is_some() {
        return measure(g, &a, threads);
    }
    if a.predictions == 0 {
        bail!("--predictions must be at least 1");
    }
    if a.max_latency.is_some_and(|v| !(v > 0.0 && v.is_finite())) {
        bail!("--max-latency must be a positive number of milliseconds");
    }
    if a.epochs == Some(0) {
        bail!("--epochs must be at least 1");
    }
    let candidates = parse_backbones(&a.backbones, &a.unfreeze_top, &a.hf_weights)?;
    let mut global_args = Vec::new();
    if let Some(t) = g.threads {
        global_args.extend(["--threads".to_string(), t.to_string()]);
    }
    if let Some(p) = &g.ort_lib {
        global_args.extend(["--ort-lib".to_string(), p.display().to_string()]);
    }
    let opts = ChooseOptions {
        exe: std::env::current_exe().context("cannot find the edgetune executable")?,
        global_args,
        data: a.data.clone().context("--data DIR is required")?,
        candidates,
        out: a.out.clone(),
        force: a.force,
        limit: a.limit.filter(|&n| n > 0),
        limits: Limits {
            max_latency_ms: a.max_latency,
            max_memory_bytes: a.max_memory.map(|v| v as u64),
            max_size_bytes: a.max_size.map(|v| v as u64),
        },
        predictions: a.predictions,
        epochs: a.epochs,
        seed: a.seed,
        cache_dir: a.cache_dir.clone(),
        threads,
        progress: !g.quiet,
    };
    let choice = choose(&opts)?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&choice)?);
    } else {
        print!("{}", edgetune::choose::summary::table(&choice));
        println!(
            "files: {} (table), {} (JSON), {} (picture)",
            a.out.join(edgetune::choose::job::CHOICE_TXT).display(),
            a.out.join(edgetune::choose::job::CHOICE_JSON).display(),
            a.out
                .join(format!("{}.svg", edgetune::choose::job::PARETO_STEM))
                .display()
        );
    }
    Ok(())
}

/// The measuring child: one JSON line on stdout (after a `ready` line for the answering one).
fn measure(g: &Global, a: &Args, threads: usize) -> anyhow::Result<()> {
    use std::io::Write as _;
    common::init_runtime(g)?;
    let file = a
        .sentences
        .as_ref()
        .context("--sentences FILE is required")?;
    let sentences: Vec<String> = std::fs::read_to_string(file)
        .with_context(|| file.display().to_string())?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let opts = SessionOptions::with_threads(threads);
    let line = if let Some(m) = &a.measure_model {
        let mut ready = || {
            println!("ready");
            let _ = std::io::stdout().flush();
        };
        serde_json::to_string(&measure_answers(
            m,
            &sentences,
            a.predictions,
            &opts,
            &mut ready,
        )?)?
    } else {
        let b = a.measure_backbone.as_ref().context("nothing to measure")?;
        let files = ModelFiles::resolve(b)?;
        serde_json::to_string(&measure_extraction(&files, &sentences, &opts)?)?
    };
    println!("{line}");
    Ok(())
}
