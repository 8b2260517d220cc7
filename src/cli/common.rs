//! Pieces shared by several subcommands: threads, the ONNX Runtime library, the feature context.

use std::path::PathBuf;

use anyhow::bail;

use edgetune::backbone::{default_threads, ModelFiles, SessionOptions};
use edgetune::features::{default_cache_dir, FeatureContext};
use edgetune::ModelPath;

/// Global flags shared by every subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Path to ONNX Runtime's shared library (default: $EDGETUNE_ORT_LIB, then the set-up location).
    #[arg(long, global = true, value_name = "PATH")]
    pub ort_lib: Option<std::path::PathBuf>,
    /// Threads for ONNX Runtime's intra-op pool, candle/rayon and the tokenizer together
    /// (default and maximum: all cores).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
}

/// What answers: a finished run or a merged model (`infer`, `serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// A finished run directory (with `serve`: it also learns from corrections; its `serve/`
    /// folder holds the journal and the swapped models).
    #[arg(long, value_name = "RUN", required_unless_present = "model")]
    pub run: Option<PathBuf>,
    /// A merged model exported by `edgetune export` (with tokenizer.json beside it) instead of a run.
    #[arg(long, value_name = "MERGED.onnx", conflicts_with = "run")]
    pub model: Option<PathBuf>,
    /// Backbone override for --run (must be the one the run was trained on).
    #[arg(long, value_name = "PATH", requires = "run")]
    pub backbone: Option<PathBuf>,
}

impl ModelArgs {
    /// The model `--run` or `--model` names.
    pub fn model_path(&self) -> anyhow::Result<ModelPath> {
        model_path(self.run.as_ref(), self.model.as_ref())
    }
}

/// The model of a `--run` / `--model` pair of flags (one of them given).
pub fn model_path(run: Option<&PathBuf>, model: Option<&PathBuf>) -> anyhow::Result<ModelPath> {
    match (run, model) {
        (Some(r), _) => Ok(ModelPath::Run(r.clone())),
        (None, Some(m)) => Ok(ModelPath::Merged(m.clone())),
        (None, None) => bail!("--run RUN or --model MERGED.onnx is required"),
    }
}

/// Applies `--threads` to every pool (ONNX Runtime's is set per session): rayon (tokenizer, candle)
/// and candle's matmul, so that nothing oversubscribes the cores. More threads than cores are
/// capped at the cores (with a note). Returns the thread count.
pub fn setup_threads(g: &Global) -> anyhow::Result<usize> {
    let cores = default_threads();
    let n = match g.threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(n) if n > cores => {
            eprintln!(
                "note: --threads {n} is more than this machine's {cores} cores; using {cores}"
            );
            cores
        }
        Some(n) => n,
        None => cores,
    };
    // candle sizes its matmul parallelism from RAYON_NUM_THREADS; set before any tensor work.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
    Ok(n)
}

/// Loads the library named by `--ort-lib` now; otherwise ONNX Runtime is loaded (from
/// `$EDGETUNE_ORT_LIB` or beside the executable or set-up's folder) only when a session is first
/// opened, so a command that needs none (training on cached features) runs without it.
pub fn init_runtime(g: &Global) -> anyhow::Result<()> {
    if let Some(p) = &g.ort_lib {
        edgetune::backbone::init_runtime(Some(p))?;
    }
    Ok(())
}

/// A feature context for a backbone.
pub fn feature_context(
    files: ModelFiles,
    max_tokens: Option<usize>,
    threads: usize,
    cache_dir: Option<PathBuf>,
    progress: bool,
) -> anyhow::Result<FeatureContext> {
    let mut ctx = FeatureContext::new(
        files,
        max_tokens,
        SessionOptions::with_threads(threads),
        cache_dir.unwrap_or_else(default_cache_dir),
    )?;
    ctx.progress = progress;
    Ok(ctx)
}

/// Refuses an output folder `dir` (named by `flag`) that already holds files, unless `force`; a
/// file where the folder should be is refused always.
pub fn check_output_dir(dir: &std::path::Path, force: bool, flag: &str) -> anyhow::Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!("{flag} {}: is a file, not a folder", dir.display());
    }
    let used = std::fs::read_dir(dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if used && !force {
        bail!(
            "{flag} {}: the folder already holds files; pass --force to write into it (files of the same name are replaced)",
            dir.display()
        );
    }
    Ok(())
}

/// Parses `512M`, `1G`, `800MiB`, `1.5GB` or plain bytes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 512M, 1G)"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        u => return Err(format!("unknown size unit `{u}` in `{s}` (use K, M or G)")),
    };
    if !(v > 0.0 && v.is_finite()) {
        return Err(format!("`{s}`: the size must be positive"));
    }
    Ok((v * mult) as usize)
}
