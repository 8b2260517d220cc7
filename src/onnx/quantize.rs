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
    /// Activation statistics (see [`activation_stats`]) for smoothing and outlier channels;
    /// `None` = neither.
    pub smooth: Option<ActivationStats>,
    /// Outlier decomposition: input channels whose calibration max |x| exceeds this many times
    /// the median channel's are taken out of the int8 MatMul and multiplied in fp32 (a `Gather`
    /// of those few channels and a small fp32 `MatMul` added to the int8 result), so that one
    /// extreme channel no longer sets the per-tensor activation scale. 0 = off. At most
    /// [`MAX_OUTLIER_FRACTION`] of the channels are split off.
    pub outlier_ratio: f32,
}

/// At most `K / MAX_OUTLIER_FRACTION` (and at least 1) input channels of a `[K, N]` MatMul are
/// split off as outliers.
pub const MAX_OUTLIER_FRACTION: usize = 64;

/// Default for [`QuantizeOptions::outlier_ratio`].
pub const DEFAULT_OUTLIER_RATIO: f32 = 6.0;

/// Splitting channels off must at least halve the activation's range (max |x| of all channels
/// over max |x| of the rest), else the extra fp32 product is not worth its cost.
pub const MIN_OUTLIER_GAIN: f32 = 2.0;

/// Outlier channels of one activation: those with `amax > ratio * median(amax)`, largest first,
/// capped at `max(1, K / MAX_OUTLIER_FRACTION)`, returned in ascending channel order; empty when
/// removing them would shrink the range by less than [`MIN_OUTLIER_GAIN`].
pub fn outlier_channels(amax: &[f32], ratio: f32) -> Vec<usize> {
    if ratio <= 0.0 || amax.is_empty() {
        return Vec::new();
    }
    let mut sorted = amax.to_vec();
    sorted.sort_by(f32::total_cmp);
    let median = sorted[sorted.len() / 2];
    if median <= 0.0 {
        return Vec::new();
    }
    let mut idx: Vec<usize> = (0..amax.len())
        .filter(|&j| amax[j] > ratio * median)
        .collect();
    idx.sort_by(|&a, &b| amax[b].total_cmp(&amax[a]));
    idx.truncate((amax.len() / MAX_OUTLIER_FRACTION).max(1));
    idx.sort_unstable();
    let all = sorted[sorted.len() - 1];
    let rest = (0..amax.len())
        .filter(|j| idx.binary_search(j).is_err())
        .map(|j| amax[j])
        .fold(0f32, f32::max);
    if idx.is_empty() || all < MIN_OUTLIER_GAIN * rest {
        return Vec::new();
    }
    idx
}

impl Default for QuantizeOptions {
    fn default() -> Self {
        QuantizeOptions {
            reduce_range: true,
            per_channel: true,
            keep_fp32: Vec::new(),
            smooth: None,
            outlier_ratio: 0.0,
        }
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
    /// Activations rescaled by smoothing.
    #[serde(default)]
    pub smoothed_activations: usize,
    /// Input channels split off into fp32 (outlier decomposition), summed over activations.
    #[serde(default)]
    pub outlier_channels: usize,
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
    parts
        .last()
        .is_none_or(|l| l.is_empty() || text.ends_with(l))
}

/// The weight MatMuls of a graph: `MatMul` nodes whose second input is a 2-D float initializer.
/// Returns (node index, weight initializer index).
pub fn weight_matmuls(model: &ModelProto) -> Vec<(usize, usize)> {
    let Some(g) = model.graph.as_ref() else {
        return Vec::new();
    };
    let inits: HashMap<&str, usize> = g
        .initializer
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.name.as_deref().map(|n| (n, i)))
        .collect();
    g.node
        .iter()
        .enumerate()
        .filter(|(_, n)| {
            n.op_type.as_deref() == Some("MatMul") && n.domain.as_deref().unwrap_or("").is_empty()
        })
        .filter_map(|(i, n)| {
            let w = *inits.get(n.input.get(1)?.as_str())?;
            let t = &g.initializer[w];
            (t.dims.len() == 2 && t.data_type == Some(DataType::Float as i32)).then_some((i, w))
        })
        .collect()
}

fn node_label(n: &NodeProto) -> String {
    n.name
        .clone()
        .or_else(|| n.output.first().cloned())
        .unwrap_or_default()
}

/// Symmetric int8 quantization of a `[k, n]` weight: per column (or per tensor) scale
/// `max|w| / qmax`. Returns (int8 values, scales).
pub fn quantize_weight(
    w: &[f32],
    k: usize,
    n: usize,
    per_channel: bool,
    qmax: i32,
) -> (Vec<i8>, Vec<f32>) {
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
    let scales: Vec<f32> = amax
        .iter()
        .map(|&a| if a > 0.0 { a / qmax as f32 } else { 1.0 })
        .collect();
    let mut q = vec![0i8; k * n];
    for r in 0..k {
        for c in 0..n {
            let v = (w[r * n + c] / scales[c])
                .round()
                .clamp(-(qmax as f32), qmax as f32);
            q[r * n + c] = v as i8;
        }
    }
    (q, scales)
}

/// Rewrites the weight MatMuls of `model` into the dynamic-int8 pattern (see module docs).
pub fn quantize_model(
    model: &mut ModelProto,
    opts: &QuantizeOptions,
) -> Result<QuantizeSummary, OnnxError> {
    let targets = weight_matmuls(model);
    let g = model
        .graph
        .take()
        .ok_or_else(|| OnnxError::graph("model has no graph"))?;
    let qmax = if opts.reduce_range { 63 } else { 127 };
    let mut summary = QuantizeSummary::default();

    // Decide which MatMuls are quantized, and group them by their activation input.
    let mut chosen: Vec<(usize, usize)> = Vec::new();
    for (ni, wi) in targets {
        let node = &g.node[ni];
        let label = node_label(node);
        let wname = g.initializer[wi].name.clone().unwrap_or_default();
        let keep = opts.keep_fp32.iter().any(|p| {
            pattern_matches(p, &label)
                || pattern_matches(p, &wname)
                || node.output.iter().any(|o| pattern_matches(p, o))
        });
        if keep {
            summary.kept_fp32.push(label);
        } else {
            chosen.push((ni, wi));
        }
    }
    let mut weights: HashMap<usize, Vec<f32>> = HashMap::new();
    for &(_, wi) in &chosen {
        weights.insert(wi, tensor_to_f32(&g.initializer[wi])?);
    }
    // Outlier channels per activation (from the calibration maxima).
    let mut outliers: HashMap<String, Vec<usize>> = HashMap::new();
    if let Some(stats) = opts.smooth.as_ref().filter(|_| opts.outlier_ratio > 0.0) {
        for &(ni, _) in &chosen {
            let x = &g.node[ni].input[0];
            if let Some(am) = stats.amax.get(x) {
                let o = outlier_channels(am, opts.outlier_ratio);
                if !o.is_empty() {
                    outliers.insert(x.clone(), o);
                }
            }
        }
    }
    // Activation smoothing: per input channel j, s_j = amax(X_j)^a / amax(W_j,:)^(1-a); X is
    // multiplied by 1/s (one Mul) and the weight rows by s, which is exact in fp32.
    let mut smooth: HashMap<String, Vec<f32>> = HashMap::new();
    if let Some(stats) = &opts.smooth {
        let mut wmax: HashMap<String, Vec<f32>> = HashMap::new();
        for &(ni, wi) in &chosen {
            let x = &g.node[ni].input[0];
            let t = &g.initializer[wi];
            let (k, n) = (t.dims[0].max(0) as usize, t.dims[1].max(0) as usize);
            let w = &weights[&wi];
            let e = wmax.entry(x.clone()).or_insert_with(|| vec![0f32; k]);
            if e.len() != k {
                continue;
            }
            for r in 0..k {
                for c in 0..n {
                    e[r] = e[r].max(w[r * n + c].abs());
                }
            }
        }
        let factors = |am: &[f32], wm: &[f32], alpha: f32| -> Vec<f32> {
            am.iter()
                .zip(wm)
                .map(|(&a, &w)| {
                    if alpha > 0.0 && a > 0.0 && w > 0.0 {
                        (a.powf(alpha) / w.powf(1.0 - alpha)).clamp(1e-4, 1e4)
                    } else {
                        1.0
                    }
                })
                .collect()
        };
        for (x, wm) in wmax {
            let Some(am) = stats.amax.get(&x).filter(|a| a.len() == wm.len()) else {
                continue;
            };
            let k = wm.len();
            // Split-off channels leave the int8 path: no factor for them, and the simulation
            // sees them as zero (their fp32 product is exact).
            let out_ch: &[usize] = outliers.get(&x).map(Vec::as_slice).unwrap_or(&[]);
            let mut am = am.clone();
            for &j in out_ch {
                am[j] = 0.0;
            }
            let am = am.as_slice();
            let f = match stats
                .samples
                .get(&x)
                .filter(|s| !s.is_empty() && s.len() % k == 0)
            {
                Some(sample) => {
                    let mut sample = sample.clone();
                    for row in sample.chunks_mut(k) {
                        for &j in out_ch {
                            row[j] = 0.0;
                        }
                    }
                    let sample = sample.as_slice();
                    let stripped: Vec<(Vec<f32>, usize)> = chosen
                        .iter()
                        .filter(|&&(ni, _)| g.node[ni].input[0] == x)
                        .map(|&(_, wi)| {
                            let n = g.initializer[wi].dims[1].max(0) as usize;
                            let mut w = weights[&wi].clone();
                            for &j in out_ch {
                                w[j * n..(j + 1) * n].iter_mut().for_each(|v| *v = 0.0);
                            }
                            (w, n)
                        })
                        .collect();
                    let group: Vec<(&[f32], usize)> =
                        stripped.iter().map(|(w, n)| (w.as_slice(), *n)).collect();
                    let a = stats.alpha;
                    let mut best: Option<(f64, Vec<f32>)> = None;
                    for cand in [0.0, a / 2.0, a, (1.0 + a) / 2.0] {
                        let f = factors(am, &wm, cand);
                        let e = simulated_error(sample, k, &group, &f, qmax, opts.per_channel);
                        if best.as_ref().is_none_or(|(b, _)| e < *b) {
                            best = Some((e, f));
                        }
                    }
                    best.map(|(_, f)| f).unwrap_or_else(|| vec![1.0; k])
                }
                None => factors(am, &wm, stats.alpha),
            };
            if f.iter().any(|&v| v != 1.0) {
                smooth.insert(x, f);
            }
        }
    }

    let mut replaced: HashMap<usize, Vec<NodeProto>> = HashMap::new();
    let mut dql: HashMap<String, (String, String, String)> = HashMap::new();
    let mut gathered: HashMap<String, String> = HashMap::new();
    // (int8 result, fp32 outlier product, sum) of each split MatMul.
    let mut outlier_adds: Vec<(String, String, String)> = Vec::new();
    let mut b = GraphBuilder::from_graph(g);
    let mut dead_inits = Vec::new();
    for (ni, wi) in chosen {
        let node = b.graph.node[ni].clone();
        let wt = b.graph.initializer[wi].clone();
        let label = node_label(&node);
        let wname = wt.name.clone().unwrap_or_default();
        let (k, n) = (wt.dims[0].max(0) as usize, wt.dims[1].max(0) as usize);
        let mut w = weights.remove(&wi).unwrap_or_default();
        let x = node.input[0].clone();
        let out_ch: Vec<usize> = outliers.get(&x).cloned().unwrap_or_default();
        // The split-off rows, unscaled, for the fp32 product; zero in the int8 weight.
        let mut w_out = Vec::with_capacity(out_ch.len() * n);
        for &j in &out_ch {
            w_out.extend_from_slice(&w[j * n..(j + 1) * n]);
            w[j * n..(j + 1) * n].iter_mut().for_each(|v| *v = 0.0);
        }
        if let Some(f) = smooth.get(&x) {
            for r in 0..k {
                for c in 0..n {
                    w[r * n + c] *= f[r];
                }
            }
        }
        let (q, scales) = quantize_weight(&w, k, n, opts.per_channel, qmax);
        let y = node.output.first().cloned().unwrap_or_default();
        let mut new_nodes = Vec::new();
        let before = b.graph.node.len();
        let (xq, xs, xzp) = match dql.get(&x) {
            Some(t) => t.clone(),
            None => {
                let input = if smooth.contains_key(&x) || !out_ch.is_empty() {
                    let mut inv: Vec<f32> = match smooth.get(&x) {
                        Some(f) => f.iter().map(|v| 1.0 / v).collect(),
                        None => vec![1.0; k],
                    };
                    for &j in &out_ch {
                        inv[j] = 0.0;
                    }
                    let c = b.initializer(tensor(&format!("{x}.smooth"), &[k as i64], &inv));
                    b.op_as("Mul", &[&x, &c], vec![], &format!("{x}.smoothed"))
                } else {
                    x.clone()
                };
                let outs = b.op_multi(
                    "DynamicQuantizeLinear",
                    &[&input],
                    3,
                    vec![],
                    &format!("{x}.dql"),
                );
                let t = (outs[0].clone(), outs[1].clone(), outs[2].clone());
                summary.dynamic_quantize_nodes += 1;
                dql.insert(x.clone(), t.clone());
                t
            }
        };
        let wq = b.initializer(tensor(&format!("{wname}.int8"), &[k as i64, n as i64], &q));
        let ws = b.initializer(tensor(&format!("{wname}.scale"), &[n as i64], &scales));
        let wzp = b.initializer(tensor(
            &format!("{wname}.zero_point"),
            &[n as i64],
            &vec![0i8; n],
        ));
        let mmi = b.op_as(
            "MatMulInteger",
            &[&xq, &wq, &xzp, &wzp],
            vec![],
            &format!("{y}.int32"),
        );
        let cast = b.op_as(
            "Cast",
            &[&mmi],
            vec![attr_int("to", DataType::Float as i64)],
            &format!("{y}.cast"),
        );
        let scale = b.op_as("Mul", &[&xs, &ws], vec![], &format!("{y}.scale"));
        if out_ch.is_empty() {
            b.node_named("Mul", &[&cast, &scale], &[&y], vec![]);
        } else {
            let xo = match gathered.get(&x) {
                Some(t) => t.clone(),
                None => {
                    let ids: Vec<i64> = out_ch.iter().map(|&j| j as i64).collect();
                    let idx = b.initializer_i64(
                        &format!("{x}.outlier_channels"),
                        &[ids.len() as i64],
                        &ids,
                    );
                    let t = b.op_as(
                        "Gather",
                        &[&x, &idx],
                        vec![attr_int("axis", -1)],
                        &format!("{x}.outliers"),
                    );
                    summary.outlier_channels += out_ch.len();
                    gathered.insert(x.clone(), t.clone());
                    t
                }
            };
            let yq = b.op_as("Mul", &[&cast, &scale], vec![], &format!("{y}.int8"));
            let wo = b.initializer(tensor(
                &format!("{wname}.outlier_rows"),
                &[out_ch.len() as i64, n as i64],
                &w_out,
            ));
            let yo = b.op_as("MatMul", &[&xo, &wo], vec![], &format!("{y}.outliers"));
            b.node_named("Add", &[&yq, &yo], &[&y], vec![]);
            outlier_adds.push((yq, yo, y.clone()));
        }
        new_nodes.extend(b.graph.node.drain(before..));
        replaced.insert(ni, new_nodes);
        dead_inits.push(wi);
        summary.quantized.push(label);
    }
    summary.smoothed_activations = smooth.len();
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
    add_outliers_after_bias(&mut b.graph, &outlier_adds)?;
    // Drop the fp32 weights no node uses any more (a weight shared with a kept MatMul stays).
    let used: std::collections::HashSet<&str> = b
        .graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().map(String::as_str))
        .collect();
    dead_inits.sort_unstable();
    dead_inits.dedup();
    let dead: Vec<usize> = dead_inits
        .into_iter()
        .filter(|&wi| {
            !b.graph.initializer[wi]
                .name
                .as_deref()
                .is_some_and(|n| used.contains(n))
        })
        .collect();
    for wi in dead.into_iter().rev() {
        b.graph.initializer.remove(wi);
    }
    model.graph = Some(b.graph);
    // DynamicQuantizeLinear/MatMulInteger need opset 11; our graphs are 17.
    if graph::default_opset(model) < 11 {
        return Err(OnnxError::graph(
            "model opset < 11 cannot hold DynamicQuantizeLinear",
        ));
    }
    Ok(summary)
}

/// Moves each outlier `Add(int8, fp32)` behind the MatMul's bias `Add` when the MatMul output has
/// no other use: `(int8 + bias) + fp32` instead of `(int8 + fp32) + bias`, so that ONNX Runtime
/// can fold the bias into its fused int8 MatMul. Restores a topological node order.
fn add_outliers_after_bias(
    g: &mut super::proto::GraphProto,
    adds: &[(String, String, String)],
) -> Result<(), OnnxError> {
    if adds.is_empty() {
        return Ok(());
    }
    let consumers = graph::consumers(g);
    let producers = graph::producers(g);
    let outputs: std::collections::HashSet<String> =
        g.output.iter().filter_map(|o| o.name.clone()).collect();
    let bias_len: HashMap<String, usize> = g
        .initializer
        .iter()
        .filter(|t| t.dims.len() == 1)
        .filter_map(|t| Some((t.name.clone()?, t.dims[0].max(0) as usize)))
        .collect();
    let mut moved = false;
    for (yq, yo, y) in adds {
        let (Some(users), Some(&add_i)) = (consumers.get(y), producers.get(y)) else {
            continue;
        };
        if users.len() != 1 || outputs.contains(y) {
            continue;
        }
        let bi = users[0];
        let bias = &g.node[bi];
        let is_bias_add = bias.op_type.as_deref() == Some("Add")
            && bias.input.len() == 2
            && bias.output.len() == 1
            && bias.input.iter().any(|i| i == y)
            && bias.input.iter().any(|i| bias_len.contains_key(i));
        if !is_bias_add {
            continue;
        }
        let z = bias.output[0].clone();
        let partial = format!("{z}.partial");
        let bias = &mut g.node[bi];
        for i in bias.input.iter_mut().filter(|i| *i == y) {
            *i = yq.clone();
        }
        bias.output[0] = partial.clone();
        let add = &mut g.node[add_i];
        add.input = vec![partial, yo.clone()];
        add.output = vec![z];
        moved = true;
    }
    if moved {
        let order = graph::topological_order(g)?;
        let mut old: Vec<Option<NodeProto>> =
            std::mem::take(&mut g.node).into_iter().map(Some).collect();
        g.node = order.into_iter().filter_map(|i| old[i].take()).collect();
    }
    Ok(())
}

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
fn simulated_error(
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
                if let Some(super::proto::TypeProto {
                    value: Some(super::proto::type_proto::Value::TensorType(t)),
                    ..
                }) = vi.r#type.as_mut()
                {
                    t.shape = None;
                }
                g.output.push(vi);
            }
        }
    }
    let dir = tempfile_dir()?;
    let tmp = dir.join("calibration.onnx");
    save_model(&tmp, &model)?;
    let opts = SessionOptions {
        threads,
        ..Default::default()
    };
    let mut s = runtime::open_session(&tmp, &opts)?;
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
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ActivationStats {
        amax,
        alpha,
        samples,
    })
}

/// Counts the operator types of the graph ONNX Runtime actually runs after its optimizations
/// (e.g. to check that `DynamicQuantizeMatMul` was fused). Writes the optimized model to a temp file.
pub fn fused_op_counts(path: &Path) -> Result<BTreeMap<String, usize>, OnnxError> {
    let dir = tempfile_dir()?;
    let opt = dir.join("optimized.onnx");
    let opts = SessionOptions {
        optimized_model_path: Some(opt.clone()),
        threads: Some(1),
        ..Default::default()
    };
    let s = runtime::open_session(path, &opts)?;
    drop(s);
    let m = load_model(&opt)?;
    let _ = std::fs::remove_dir_all(&dir);
    let mut counts = BTreeMap::new();
    for n in &m.graph.unwrap_or_default().node {
        *counts
            .entry(n.op_type.clone().unwrap_or_default())
            .or_insert(0) += 1;
    }
    Ok(counts)
}

fn tempfile_dir() -> Result<PathBuf, OnnxError> {
    let d = std::env::temp_dir().join(format!(
        "edgetune-ort-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
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
    let opts = SessionOptions {
        threads,
        ..Default::default()
    };
    let mut a = runtime::open_session(fp32, &opts)?;
    let mut b = runtime::open_session(int8, &opts)?;
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
    let opts = SessionOptions {
        threads: Some(threads),
        ..Default::default()
    };
    let mut sessions = paths
        .iter()
        .map(|p| runtime::open_session(p, &opts))
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
    /// Activation smoothing strength (`None` or 0 = off); statistics come from `calibration`.
    pub smooth_alpha: Option<f32>,
    /// Calibration sentences for smoothing (default: the built-in samples).
    pub calibration: Option<Vec<String>>,
    /// Choose the smoothing strength per activation by simulating the int8 MatMuls on calibration
    /// rows (see [`ActivationStats::samples`]); false = `smooth_alpha` everywhere.
    pub auto_alpha: bool,
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
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| opts.model_dir.join(INT8_FILE));
    let tok = runtime::load_tokenizer(&opts.model_dir.join(TOKENIZER_FILE))?;
    let mut quant = opts.quant.clone();
    let alpha = opts.smooth_alpha.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&alpha) {
        return Err(OnnxError::Invalid(format!(
            "smoothing alpha {alpha} must be in [0, 1]"
        )));
    }
    if quant.outlier_ratio.is_nan() || quant.outlier_ratio < 0.0 {
        return Err(OnnxError::Invalid(format!(
            "outlier ratio {} must be >= 0",
            quant.outlier_ratio
        )));
    }
    if alpha > 0.0 || quant.outlier_ratio > 0.0 {
        let cal: Vec<String> = match &opts.calibration {
            Some(c) if !c.is_empty() => c.clone(),
            _ => super::import::VERIFY_SENTENCES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        };
        let refs: Vec<&str> = cal.iter().map(String::as_str).collect();
        let mut stats = activation_stats(&src, &tok, &refs, alpha, opts.threads)?;
        if !opts.auto_alpha || alpha == 0.0 {
            stats.samples.clear();
        }
        quant.smooth = Some(stats);
    }
    let mut model = load_model(&src)?;
    let summary = quantize_model(&mut model, &quant)?;
    if summary.quantized.is_empty() {
        return Err(OnnxError::Graph {
            path: src.display().to_string(),
            message: "no weight MatMul to quantize".into(),
        });
    }
    super::set_metadata(
        &mut model,
        "edgetune.quantization",
        &format!(
            "dynamic int8, {} weights, {} bit, {} MatMuls int8, {} fp32, smoothing alpha {}, {} outlier channels fp32",
            if opts.quant.per_channel {
                "per-channel"
            } else {
                "per-tensor"
            },
            if opts.quant.reduce_range { 7 } else { 8 },
            summary.quantized.len(),
            summary.kept_fp32.len(),
            alpha,
            summary.outlier_channels
        ),
    );
    save_model(&out, &model)?;
    let counts = fused_op_counts(&out)?;
    let fused = counts.get("DynamicQuantizeMatMul").copied().unwrap_or(0)
        + counts.get("MatMulIntegerToFloat").copied().unwrap_or(0);
    let unfused = counts.get("MatMulInteger").copied().unwrap_or(0);
    let sentences: Vec<String> = match &opts.sentences {
        Some(s) if !s.is_empty() => s.clone(),
        _ => super::import::VERIFY_SENTENCES
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let fid = fidelity(&src, &out, &tok, &refs, opts.threads)?;
    let speed = if opts.measure_speed {
        let t = opts.threads.unwrap_or(2);
        let v = throughput(&[&src, &out], &tok, &refs, 32, t, 5)?;
        Some((v[0], v[1]))
    } else {
        None
    };
    let warning = (fid.mean_cosine < opts.warn_cosine).then(|| {
        format!(
            "fidelity below threshold: mean pooled cosine {:.4} < {:.4} (min {:.4}); keep sensitive MatMuls fp32 with --keep-fp32",
            fid.mean_cosine, opts.warn_cosine, fid.min_cosine
        )
    });
    let report = QuantizeReport {
        out: out.clone(),
        summary,
        fidelity: fid,
        fused_nodes: fused,
        unfused_nodes: unfused,
        speed,
        warning,
    };
    // Record in the manifest when the output is inside the model directory.
    if let Ok(mut m) = Manifest::load(&opts.model_dir) {
        if out.parent() == Some(opts.model_dir.as_path()) {
            let name = out
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
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
    let opts = SessionOptions {
        threads,
        ..Default::default()
    };
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
    let _ = std::fs::remove_dir_all(&dir);
    rows.sort_by(|a, b| b.fidelity.mean_cosine.total_cmp(&a.fidelity.mean_cosine));
    Ok((all, rows))
}
