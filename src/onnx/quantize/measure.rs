//! Measuring a quantized encoder: ONNX Runtime's fusions, fidelity to fp32, throughput, and which
//! MatMuls are most sensitive.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::error::QuantizeError;
use super::options::QuantizeOptions;
use super::rewrite::{node_label, quantize_model, weight_matmuls};
use super::scratch::temp_dir;
use crate::backbone::raw::{self as runtime, EncoderBatch};
use crate::backbone::SessionOptions;
use crate::graph::{count_layers, expose_hidden_states, load_model, save_model};
use crate::progress::Progress;

/// Counts the operator types of the graph ONNX Runtime actually runs after its optimizations
/// (e.g. to check that `DynamicQuantizeMatMul` was fused). Writes the optimized model to a temp file.
pub fn fused_op_counts(path: &Path) -> Result<BTreeMap<String, usize>, QuantizeError> {
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

/// Pooled embeddings of `texts` from an encoder session, batched (`batch_size`, length-sorted);
/// each batch done is counted on `progress`.
pub fn pooled_embeddings(
    session: &mut ort::session::Session,
    tokenizer: &tokenizers::Tokenizer,
    texts: &[&str],
    batch_size: usize,
    max_len: usize,
    progress: &mut Progress,
) -> Result<Vec<Vec<f32>>, QuantizeError> {
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
        progress.inc(chunk.len() as u64);
    }
    Ok(out)
}

/// Compares two encoder files on `texts` (with `progress`, the sentences of both runs are shown
/// on stderr).
pub fn fidelity(
    fp32: &Path,
    int8: &Path,
    tokenizer: &tokenizers::Tokenizer,
    texts: &[&str],
    threads: Option<usize>,
    progress: bool,
) -> Result<Fidelity, QuantizeError> {
    let opts = SessionOptions::tooling(threads);
    let mut a = runtime::open_file(fp32, &opts)?;
    let mut b = runtime::open_file(int8, &opts)?;
    let mut bar = Progress::new(
        "fidelity (fp32, int8)",
        2 * texts.len() as u64,
        "sentences",
        progress,
    );
    let ea = pooled_embeddings(&mut a, tokenizer, texts, 32, 128, &mut bar)?;
    let eb = pooled_embeddings(&mut b, tokenizer, texts, 32, 128, &mut bar)?;
    bar.finish();
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

/// Fidelity of one hidden state of a quantized encoder against the fp32 one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LayerCosine {
    /// Hidden state: 0 = the embeddings, `k` = the output of transformer layer `k`.
    pub state: usize,
    /// Mean over every real token of every sentence of the cosine between the two states.
    pub mean_cosine: f32,
    /// The lowest of those cosines.
    pub min_cosine: f32,
    /// Largest absolute difference of any value over real tokens.
    pub max_abs_diff: f32,
}

/// Per-layer fidelity of `int8` against `fp32` on `texts`: every hidden state `0..=L` of both
/// encoders is exposed as an output ([`crate::graph::expose_hidden_states`]), the two run on the
/// same length-sorted batches, and each state is compared token by token. With `progress`, the
/// sentences done are shown on stderr.
pub fn layer_fidelity(
    fp32: &Path,
    int8: &Path,
    tokenizer: &tokenizers::Tokenizer,
    texts: &[&str],
    threads: Option<usize>,
    progress: bool,
) -> Result<Vec<LayerCosine>, QuantizeError> {
    let dir = temp_dir()?;
    let (mut sessions, names) = every_state_sessions(fp32, int8, dir.path(), threads)?;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let lens = token_lengths(tokenizer, texts);
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| lens[i]);
    let mut acc = vec![StateAcc::default(); names.len()];
    let mut bar = Progress::new("layer fidelity", texts.len() as u64, "sentences", progress);
    for chunk in order.chunks(32) {
        let t: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
        let b = EncoderBatch::tokenize(tokenizer, &t, 128)?;
        let a = runtime::run_encoder(&mut sessions[0], &b, &refs)?;
        let q = runtime::run_encoder(&mut sessions[1], &b, &refs)?;
        for (k, (x, y)) in a.iter().zip(&q).enumerate() {
            acc[k].add(k, x, y, &b)?;
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    drop(sessions);
    drop(dir);
    Ok(acc
        .into_iter()
        .enumerate()
        .map(|(state, a)| a.finish(state))
        .collect())
}

/// Sessions of `fp32` and `int8` with every hidden state `0..=L` exposed (saved into `dir`), and
/// the states' output names (the same in both, else an error).
fn every_state_sessions(
    fp32: &Path,
    int8: &Path,
    dir: &Path,
    threads: Option<usize>,
) -> Result<(Vec<ort::session::Session>, Vec<String>), QuantizeError> {
    let opts = SessionOptions::tooling(threads);
    let mut sessions = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (i, path) in [fp32, int8].into_iter().enumerate() {
        let mut m = load_model(path)?;
        let layers = count_layers(&m)?;
        let n = expose_hidden_states(&mut m, &(0..=layers).collect::<Vec<_>>())?;
        if i > 0 && n != names {
            return Err(QuantizeError::Invalid(format!(
                "{} has {} hidden states, {} has {}",
                fp32.display(),
                names.len(),
                int8.display(),
                n.len()
            )));
        }
        names = n;
        let tmp = dir.join(format!("layers-{i}.onnx"));
        save_model(&tmp, &m)?;
        drop(m);
        sessions.push(runtime::open_file(&tmp, &opts)?);
    }
    Ok((sessions, names))
}

/// One hidden state's comparison so far: the sum of per-token cosines, the tokens compared, the
/// lowest cosine and the largest |diff|.
#[derive(Clone)]
struct StateAcc {
    sum: f64,
    tokens: usize,
    min: f32,
    diff: f32,
}

impl Default for StateAcc {
    fn default() -> Self {
        StateAcc {
            sum: 0.0,
            tokens: 0,
            min: f32::INFINITY,
            diff: 0.0,
        }
    }
}

impl StateAcc {
    /// Adds state `k` of one batch: `x` (fp32) against `y` (int8) at every real token.
    fn add(
        &mut self,
        k: usize,
        x: &runtime::FloatOutput,
        y: &runtime::FloatOutput,
        b: &EncoderBatch,
    ) -> Result<(), QuantizeError> {
        let dim = x.shape.last().copied().unwrap_or(0);
        if dim == 0 || x.data.len() != b.attention_mask.len() * dim || y.data.len() != x.data.len()
        {
            return Err(QuantizeError::Invalid(format!(
                "hidden state {k}: outputs of shape {:?} and {:?} for a batch of {} x {} tokens",
                x.shape, y.shape, b.batch, b.seq
            )));
        }
        for (tok, &m) in b.attention_mask.iter().enumerate() {
            if m != 0 {
                let r = tok * dim..(tok + 1) * dim;
                let c = runtime::cosine(&x.data[r.clone()], &y.data[r]);
                self.sum += f64::from(c);
                self.tokens += 1;
                self.min = self.min.min(c);
            }
        }
        let diff = runtime::max_abs_diff_masked(&x.data, &y.data, &b.attention_mask, dim);
        self.diff = self.diff.max(diff);
        Ok(())
    }

    fn finish(self, state: usize) -> LayerCosine {
        let none = self.tokens == 0;
        LayerCosine {
            state,
            mean_cosine: if none {
                f32::NAN
            } else {
                (self.sum / self.tokens as f64) as f32
            },
            min_cosine: if none { f32::NAN } else { self.min },
            max_abs_diff: self.diff,
        }
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
) -> Result<Vec<f64>, QuantizeError> {
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
/// worth keeping fp32 (`--keep-fp32`). With `progress`, the candidate models done are shown on
/// stderr.
pub fn sensitivity(
    fp32_path: &Path,
    tokenizer: &tokenizers::Tokenizer,
    texts: &[&str],
    base: &QuantizeOptions,
    threads: Option<usize>,
    progress: bool,
) -> Result<(Fidelity, Vec<Sensitivity>), QuantizeError> {
    let model = load_model(fp32_path)?;
    let opts = SessionOptions::tooling(threads);
    let mut s = runtime::open_file(fp32_path, &opts)?;
    let mut quiet = Progress::hidden();
    let reference = pooled_embeddings(&mut s, tokenizer, texts, 32, 128, &mut quiet)?;
    drop(s);
    let dir = temp_dir()?;
    let tmp = dir.path().join("candidate.onnx");
    let eval = |keep: Vec<String>| -> Result<Fidelity, QuantizeError> {
        let mut m = model.clone();
        let mut o = base.clone();
        o.keep_fp32.extend(keep);
        quantize_model(&mut m, &o)?;
        save_model(&tmp, &m)?;
        let mut s = runtime::open_file(&tmp, &opts)?;
        let e = pooled_embeddings(&mut s, tokenizer, texts, 32, 128, &mut Progress::hidden())?;
        Ok(fidelity_of(&reference, &e))
    };
    let matmuls = weight_matmuls(&model);
    let mut bar = Progress::new("sensitivity", matmuls.len() as u64 + 1, "models", progress);
    let all = eval(Vec::new())?;
    bar.inc(1);
    let g = model
        .graph
        .as_ref()
        .ok_or_else(|| QuantizeError::graph("model has no graph"))?;
    let mut rows = Vec::new();
    for (ni, _) in matmuls {
        let label = node_label(&g.node[ni]);
        // Anchor the pattern on the exact node name.
        let f = eval(vec![label.clone()])?;
        rows.push(Sensitivity {
            node: label,
            fidelity: f,
        });
        bar.inc(1);
    }
    bar.finish();
    drop(dir);
    rows.sort_by(|a, b| b.fidelity.mean_cosine.total_cmp(&a.fidelity.mean_cosine));
    Ok((all, rows))
}

/// The bytes of a model by part: what a board's storage and memory pay for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelBytes {
    /// Embedding tables (their int8 values and per-row scales, or fp32).
    pub embeddings: usize,
    /// Int8 weight matrices.
    pub int8_weights: usize,
    /// Float weight matrices (MatMuls kept fp32, outlier rows, the heads of a merged model).
    pub fp32_weights: usize,
    /// Biases, norms, quantization scales and other small tensors.
    pub small_tensors: usize,
    /// The rest of the file: nodes, names, metadata.
    pub graph: usize,
    /// The whole file.
    pub total: usize,
}

/// The bytes of `model`'s initializers by part, and the rest of its encoding as `graph`.
pub fn model_bytes(model: &crate::graph::proto::ModelProto) -> ModelBytes {
    use crate::graph::proto::tensor_proto::DataType;
    let mut b = ModelBytes {
        total: crate::graph::encode_model(model).len(),
        ..ModelBytes::default()
    };
    let Some(g) = model.graph.as_ref() else {
        b.graph = b.total;
        return b;
    };
    let mut tensors = 0;
    for t in &g.initializer {
        let n = t.raw_data.as_ref().map_or(0, Vec::len)
            + 4 * t.float_data.len()
            + 8 * t.int64_data.len()
            + 4 * t.int32_data.len();
        tensors += n;
        let name = t.name.as_deref().unwrap_or("");
        let ty = t.data_type.unwrap_or(0);
        let int8 = ty == DataType::Int8 as i32 || ty == DataType::Uint8 as i32;
        if name.contains("embeddings") {
            b.embeddings += n;
        } else if int8 && t.dims.len() == 2 {
            b.int8_weights += n;
        } else if t.dims.len() == 2 && t.dims.iter().all(|&d| d > 1) {
            b.fp32_weights += n;
        } else {
            b.small_tensors += n;
        }
    }
    b.graph = b.total.saturating_sub(tensors);
    b
}

impl std::fmt::Display for ModelBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mb = |n: usize| n as f64 / 1e6;
        write!(
            f,
            "{:.1} MB: embeddings {:.1} MB, int8 weights {:.1} MB, fp32 weights {:.1} MB, small tensors {:.2} MB, graph {:.2} MB",
            mb(self.total),
            mb(self.embeddings),
            mb(self.int8_weights),
            mb(self.fp32_weights),
            mb(self.small_tensors),
            mb(self.graph)
        )
    }
}
