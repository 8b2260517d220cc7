//! `edgetune bench`: the device's own figures for a merged model and the backbone.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use edgetune::backbone::{Backbone, ModelFiles};
use edgetune::onnx::export::{self, MergedInputs};
use edgetune::tokenize::{Tokenized, WordTokenizer};

use super::common;
use super::Global;

/// Flags of `edgetune bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The merged model to measure (`edgetune export`'s output, tokenizer.json beside it).
    #[arg(long = "model", value_name = "MERGED.onnx")]
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
    /// ONNX Runtime with spinning intra-op threads (off by default).
    #[arg(long)]
    pub spinning: bool,
    /// ONNX Runtime without weight prepacking.
    #[arg(long)]
    pub no_prepacking: bool,
}

/// Session settings from the flags.
fn session_settings(a: &Args, threads: usize) -> edgetune::backbone::SessionConfig {
    edgetune::backbone::SessionConfig {
        arena: !a.no_arena,
        memory_pattern: !a.no_memory_pattern,
        spinning: a.spinning,
        prepacking: !a.no_prepacking,
        ..common::session_config(threads)
    }
}

const SENTENCES: &[&str] = &[
    "turn on the lights in the kitchen",
    "set the thermostat in the living room to twenty one degrees",
    "play some jazz by miles davis",
    "what is the weather in lisbon tomorrow morning",
    "lock the front door",
    "dim the bedroom lamp to forty percent",
    "set a timer for ten minutes",
    "turn off the fan",
    "could you please switch off every light downstairs before i go to bed tonight",
    "is it going to rain in rio de janeiro this weekend",
];

/// The CPU model as the kernel reports it.
pub fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |k: &str| {
        info.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().to_string())
    };
    field("model name")
        .or_else(|| field("Model"))
        .or_else(|| field("CPU part").map(|p| format!("ARM CPU part {p}")))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// Peak resident set size of this process, in MiB (VmHWM).
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
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
        None => SENTENCES.iter().map(|s| s.to_string()).collect(),
    };
    anyhow::ensure!(!sentences.is_empty(), "no sentences to measure");

    // Cold start: library, model, tokenizer, session, first prediction.
    common::init_runtime(g)?;
    let bytes = std::fs::read(&a.model).with_context(|| a.model.display().to_string())?;
    let model = edgetune::onnx::decode_model(&bytes)
        .with_context(|| format!("{}: not a valid ONNX model", a.model.display()))?;
    let meta = super::merged::read_meta(&model, &a.model)?;
    drop(model);
    let dir = a
        .model
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let tokenizer = WordTokenizer::from_file(&dir.join("tokenizer.json"), Some(meta.max_tokens))?;
    let mut session =
        edgetune::backbone::open_session(&bytes, &a.model, &session_settings(&a, threads))?;
    drop(bytes);
    let pad = tokenizer.pad_id();
    let t = super::infer::encode_line(&tokenizer, &sentences[0])?;
    let o = export::run_merged(&mut session, &MergedInputs::new(&[&t], pad))?;
    let _ = super::merged::decode(&o, &[&t]);
    let cold = start.elapsed().as_secs_f64() * 1e3;

    // Batch-1 latency: tokenize + run + decode, per sentence.
    let mut lat = Vec::with_capacity(a.n);
    for i in 0..a.n.max(1) {
        let s = &sentences[i % sentences.len()];
        let t0 = Instant::now();
        let t = super::infer::encode_line(&tokenizer, s)?;
        if t.word_tokens.is_empty() {
            continue;
        }
        let o = export::run_merged(&mut session, &MergedInputs::new(&[&t], pad))?;
        let _ = super::merged::decode(&o, &[&t]);
        lat.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    lat.sort_by(f64::total_cmp);
    drop(session);

    // Extraction throughput of the backbone: batches of 32, length-sorted.
    let files = ModelFiles::from_arg(a.backbone.as_deref())?;
    let btok = WordTokenizer::from_file(&files.tokenizer, None)?;
    let mut backbone = Backbone::load(&files, &[], btok.pad_id(), &session_settings(&a, threads))?;
    let mut toks: Vec<Tokenized> = (0..256)
        .map(|i| super::infer::encode_line(&btok, &sentences[i % sentences.len()]))
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
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    println!(
        "extraction ({}): {per_sec:.0} sentences/s (batch 32, length-sorted)",
        files.onnx.display()
    );
    println!("peak RSS: {:.0} MiB", peak_rss_mib());
    Ok(())
}
