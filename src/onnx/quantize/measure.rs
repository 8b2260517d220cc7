//! Measuring a quantized encoder: ONNX Runtime's fusions, fidelity to fp32, throughput, and which
//! MatMuls are most sensitive.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::options::QuantizeOptions;
use super::scratch::temp_dir;
use super::rewrite::{node_label, quantize_model, weight_matmuls};
use crate::backbone::raw::{self as runtime, EncoderBatch};
use crate::backbone::SessionOptions;
use crate::graph::{load_model, save_model, OnnxError};

/// Counts the operator types of the graph ONNX Runtime actually runs after its optimizations
/// (e.g. to check that `DynamicQuantizeMatMul` was fused). Writes the optimized model to a temp file.
pub fn fused_op_counts(path: &Path) -> Result<BTreeMap<String, usize>, OnnxError> {
    let dir = temp_dir()?;
    let opt = dir.path().join("optimized.onnx");
    let opts = SessionOptions {
        optimized_model_path: Some(opt.clone()),
        ..SessionOptions::tooling(Some(1))
    };
    let s = runtime::open_file(path, &opts)?;
    drop(s);
    let m = load_model(&opt)?;
    drop(dir);
    let mut counts = BTreeMap::new();
    for n in &m.graph.unwrap_or_default().node {
        *counts
            .entry(n.op_type.clone().unwrap_or_default())
            .or_insert(0) += 1;
    }
    Ok(counts)
}

/// Fidelity of a quantized encoder vs fp32: cosine of mean-pooled embeddings per sentence.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Fidelity {
    /// Sentences compared.
    pub sentences: usize,
    /// Mean cosine.
    pub mean_cosine: f32,
    /// Minimum cosine.
    pub min_cosine: f32,
}

/// Token counts of `texts` (special tokens included), ignoring any fixed-length padding the
/// tokenizer.json asks for (MiniLM's pads everything to 128, which would make every length equal).
pub fn token_lengths(tokenizer: &tokenizers::Tokenizer, texts: &[&str]) -> Vec<usize> {
    let mut tk = tokenizer.clone();
    tk.with_padding(None);
    texts
        .iter()
        .map(|t| tk.encode(*t, true).map(|e| e.get_ids().len()).unwrap_or(0))
        .collect()
}

/// Pooled embeddings of `texts` from an encoder session, batched (`batch_size`, length-sorted).
pub fn pooled_embeddings(
    session: &mut ort::session::Session,
    tokenizer: &tokenizers::Tokenizer,
    texts: &[&str],
    batch_size: usize,
    max_len: usize,
) -> Result<Vec<Vec<f32>>, OnnxError> {
    let mut order: Vec<usize> = (0..texts.len()).collect();
    let lens = token_lengths(tokenizer, texts);
    order.sort_by_key(|&i| lens[i]);
    let mut out = vec![Vec::new(); texts.len()];
    for chunk in order.chunks(batch_size.max(1)) {
        let t: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
        let b = EncoderBatch::tokenize(tokenizer, &t, max_len)?;
        let o = runtime::run_encoder(session, &b, &["last_hidden_state"])?;
        let dim = o[0].shape.last().copied().unwrap_or(0);
        let pooled = runtime::mean_pool(&o[0].data, &b.attention_mask, b.batch, b.seq, dim);
        for (&i, p) in chunk.iter().zip(pooled) {
            out[i] = p;
        }
    }
    Ok(out)
}

/// Compares two encoder files on `texts`.
pub fn fidelity(
    fp32: &Path,
    int8: &Path,
    tokenizer: &tokenizers::Tokenizer,
    texts: &[&str],
    threads: Option<usize>,
) -> Result<Fidelity, OnnxError> {
    let opts = SessionOptions::tooling(threads);
    let mut a = runtime::open_file(fp32, &opts)?;
    let mut b = runtime::open_file(int8, &opts)?;
    let ea = pooled_embeddings(&mut a, tokenizer, texts, 32, 128)?;
    let eb = pooled_embeddings(&mut b, tokenizer, texts, 32, 128)?;
    Ok(fidelity_of(&ea, &eb))
}

/// Mean/min cosine of paired embeddings.
pub fn fidelity_of(a: &[Vec<f32>], b: &[Vec<f32>]) -> Fidelity {
    let cos: Vec<f32> = a
        .iter()
        .zip(b)
        .map(|(x, y)| runtime::cosine(x, y))
        .collect();
    let n = cos.len().max(1) as f32;
    Fidelity {
        sentences: cos.len(),
        mean_cosine: cos.iter().sum::<f32>() / n,
        min_cosine: cos.iter().copied().fold(f32::INFINITY, f32::min),
    }
}

/// Sentences per second of encoder files on `texts` (batches of `batch_size`, length-sorted,
/// `threads` intra-op threads). The models are timed in alternation, pass after pass, and each
/// figure is the best of `repeats` passes after a warm-up, so background load affects them alike.
pub fn throughput(
    paths: &[&Path],
    tokenizer: &tokenizers::Tokenizer,
    texts: &[&str],
    batch_size: usize,
    threads: usize,
    repeats: usize,
) -> Result<Vec<f64>, OnnxError> {
    let opts = SessionOptions::tooling(Some(threads));
    let mut sessions = paths
        .iter()
        .map(|p| runtime::open_file(p, &opts))
        .collect::<Result<Vec<_>, _>>()?;
    let lens = token_lengths(tokenizer, texts);
    let mut idx: Vec<usize> = (0..texts.len()).collect();
    idx.sort_by_key(|&i| lens[i]);
    let order: Vec<&str> = idx.iter().map(|&i| texts[i]).collect();
    let batches: Vec<EncoderBatch> = order
        .chunks(batch_size.max(1))
        .map(|c| EncoderBatch::tokenize(tokenizer, c, 128))
        .collect::<Result<_, _>>()?;
    let mut best = vec![f64::INFINITY; sessions.len()];
    for rep in 0..=repeats.max(1) {
        for (s, b) in sessions.iter_mut().zip(best.iter_mut()) {
            let t0 = Instant::now();
            for batch in &batches {
                runtime::run_encoder(s, batch, &["last_hidden_state"])?;
            }
            if rep > 0 {
                *b = b.min(t0.elapsed().as_secs_f64());
            }
        }
    }
    Ok(best.into_iter().map(|t| texts.len() as f64 / t).collect())
}

/// One row of [`sensitivity`]: fidelity when only `node` is kept fp32.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sensitivity {
    /// The weight MatMul kept fp32 (node name).
    pub node: String,
    /// Fidelity of the model with every other weight MatMul quantized.
    pub fidelity: Fidelity,
}

/// Measures, for each weight MatMul, the fidelity reached when only that MatMul stays fp32 (all
/// others quantized with `base`). Sorted best first: the head of the list are the MatMuls most
/// worth keeping fp32 (`--keep-fp32`).
pub fn sensitivity(
    fp32_path: &Path,
    tokenizer: &tokenizers::Tokenizer,
    texts: &[&str],
    base: &QuantizeOptions,
    threads: Option<usize>,
) -> Result<(Fidelity, Vec<Sensitivity>), OnnxError> {
    let model = load_model(fp32_path)?;
    let opts = SessionOptions::tooling(threads);
    let mut s = runtime::open_file(fp32_path, &opts)?;
    let reference = pooled_embeddings(&mut s, tokenizer, texts, 32, 128)?;
    drop(s);
    let dir = temp_dir()?;
    let tmp = dir.path().join("candidate.onnx");
    let eval = |keep: Vec<String>| -> Result<Fidelity, OnnxError> {
        let mut m = model.clone();
        let mut o = base.clone();
        o.keep_fp32.extend(keep);
        quantize_model(&mut m, &o)?;
        save_model(&tmp, &m)?;
        let mut s = runtime::open_file(&tmp, &opts)?;
        let e = pooled_embeddings(&mut s, tokenizer, texts, 32, 128)?;
        Ok(fidelity_of(&reference, &e))
    };
    let all = eval(Vec::new())?;
    let g = model
        .graph
        .as_ref()
        .ok_or_else(|| OnnxError::graph("model has no graph"))?;
    let mut rows = Vec::new();
    for (ni, _) in weight_matmuls(&model) {
        let label = node_label(&g.node[ni]);
        // Anchor the pattern on the exact node name.
        let f = eval(vec![label.clone()])?;
        rows.push(Sensitivity {
            node: label,
            fidelity: f,
        });
    }
    drop(dir);
    rows.sort_by(|a, b| b.fidelity.mean_cosine.total_cmp(&a.fidelity.mean_cosine));
    Ok((all, rows))
}
