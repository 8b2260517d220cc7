//! Dynamic int8 quantization of weight MatMuls with per-channel (per output column) symmetric weight
//! scales, in standard ONNX operators only:
//!
//! ```text
//! X -> DynamicQuantizeLinear -> (Xq u8, xs, xzp)
//! MatMulInteger(Xq, Wq int8 [K,N], xzp, wzp int8 [N] = 0) -> Cast(float) -> Mul(Mul(xs, ws[N]))
//! ```
//!
//! ONNX Runtime fuses this into `DynamicQuantizeMatMul` on load (checked by
//! [`fused_op_counts`]). With `reduce_range` the weights use 7 bits (|q| <= 63), which avoids the
//! int16 saturation of u8*s8 products on AVX2 CPUs without VNNI.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::graph::{self, attr_int, tensor, tensor_to_f32, GraphBuilder};
use super::import::{Manifest, BACKBONE_FILE, TOKENIZER_FILE};
use super::proto::{tensor_proto::DataType, ModelProto, NodeProto};
use super::runtime::{self, EncoderBatch, SessionOptions};
use super::{load_model, save_model, OnnxError};
use crate::fsutil;

/// File name of the quantized backbone in a model directory.
pub const INT8_FILE: &str = "backbone.int8.onnx";

/// Default fidelity threshold (mean pooled cosine) below which a warning is printed.
pub const DEFAULT_WARN_COSINE: f32 = 0.995;

/// Options of [`quantize_model`].
#[derive(Debug, Clone)]
pub struct QuantizeOptions {
    /// Use 7-bit weights (|q| <= 63) so u8*s8 pair sums cannot saturate on AVX2 without VNNI.
    pub reduce_range: bool,
    /// Per output column scales (true) or one scale per tensor (false).
    pub per_channel: bool,
    /// MatMuls kept in fp32: a node is kept when its name, its output or its weight name contains
    /// one of these substrings (`*` matches any run of characters).
    pub keep_fp32: Vec<String>,
}

impl Default for QuantizeOptions {
    fn default() -> Self {
        QuantizeOptions { reduce_range: true, per_channel: true, keep_fp32: Vec::new() }
    }
}

/// What [`quantize_model`] changed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QuantizeSummary {
    /// Weight MatMuls quantized (node names).
    pub quantized: Vec<String>,
    /// Weight MatMuls kept fp32 by request.
    pub kept_fp32: Vec<String>,
    /// `DynamicQuantizeLinear` nodes inserted (one per distinct activation).
    pub dynamic_quantize_nodes: usize,
}

/// Simple wildcard match: `*` = any run; otherwise substring match.
pub fn pattern_matches(pattern: &str, text: &str) -> bool {
    if !pattern.contains('*') {
        return text.contains(pattern);
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut pos = 0;
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            continue;
        }
        match text[pos..].find(part) {
            Some(at) => {
                if i == 0 && at != 0 {
                    return false;
                }
                pos += at + part.len();
            }
            None => return false,
        }
    }
    parts.last().is_none_or(|l| l.is_empty() || text.ends_with(l))
}

/// The weight MatMuls of a graph: `MatMul` nodes whose second input is a 2-D float initializer.
/// Returns (node index, weight initializer index).
pub fn weight_matmuls(model: &ModelProto) -> Vec<(usize, usize)> {
    let Some(g) = model.graph.as_ref() else { return Vec::new() };
    let inits: HashMap<&str, usize> =
        g.initializer.iter().enumerate().filter_map(|(i, t)| t.name.as_deref().map(|n| (n, i))).collect();
    g.node
        .iter()
        .enumerate()
        .filter(|(_, n)| n.op_type.as_deref() == Some("MatMul") && n.domain.as_deref().unwrap_or("").is_empty())
        .filter_map(|(i, n)| {
            let w = *inits.get(n.input.get(1)?.as_str())?;
            let t = &g.initializer[w];
            (t.dims.len() == 2 && t.data_type == Some(DataType::Float as i32)).then_some((i, w))
        })
        .collect()
}

fn node_label(n: &NodeProto) -> String {
    n.name.clone().or_else(|| n.output.first().cloned()).unwrap_or_default()
}

/// Symmetric int8 quantization of a `[k, n]` weight: per column (or per tensor) scale
/// `max|w| / qmax`. Returns (int8 values, scales).
pub fn quantize_weight(w: &[f32], k: usize, n: usize, per_channel: bool, qmax: i32) -> (Vec<i8>, Vec<f32>) {
    let mut amax = vec![0f32; n];
    for r in 0..k {
        for (c, a) in amax.iter_mut().enumerate() {
            *a = a.max(w[r * n + c].abs());
        }
    }
    if !per_channel {
        let m = amax.iter().copied().fold(0f32, f32::max);
        amax.iter_mut().for_each(|a| *a = m);
    }
    let scales: Vec<f32> = amax.iter().map(|&a| if a > 0.0 { a / qmax as f32 } else { 1.0 }).collect();
    let mut q = vec![0i8; k * n];
    for r in 0..k {
        for c in 0..n {
            let v = (w[r * n + c] / scales[c]).round().clamp(-(qmax as f32), qmax as f32);
            q[r * n + c] = v as i8;
        }
    }
    (q, scales)
}

/// Rewrites the weight MatMuls of `model` into the dynamic-int8 pattern (see module docs).
pub fn quantize_model(model: &mut ModelProto, opts: &QuantizeOptions) -> Result<QuantizeSummary, OnnxError> {
    let targets = weight_matmuls(model);
    let g = model.graph.take().ok_or_else(|| OnnxError::graph("model has no graph"))?;
    let qmax = if opts.reduce_range { 63 } else { 127 };
    let mut summary = QuantizeSummary::default();
    let mut replaced: HashMap<usize, Vec<NodeProto>> = HashMap::new();
    let mut dql: HashMap<String, (String, String, String)> = HashMap::new();
    let mut b = GraphBuilder::from_graph(g);
    let mut dead_inits = Vec::new();
    for (ni, wi) in targets {
        let node = b.graph.node[ni].clone();
        let wt = b.graph.initializer[wi].clone();
        let label = node_label(&node);
        let wname = wt.name.clone().unwrap_or_default();
        let keep = opts.keep_fp32.iter().any(|p| {
            pattern_matches(p, &label) || pattern_matches(p, &wname) || node.output.iter().any(|o| pattern_matches(p, o))
        });
        if keep {
            summary.kept_fp32.push(label);
            continue;
        }
        let (k, n) = (wt.dims[0].max(0) as usize, wt.dims[1].max(0) as usize);
        let w = tensor_to_f32(&wt)?;
        let (q, scales) = quantize_weight(&w, k, n, opts.per_channel, qmax);
        let x = node.input[0].clone();
        let y = node.output.first().cloned().unwrap_or_default();
        let mut new_nodes = Vec::new();
        let before = b.graph.node.len();
        let (xq, xs, xzp) = match dql.get(&x) {
            Some(t) => t.clone(),
            None => {
                let outs = b.op_multi("DynamicQuantizeLinear", &[&x], 3, vec![], &format!("{x}.dql"));
                let t = (outs[0].clone(), outs[1].clone(), outs[2].clone());
                summary.dynamic_quantize_nodes += 1;
                dql.insert(x.clone(), t.clone());
                t
            }
        };
        let wq = b.initializer(tensor(&format!("{wname}.int8"), &[k as i64, n as i64], &q));
        let ws = b.initializer(tensor(&format!("{wname}.scale"), &[n as i64], &scales));
        let wzp = b.initializer(tensor(&format!("{wname}.zero_point"), &[n as i64], &vec![0i8; n]));
        let mmi = b.op_as("MatMulInteger", &[&xq, &wq, &xzp, &wzp], vec![], &format!("{y}.int32"));
        let cast = b.op_as("Cast", &[&mmi], vec![attr_int("to", DataType::Float as i64)], &format!("{y}.cast"));
        let scale = b.op_as("Mul", &[&xs, &ws], vec![], &format!("{y}.scale"));
        b.node_named("Mul", &[&cast, &scale], &[&y], vec![]);
        new_nodes.extend(b.graph.node.drain(before..));
        replaced.insert(ni, new_nodes);
        dead_inits.push(wi);
        summary.quantized.push(label);
    }
    // Splice the replacements in place of the original nodes (keeps a topological order as long
    // as each DynamicQuantizeLinear is emitted before its first consumer, which holds because the
    // first replaced MatMul of an activation carries it).
    let old = std::mem::take(&mut b.graph.node);
    for (i, n) in old.into_iter().enumerate() {
        match replaced.remove(&i) {
            Some(new) => b.graph.node.extend(new),
            None => b.graph.node.push(n),
        }
    }
    dead_inits.sort_unstable();
    for wi in dead_inits.into_iter().rev() {
        b.graph.initializer.remove(wi);
    }
    model.graph = Some(b.graph);
    // DynamicQuantizeLinear/MatMulInteger need opset 11; our graphs are 17.
    if graph::default_opset(model) < 11 {
        return Err(OnnxError::graph("model opset < 11 cannot hold DynamicQuantizeLinear"));
    }
    Ok(summary)
}

/// Counts the operator types of the graph ONNX Runtime actually runs after its optimizations
/// (e.g. to check that `DynamicQuantizeMatMul` was fused). Writes the optimized model to a temp file.
pub fn fused_op_counts(path: &Path) -> Result<BTreeMap<String, usize>, OnnxError> {
    let dir = tempfile_dir()?;
    let opt = dir.join("optimized.onnx");
    let opts = SessionOptions { optimized_model_path: Some(opt.clone()), threads: Some(1), ..Default::default() };
    let s = runtime::open_session(path, &opts)?;
    drop(s);
    let m = load_model(&opt)?;
    let _ = std::fs::remove_dir_all(&dir);
    let mut counts = BTreeMap::new();
    for n in &m.graph.unwrap_or_default().node {
        *counts.entry(n.op_type.clone().unwrap_or_default()).or_insert(0) += 1;
    }
    Ok(counts)
}

fn tempfile_dir() -> Result<PathBuf, OnnxError> {
    let d = std::env::temp_dir().join(format!(
        "edgetune-ort-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    ));
    std::fs::create_dir_all(&d).map_err(|e| OnnxError::io(&d, e))?;
    Ok(d)
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

/// Pooled embeddings of `texts` from an encoder session, batched (`batch_size`, length-sorted).
pub fn pooled_embeddings(
    session: &mut ort::session::Session,
    tokenizer: &tokenizers::Tokenizer,
    texts: &[&str],
    batch_size: usize,
    max_len: usize,
) -> Result<Vec<Vec<f32>>, OnnxError> {
    let mut order: Vec<usize> = (0..texts.len()).collect();
    let lens: Vec<usize> = texts
        .iter()
        .map(|t| tokenizer.encode(*t, true).map(|e| e.get_ids().len()).unwrap_or(0))
        .collect();
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
    let opts = SessionOptions { threads, ..Default::default() };
    let mut a = runtime::open_session(fp32, &opts)?;
    let mut b = runtime::open_session(int8, &opts)?;
    let ea = pooled_embeddings(&mut a, tokenizer, texts, 32, 128)?;
    let eb = pooled_embeddings(&mut b, tokenizer, texts, 32, 128)?;
    Ok(fidelity_of(&ea, &eb))
}

/// Mean/min cosine of paired embeddings.
pub fn fidelity_of(a: &[Vec<f32>], b: &[Vec<f32>]) -> Fidelity {
    let cos: Vec<f32> = a.iter().zip(b).map(|(x, y)| runtime::cosine(x, y)).collect();
    let n = cos.len().max(1) as f32;
    Fidelity {
        sentences: cos.len(),
        mean_cosine: cos.iter().sum::<f32>() / n,
        min_cosine: cos.iter().copied().fold(f32::INFINITY, f32::min),
    }
}

/// Sentences per second of an encoder file on `texts` (batches of `batch_size`, length-sorted),
/// best of `repeats` passes after one warm-up pass.
pub fn throughput(
    path: &Path,
    tokenizer: &tokenizers::Tokenizer,
    texts: &[&str],
    batch_size: usize,
    threads: usize,
    repeats: usize,
) -> Result<f64, OnnxError> {
    let opts = SessionOptions { threads: Some(threads), ..Default::default() };
    let mut s = runtime::open_session(path, &opts)?;
    let mut order: Vec<&str> = texts.to_vec();
    order.sort_by_key(|t| tokenizer.encode(*t, true).map(|e| e.get_ids().len()).unwrap_or(0));
    let batches: Vec<EncoderBatch> = order
        .chunks(batch_size.max(1))
        .map(|c| EncoderBatch::tokenize(tokenizer, c, 128))
        .collect::<Result<_, _>>()?;
    let mut best = f64::INFINITY;
    for rep in 0..=repeats.max(1) {
        let t0 = Instant::now();
        for b in &batches {
            runtime::run_encoder(&mut s, b, &["last_hidden_state"])?;
        }
        let dt = t0.elapsed().as_secs_f64();
        if rep > 0 {
            best = best.min(dt);
        }
    }
    Ok(texts.len() as f64 / best)
}

/// Options of [`quantize_dir`].
#[derive(Debug, Clone)]
pub struct QuantizeDirOptions {
    /// Model directory written by `edgetune import` (backbone.onnx, tokenizer.json, manifest.json).
    pub model_dir: PathBuf,
    /// Output file (default `MODEL_DIR/backbone.int8.onnx`).
    pub out: Option<PathBuf>,
    /// Quantization settings.
    pub quant: QuantizeOptions,
    /// Sentences for the fidelity report (default: built-in samples).
    pub sentences: Option<Vec<String>>,
    /// Warn when the mean pooled cosine is below this.
    pub warn_cosine: f32,
    /// Threads for ONNX Runtime.
    pub threads: Option<usize>,
    /// Also measure throughput (batch 32, length-sorted) of fp32 vs int8.
    pub measure_speed: bool,
}

/// Report of [`quantize_dir`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuantizeReport {
    /// Written file.
    pub out: PathBuf,
    /// Graph changes.
    pub summary: QuantizeSummary,
    /// Fidelity vs fp32.
    pub fidelity: Fidelity,
    /// Fused int8 MatMuls in ORT's optimized graph: `DynamicQuantizeMatMul` (quantization folded in)
    /// plus `MatMulIntegerToFloat` (used when several MatMuls share one `DynamicQuantizeLinear`).
    pub fused_nodes: usize,
    /// Unfused `MatMulInteger` nodes left in ORT's optimized graph.
    pub unfused_nodes: usize,
    /// fp32 and int8 sentences/second, when measured.
    pub speed: Option<(f64, f64)>,
    /// Warning text when fidelity is below the threshold.
    pub warning: Option<String>,
}

/// Quantizes a model directory's backbone, checks ORT's fusion, reports fidelity (and speed), and
/// records the result in the manifest.
pub fn quantize_dir(opts: &QuantizeDirOptions) -> Result<QuantizeReport, OnnxError> {
    let src = opts.model_dir.join(BACKBONE_FILE);
    let out = opts.out.clone().unwrap_or_else(|| opts.model_dir.join(INT8_FILE));
    let mut model = load_model(&src)?;
    let summary = quantize_model(&mut model, &opts.quant)?;
    if summary.quantized.is_empty() {
        return Err(OnnxError::Graph { path: src.display().to_string(), message: "no weight MatMul to quantize".into() });
    }
    super::set_metadata(&mut model, "edgetune.quantization", &format!(
        "dynamic int8, {} weights, {} bit, {} MatMuls int8, {} fp32",
        if opts.quant.per_channel { "per-channel" } else { "per-tensor" },
        if opts.quant.reduce_range { 7 } else { 8 },
        summary.quantized.len(),
        summary.kept_fp32.len()
    ));
    save_model(&out, &model)?;
    let counts = fused_op_counts(&out)?;
    let fused = counts.get("DynamicQuantizeMatMul").copied().unwrap_or(0)
        + counts.get("MatMulIntegerToFloat").copied().unwrap_or(0);
    let unfused = counts.get("MatMulInteger").copied().unwrap_or(0);
    let tok = runtime::load_tokenizer(&opts.model_dir.join(TOKENIZER_FILE))?;
    let sentences: Vec<String> = match &opts.sentences {
        Some(s) if !s.is_empty() => s.clone(),
        _ => super::import::VERIFY_SENTENCES.iter().map(|s| s.to_string()).collect(),
    };
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let fid = fidelity(&src, &out, &tok, &refs, opts.threads)?;
    let speed = if opts.measure_speed {
        let t = opts.threads.unwrap_or(2);
        Some((throughput(&src, &tok, &refs, 32, t, 3)?, throughput(&out, &tok, &refs, 32, t, 3)?))
    } else {
        None
    };
    let warning = (fid.mean_cosine < opts.warn_cosine).then(|| {
        format!(
            "fidelity below threshold: mean pooled cosine {:.4} < {:.4} (min {:.4}); keep sensitive MatMuls fp32 with --keep-fp32",
            fid.mean_cosine, opts.warn_cosine, fid.min_cosine
        )
    });
    let report = QuantizeReport { out: out.clone(), summary, fidelity: fid, fused_nodes: fused, unfused_nodes: unfused, speed, warning };
    // Record in the manifest when the output is inside the model directory.
    if let Ok(mut m) = Manifest::load(&opts.model_dir) {
        if out.parent() == Some(opts.model_dir.as_path()) {
            let name = out.file_name().unwrap_or_default().to_string_lossy().into_owned();
            let sha = fsutil::sha256_file(&out).map_err(|e| OnnxError::io(&out, e))?;
            m.files.insert(name, sha);
            m.extra.insert(
                "quantization".into(),
                serde_json::to_value(&report).map_err(|e| OnnxError::Invalid(e.to_string()))?,
            );
            m.save(&opts.model_dir)?;
        }
    }
    Ok(report)
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
    let opts = SessionOptions { threads, ..Default::default() };
    let mut s = runtime::open_session(fp32_path, &opts)?;
    let reference = pooled_embeddings(&mut s, tokenizer, texts, 32, 128)?;
    drop(s);
    let dir = tempfile_dir()?;
    let tmp = dir.join("candidate.onnx");
    let eval = |keep: Vec<String>| -> Result<Fidelity, OnnxError> {
        let mut m = model.clone();
        let mut o = base.clone();
        o.keep_fp32.extend(keep);
        quantize_model(&mut m, &o)?;
        save_model(&tmp, &m)?;
        let mut s = runtime::open_session(&tmp, &opts)?;
        let e = pooled_embeddings(&mut s, tokenizer, texts, 32, 128)?;
        Ok(fidelity_of(&reference, &e))
    };
    let all = eval(Vec::new())?;
    let g = model.graph.as_ref().ok_or_else(|| OnnxError::graph("model has no graph"))?;
    let mut rows = Vec::new();
    for (ni, _) in weight_matmuls(&model) {
        let label = node_label(&g.node[ni]);
        // Anchor the pattern on the exact node name.
        let f = eval(vec![label.clone()])?;
        rows.push(Sensitivity { node: label, fidelity: f });
    }
    let _ = std::fs::remove_dir_all(&dir);
    rows.sort_by(|a, b| b.fidelity.mean_cosine.total_cmp(&a.fidelity.mean_cosine));
    Ok((all, rows))
}
