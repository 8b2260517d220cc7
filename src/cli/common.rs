//! Pieces shared by several subcommands: threads, the backbone of a run, label sets.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use edgetune::backbone::{ModelFiles, SessionConfig};
use edgetune::features::{default_cache_dir, FeatureContext};
use edgetune::run::RunConfig;

use super::Global;

/// Applies `--threads` to every pool (ONNX Runtime's is set per session): rayon (tokenizer, candle)
/// and candle's matmul, so that nothing oversubscribes the cores. Returns the thread count.
pub fn setup_threads(g: &Global) -> anyhow::Result<usize> {
    let n = match g.threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(n) => n,
        None => edgetune::backbone::default_threads(),
    };
    // candle sizes its matmul parallelism from RAYON_NUM_THREADS; set before any tensor work.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
    Ok(n)
}

/// Loads ONNX Runtime (from `--ort-lib`, the environment, or set-up's location).
pub fn init_runtime(g: &Global) -> anyhow::Result<PathBuf> {
    Ok(edgetune::backbone::init_runtime(g.ort_lib.as_deref())?)
}

/// Session settings from the global flags.
pub fn session_config(threads: usize) -> SessionConfig {
    SessionConfig {
        threads,
        ..SessionConfig::default()
    }
}

/// The backbone a run was trained on: `--model` if given, else the recorded path, else the default
/// model; whichever is used must have the recorded hashes.
pub fn run_model(rc: &RunConfig, model: Option<&Path>) -> anyhow::Result<ModelFiles> {
    let files = match model {
        Some(p) => ModelFiles::resolve(p)?,
        None if rc.backbone.onnx.is_file() && rc.backbone.tokenizer.is_file() => ModelFiles {
            onnx: rc.backbone.onnx.clone(),
            tokenizer: rc.backbone.tokenizer.clone(),
        },
        None => ModelFiles::from_arg(None).with_context(|| {
            format!(
                "the run's backbone {} is not here; pass --model",
                rc.backbone.onnx.display()
            )
        })?,
    };
    let sha = edgetune::fsutil::sha256_file(&files.onnx)
        .with_context(|| files.onnx.display().to_string())?;
    if sha != rc.backbone.onnx_sha256 {
        bail!(
            "{} is not the backbone this run was trained on (sha256 {} vs recorded {}); pass --model with the right one",
            files.onnx.display(),
            &sha[..12],
            &rc.backbone.onnx_sha256[..12.min(rc.backbone.onnx_sha256.len())]
        );
    }
    let tsha = edgetune::fsutil::sha256_file(&files.tokenizer)
        .with_context(|| files.tokenizer.display().to_string())?;
    if tsha != rc.backbone.tokenizer_sha256 {
        bail!(
            "{} is not the tokenizer this run was trained with (sha256 differs)",
            files.tokenizer.display()
        );
    }
    Ok(files)
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
        session_config(threads),
        cache_dir.unwrap_or_else(default_cache_dir),
    )?;
    ctx.progress = progress;
    Ok(ctx)
}
