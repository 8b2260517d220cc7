//! The measuring children's own work (`edgetune choose --measure-model` / `--measure-backbone`):
//! a fresh process answers batch-1 requests with a merged model, or extracts features with a
//! backbone, and reports its figures as one JSON line. The parent times the child's start-up.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::error::ChooseError;
use crate::backbone::{Backbone, ModelFiles, SessionOptions};
use crate::infer::percentile;
use crate::onnx::merged::MergedModel;
use crate::tokenize::{Tokenized, WordTokenizer};

/// Batch-1 answering figures of a merged model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AnswerFigures {
    /// Timed predictions.
    pub predictions: usize,
    /// Median latency (ms): tokenizing, running and decoding one sentence.
    pub p50_ms: f64,
    /// 99th percentile latency (ms).
    pub p99_ms: f64,
    /// From opening the model to the first answer, inside the process (ms).
    pub first_answer_ms: f64,
    /// Peak RSS of the answering process (bytes).
    pub peak_rss: u64,
}

/// Feature-extraction throughput of a backbone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ExtractionFigures {
    /// Sentences timed.
    pub sentences: usize,
    /// Sentences per second (batches of [`EXTRACTION_BATCH`], length-sorted).
    pub per_s: f64,
    /// Sentences per second of the process's CPU time (user + system, all threads): less
    /// sensitive than `per_s` to other processes sharing the cores.
    pub per_cpu_s: f64,
}

/// CPU time (user + system) this process has used, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: `rusage` is plain data the kernel fills for this process.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return f64::NAN;
    }
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// Batch size of the extraction measurement (the feature cache's).
pub const EXTRACTION_BATCH: usize = 32;

/// Opens the merged model, answers `sentences[0]`, calls `ready` (the parent's cold-start mark),
/// then times `n` batch-1 answers cycling through `sentences`.
pub fn measure_answers(
    model: &Path,
    sentences: &[String],
    n: usize,
    opts: &SessionOptions,
    ready: &mut dyn FnMut(),
) -> Result<AnswerFigures, ChooseError> {
    let err = |e: &dyn std::fmt::Display| ChooseError::Measure(format!("{}: {e}", model.display()));
    if sentences.is_empty() {
        return Err(ChooseError::Measure("no sentences to answer".into()));
    }
    let t0 = Instant::now();
    let mut m = MergedModel::open(model, opts).map_err(|e| err(&e))?;
    let encode = |m: &MergedModel, s: &str| m.tokenizer.encode_text(s, &|| "choose".into());
    let first = encode(&m, &sentences[0]).map_err(|e| err(&e))?;
    m.decode(&[first], 1).map_err(|e| err(&e))?;
    let first_answer_ms = t0.elapsed().as_secs_f64() * 1e3;
    ready();
    let mut lat = Vec::with_capacity(n);
    for i in 0..n.max(1) {
        let s = &sentences[i % sentences.len()];
        let t = Instant::now();
        let x = encode(&m, s).map_err(|e| err(&e))?;
        if x.word_tokens.is_empty() {
            continue;
        }
        m.decode(&[x], 1).map_err(|e| err(&e))?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    lat.sort_by(f64::total_cmp);
    Ok(AnswerFigures {
        predictions: lat.len(),
        p50_ms: percentile(&lat, 0.5).unwrap_or(f64::NAN),
        p99_ms: percentile(&lat, 0.99).unwrap_or(f64::NAN),
        first_answer_ms,
        peak_rss: crate::sys::peak_rss().unwrap_or(0) as u64,
    })
}

/// Extracts the last hidden state of `sentences` with the backbone in length-sorted batches of
/// [`EXTRACTION_BATCH`] (one batch first, untimed) and returns the throughput.
pub fn measure_extraction(
    files: &ModelFiles,
    sentences: &[String],
    opts: &SessionOptions,
) -> Result<ExtractionFigures, ChooseError> {
    let err =
        |e: &dyn std::fmt::Display| ChooseError::Measure(format!("{}: {e}", files.onnx.display()));
    let tok = WordTokenizer::from_file(&files.tokenizer, None).map_err(|e| err(&e))?;
    let mut backbone = Backbone::load(files, &[], tok.pad_id(), opts)?;
    let mut toks: Vec<Tokenized> = sentences
        .iter()
        .map(|s| tok.encode_text(s, &|| "choose".into()))
        .collect::<Result<_, _>>()
        .map_err(|e| err(&e))?;
    toks.retain(|t| !t.word_tokens.is_empty());
    toks.sort_by_key(|t| t.ids.len());
    if toks.is_empty() {
        return Err(ChooseError::Measure("no sentences to extract".into()));
    }
    let warm: Vec<&Tokenized> = toks.iter().take(EXTRACTION_BATCH).collect();
    backbone.run(&warm)?;
    let (t0, c0) = (Instant::now(), cpu_seconds());
    for chunk in toks.chunks(EXTRACTION_BATCH) {
        let batch: Vec<&Tokenized> = chunk.iter().collect();
        backbone.run(&batch)?;
    }
    let n = toks.len() as f64;
    Ok(ExtractionFigures {
        sentences: toks.len(),
        per_s: n / t0.elapsed().as_secs_f64().max(1e-9),
        per_cpu_s: n / (cpu_seconds() - c0).max(1e-9),
    })
}
