//! `edgetune bench`: the device's own figures for a merged model and the backbone.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use edgetune::backbone::{Backbone, ModelFiles, SessionOptions, Spinning};
use edgetune::infer::{percentile, BENCH_SENTENCES};
use edgetune::onnx::merged::MergedModel;
use edgetune::sys::{cpu_model, peak_rss};
use edgetune::tokenize::{Tokenized, WordTokenizer};

use super::common;
use super::common::Global;

/// Flags of `edgetune bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The merged model to measure (`edgetune export`'s output, tokenizer.json beside it).
    #[arg(long, value_name = "MERGED.onnx")]
    pub model: PathBuf,
    /// Backbone for the extraction figure (default: $EDGETUNE_MODEL, then .models/default).
    #[arg(long, value_name = "PATH")]
    pub backbone: Option<PathBuf>,
    /// Sentences, one per line (default: built-in smart-home commands).
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Batch-1 predictions to time.
    #[arg(long, default_value_t = 200)]
    pub n: usize,
    /// ONNX Runtime without its CPU arena allocator.
    #[arg(long)]
    pub no_arena: bool,
    /// ONNX Runtime without memory-pattern planning.
    #[arg(long)]
    pub no_memory_pattern: bool,
    /// ONNX Runtime's intra-op threads spin while waiting for work: `true` (also the flag
    /// alone), `in-run` (within a prediction only, as `serve` does) or `false`.
    #[arg(long, value_name = "WHEN", num_args = 0..=1, default_value_t = Spinning::default(),
          default_missing_value = "true")]
    pub spinning: Spinning,
    /// ONNX Runtime without weight prepacking.
    #[arg(long)]
    pub no_prepacking: bool,
}

/// Session settings from the flags.
fn session_settings(a: &Args, threads: usize) -> SessionOptions {
    SessionOptions {
        arena: !a.no_arena,
        memory_pattern: !a.no_memory_pattern,
        spinning: a.spinning,
        prepacking: !a.no_prepacking,
        ..SessionOptions::with_threads(threads)
    }
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<()> {
    let start = Instant::now();
    let threads = common::setup_threads(g)?;
    let sentences: Vec<String> = match &a.input {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| p.display().to_string())?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        None => BENCH_SENTENCES.iter().map(|s| s.to_string()).collect(),
    };
    anyhow::ensure!(!sentences.is_empty(), "no sentences to measure");

    // Cold start: library, model, tokenizer, session, first prediction.
    common::init_runtime(g)?;
    let mut model = MergedModel::open(&a.model, &session_settings(&a, threads))?;
    let encode = |m: &MergedModel, s: &str| m.tokenizer.encode_text(s, &|| "bench".into());
    let t = encode(&model, &sentences[0])?;
    model.decode(&[t], 1)?;
    let cold = start.elapsed().as_secs_f64() * 1e3;

    // Batch-1 latency: tokenize + run + decode, per sentence.
    let mut lat = Vec::with_capacity(a.n);
    for i in 0..a.n.max(1) {
        let s = &sentences[i % sentences.len()];
        let t0 = Instant::now();
        let t = encode(&model, s)?;
        if t.word_tokens.is_empty() {
            continue;
        }
        model.decode(&[t], 1)?;
        lat.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    lat.sort_by(f64::total_cmp);
    drop(model);

    // Extraction throughput of the backbone: batches of 32, length-sorted.
    let files = ModelFiles::from_arg(a.backbone.as_deref())?;
    let btok = WordTokenizer::from_file(&files.tokenizer, None)?;
    let mut backbone = Backbone::load(&files, &[], btok.pad_id(), &session_settings(&a, threads))?;
    let mut toks: Vec<Tokenized> = (0..256)
        .map(|i| btok.encode_text(&sentences[i % sentences.len()], &|| "bench".into()))
        .collect::<Result<_, _>>()?;
    toks.sort_by_key(|t| t.ids.len());
    let t0 = Instant::now();
    for chunk in toks.chunks(32) {
        let batch: Vec<&Tokenized> = chunk.iter().collect();
        backbone.run(&batch)?;
    }
    let per_sec = toks.len() as f64 / t0.elapsed().as_secs_f64();

    println!(
        "cpu: {} ({} threads, {})",
        cpu_model(),
        threads,
        std::env::consts::ARCH
    );
    println!("model: {}", a.model.display());
    println!("cold start to first prediction: {cold:.0} ms");
    println!(
        "batch-1 latency over {} predictions: p50 {:.2} ms, p99 {:.2} ms",
        lat.len(),
        percentile(&lat, 0.5).unwrap_or(0.0),
        percentile(&lat, 0.99).unwrap_or(0.0)
    );
    println!(
        "extraction ({}): {per_sec:.0} sentences/s (batch 32, length-sorted)",
        files.onnx.display()
    );
    println!(
        "peak RSS: {:.0} MiB",
        peak_rss().unwrap_or(0) as f64 / (1u64 << 20) as f64
    );
    Ok(())
}
