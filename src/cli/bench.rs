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
    /// Also measure this backbone's extraction throughput (a training device's figure; the
    /// merged model alone needs no backbone).
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
    /// When ONNX Runtime's intra-op threads spin while waiting for work: `true` (the default;
    /// also the flag alone), `in-run` (within a prediction only, as `serve` does) or `false`.
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

/// What `bench` measured (`--json` prints it as one object).
#[derive(serde::Serialize)]
struct Figures {
    cpu: String,
    arch: &'static str,
    threads: usize,
    model: PathBuf,
    cold_start_ms: f64,
    predictions: usize,
    p50_ms: f64,
    p99_ms: f64,
    /// Only with --backbone.
    #[serde(skip_serializing_if = "Option::is_none")]
    extraction: Option<Extraction>,
    peak_rss_bytes: u64,
}

/// The backbone's extraction throughput.
#[derive(serde::Serialize)]
struct Extraction {
    backbone: PathBuf,
    sentences_per_second: f64,
    batch: usize,
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<()> {
    let start = Instant::now();
    common::check_model(&a.model, &["--model", "--backbone"])?;
    if let Some(b) = &a.backbone {
        common::check_backbone(b, &["--model", "--backbone"])?;
    }
    let threads = common::setup_threads(g)?;
    let sentences = read_sentences(&a)?;
    common::init_runtime(g)?;
    let (cold, lat) = answers(&a, threads, &sentences, start)?;
    let extraction = match &a.backbone {
        Some(b) => Some(extraction(&a, b, threads, &sentences)?),
        None => None,
    };
    let f = Figures {
        cpu: cpu_model(),
        arch: std::env::consts::ARCH,
        threads,
        model: a.model.clone(),
        cold_start_ms: cold,
        predictions: lat.len(),
        p50_ms: percentile(&lat, 0.5).unwrap_or(0.0),
        p99_ms: percentile(&lat, 0.99).unwrap_or(0.0),
        extraction,
        peak_rss_bytes: peak_rss().unwrap_or(0) as u64,
    };
    if g.json {
        return common::print_json(&f);
    }
    print_figures(&f);
    Ok(())
}

/// The sentences to time: --input's non-empty lines, else the built-in ones.
fn read_sentences(a: &Args) -> anyhow::Result<Vec<String>> {
    let sentences: Vec<String> = match &a.input {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("--input {}", p.display()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        None => BENCH_SENTENCES.iter().map(|s| s.to_string()).collect(),
    };
    anyhow::ensure!(!sentences.is_empty(), "--input: no sentences to measure");
    Ok(sentences)
}

/// Cold start (library, model, tokenizer, session, first prediction; in ms since `start`) and
/// the sorted batch-1 latencies (tokenize + run + decode, per sentence) of the merged model.
fn answers(
    a: &Args,
    threads: usize,
    sentences: &[String],
    start: Instant,
) -> anyhow::Result<(f64, Vec<f64>)> {
    let mut model = MergedModel::open(&a.model, &session_settings(a, threads))?;
    let encode = |m: &MergedModel, s: &str| m.tokenizer.encode_text(s, &|| "bench".into());
    let t = encode(&model, &sentences[0])?;
    model.decode(&[t], 1)?;
    let cold = start.elapsed().as_secs_f64() * 1e3;
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
    Ok((cold, lat))
}

/// Extraction throughput of the backbone: 256 sentences in batches of 32, length-sorted.
fn extraction(
    a: &Args,
    backbone: &std::path::Path,
    threads: usize,
    sentences: &[String],
) -> anyhow::Result<Extraction> {
    const BATCH: usize = 32;
    let files = ModelFiles::from_arg(Some(backbone))?;
    let btok = WordTokenizer::from_file(&files.tokenizer, None)?;
    let mut backbone = Backbone::load(&files, &[], btok.pad_id(), &session_settings(a, threads))?;
    let mut toks: Vec<Tokenized> = (0..256)
        .map(|i| btok.encode_text(&sentences[i % sentences.len()], &|| "bench".into()))
        .collect::<Result<_, _>>()?;
    toks.sort_by_key(|t| t.ids.len());
    let t0 = Instant::now();
    for chunk in toks.chunks(BATCH) {
        let batch: Vec<&Tokenized> = chunk.iter().collect();
        backbone.run(&batch)?;
    }
    Ok(Extraction {
        backbone: files.onnx.clone(),
        sentences_per_second: toks.len() as f64 / t0.elapsed().as_secs_f64(),
        batch: BATCH,
    })
}

/// The figures as text.
fn print_figures(f: &Figures) {
    println!("cpu: {} ({} threads, {})", f.cpu, f.threads, f.arch);
    println!("model: {}", f.model.display());
    println!("cold start to first prediction: {:.0} ms", f.cold_start_ms);
    println!(
        "batch-1 latency over {} predictions: p50 {:.2} ms, p99 {:.2} ms",
        f.predictions, f.p50_ms, f.p99_ms
    );
    if let Some(e) = &f.extraction {
        println!(
            "extraction ({}): {:.0} sentences/s (batch {}, length-sorted)",
            e.backbone.display(),
            e.sentences_per_second,
            e.batch
        );
    }
    println!(
        "peak RSS: {:.0} MiB",
        f.peak_rss_bytes as f64 / (1u64 << 20) as f64
    );
}
