//! The graph rewrite: weight MatMuls into dynamic int8, with smoothing and the outlier split.

use std::collections::HashMap;

use super::embeddings::{quantize_embeddings, MIN_TABLE_ELEMENTS};
use super::options::{pattern_matches, QuantizeOptions, QuantizeSummary};
use super::outliers::outlier_channels;
use crate::graph::proto::{tensor_proto::DataType, ModelProto, NodeProto};
use crate::graph::{self, attr_int, tensor, tensor_to_f32, GraphBuilder, OnnxError};

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

pub fn node_label(n: &NodeProto) -> String {
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
    if let Some(stats) = opts
        .calibration
        .as_ref()
        .filter(|_| opts.outlier_ratio > 0.0)
    {
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
    if let Some(stats) = &opts.calibration {
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
    if opts.int8_embeddings {
        // `Unsqueeze` takes its axes as an input from opset 13 on.
        if graph::default_opset(model) < 13 {
            return Err(OnnxError::Invalid(
                "int8 embeddings need opset 13 or later; pass --fp32-embeddings".into(),
            ));
        }
        summary.int8_embeddings = quantize_embeddings(model, MIN_TABLE_ELEMENTS)?;
    }
    Ok(summary)
}

/// Moves each outlier `Add(int8, fp32)` behind the MatMul's bias `Add` when the MatMul output has
/// no other use: `(int8 + bias) + fp32` instead of `(int8 + fp32) + bias`, so that ONNX Runtime
/// can fold the bias into its fused int8 MatMul. Restores a topological node order.
fn add_outliers_after_bias(
    g: &mut crate::graph::proto::GraphProto,
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
