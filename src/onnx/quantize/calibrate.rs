//! Calibration: per-channel activation statistics from the fp32 model on sample sentences.

use std::collections::HashMap;
use std::path::Path;

use super::measure::temp_dir;
use super::rewrite::{quantize_weight, weight_matmuls};
use crate::graph::proto::tensor_proto::DataType;
use crate::graph;
use crate::backbone::raw::{self as runtime, EncoderBatch};
use crate::backbone::SessionOptions;
use crate::graph::{load_model, save_model, OnnxError};

/// Per-channel activation statistics for smoothing: max |x_j| over calibration tokens for each
/// MatMul input tensor, and the migration strength `alpha` (0 = none, 0.5 = SmoothQuant default).
#[derive(Debug, Clone, Default)]
pub struct ActivationStats {
    /// Tensor name -> per-channel max |x| (last axis).
    pub amax: HashMap<String, Vec<f32>>,
    /// Migration strength.
    pub alpha: f32,
    /// Tensor name -> sampled calibration rows (row-major, `amax[name].len()` columns). When
    /// present, the strength is chosen per activation among `{0, alpha/2, alpha, (1+alpha)/2}`
    /// by simulating the int8 MatMuls on these rows (smallest relative output error).
    pub samples: HashMap<String, Vec<f32>>,
}

/// Relative squared error of `X W` when X is quantized like `DynamicQuantizeLinear` (per tensor,
/// asymmetric u8) after division by `f`, and `diag(f) W` symmetric per column with `qmax`.
pub fn simulated_error(
    x: &[f32],
    k: usize,
    ws: &[(&[f32], usize)],
    f: &[f32],
    qmax: i32,
    per_channel: bool,
) -> f64 {
    let m = x.len() / k.max(1);
    let xs: Vec<f32> = x.iter().enumerate().map(|(i, &v)| v / f[i % k]).collect();
    let lo = xs.iter().copied().fold(0f32, f32::min);
    let hi = xs.iter().copied().fold(0f32, f32::max);
    let scale = ((hi - lo) / 255.0).max(f32::MIN_POSITIVE);
    let zp = (-lo / scale).round().clamp(0.0, 255.0);
    let xd: Vec<f32> = xs
        .iter()
        .map(|&v| (((v / scale).round() + zp).clamp(0.0, 255.0) - zp) * scale)
        .collect();
    let (mut num, mut den) = (0f64, 0f64);
    for &(w, n) in ws {
        let wsc: Vec<f32> = (0..k * n).map(|i| w[i] * f[i / n]).collect();
        let (q, sc) = quantize_weight(&wsc, k, n, per_channel, qmax);
        let wd: Vec<f32> = q
            .iter()
            .enumerate()
            .map(|(i, &v)| f32::from(v) * sc[i % n])
            .collect();
        let mut y = vec![0f32; n];
        let mut yq = vec![0f32; n];
        for r in 0..m {
            y.iter_mut().for_each(|v| *v = 0.0);
            yq.iter_mut().for_each(|v| *v = 0.0);
            for j in 0..k {
                let (a, aq) = (x[r * k + j], xd[r * k + j]);
                let (wr, wdr) = (&w[j * n..(j + 1) * n], &wd[j * n..(j + 1) * n]);
                for c in 0..n {
                    y[c] += a * wr[c];
                    yq[c] += aq * wdr[c];
                }
            }
            for c in 0..n {
                num += f64::from(y[c] - yq[c]).powi(2);
                den += f64::from(y[c]).powi(2);
            }
        }
    }
    num / den.max(f64::MIN_POSITIVE)
}

/// Calibration rows kept per activation for choosing the smoothing strength.
pub const SAMPLE_ROWS: usize = 192;

/// Runs the fp32 model on calibration sentences with every weight-MatMul input exposed, and
/// collects per-channel max |x| over real (unpadded) tokens, plus sampled rows.
pub fn activation_stats(
    fp32_path: &Path,
    tokenizer: &tokenizers::Tokenizer,
    texts: &[&str],
    alpha: f32,
    threads: Option<usize>,
) -> Result<ActivationStats, OnnxError> {
    let mut model = load_model(fp32_path)?;
    let inputs: Vec<String> = {
        let g = model
            .graph
            .as_ref()
            .ok_or_else(|| OnnxError::graph("model has no graph"))?;
        let mut v: Vec<String> = weight_matmuls(&model)
            .iter()
            .map(|&(ni, _)| g.node[ni].input[0].clone())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    if let Some(g) = model.graph.as_mut() {
        let have: std::collections::HashSet<String> =
            g.output.iter().filter_map(|o| o.name.clone()).collect();
        for x in &inputs {
            if !have.contains(x) {
                let mut vi = graph::value_info(x, DataType::Float, &[]);
                if let Some(crate::graph::proto::TypeProto {
                    value: Some(crate::graph::proto::type_proto::Value::TensorType(t)),
                    ..
                }) = vi.r#type.as_mut()
                {
                    t.shape = None;
                }
                g.output.push(vi);
            }
        }
    }
    let dir = temp_dir()?;
    let tmp = dir.path().join("calibration.onnx");
    save_model(&tmp, &model)?;
    let opts = SessionOptions::tooling(threads);
    let mut s = runtime::open_file(&tmp, &opts)?;
    let names: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let mut amax: HashMap<String, Vec<f32>> = HashMap::new();
    let mut samples: HashMap<String, Vec<f32>> = HashMap::new();
    let mut token_counter = 0usize;
    for chunk in texts.chunks(32) {
        let b = EncoderBatch::tokenize(tokenizer, chunk, 128)?;
        let outs = runtime::run_encoder(&mut s, &b, &names)?;
        for (name, o) in names.iter().zip(outs) {
            let k = o.shape.last().copied().unwrap_or(0);
            if k == 0 || o.data.len() != b.attention_mask.len() * k {
                continue;
            }
            let e = amax
                .entry(name.to_string())
                .or_insert_with(|| vec![0f32; k]);
            let smp = samples.entry(name.to_string()).or_default();
            let mut counter = token_counter;
            for (t, &m) in b.attention_mask.iter().enumerate() {
                if m != 0 {
                    let row = &o.data[t * k..(t + 1) * k];
                    for (a, &v) in e.iter_mut().zip(row) {
                        *a = a.max(v.abs());
                    }
                    // Every 7th real token, up to SAMPLE_ROWS rows.
                    if counter % 7 == 0 && smp.len() < SAMPLE_ROWS * k {
                        smp.extend_from_slice(row);
                    }
                    counter += 1;
                }
            }
        }
        token_counter += b.attention_mask.iter().filter(|&&m| m != 0).count();
    }
    drop(s);
    drop(dir);
    Ok(ActivationStats {
        amax,
        alpha,
        samples,
    })
}
