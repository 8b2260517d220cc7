//! The graph rewrite: weight MatMuls into dynamic int8, with smoothing and the outlier split.

use std::collections::HashMap;

use super::embeddings::{quantize_embeddings, MIN_TABLE_ELEMENTS};
use super::error::QuantizeError;
use super::options::{pattern_matches, ActivationStats, QuantizeOptions, QuantizeSummary};
use super::outliers::outlier_channels;
use crate::graph::proto::{tensor_proto::DataType, GraphProto, ModelProto, NodeProto};
use crate::graph::{self, attr_int, tensor, tensor_to_f32, GraphBuilder};

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

/// Rewrites the weight MatMuls of `model` into the dynamic-int8 pattern (see module docs): the
/// MatMuls to quantize are chosen, their outlier channels and smoothing factors planned from the
/// calibration, each replaced in place by its int8 nodes, the fp32 weights no node reads any more
/// dropped, and (when asked) the embedding tables stored as int8.
pub fn quantize_model(
    model: &mut ModelProto,
    opts: &QuantizeOptions,
) -> Result<QuantizeSummary, QuantizeError> {
    let targets = weight_matmuls(model);
    let g = model
        .graph
        .take()
        .ok_or_else(|| QuantizeError::graph("model has no graph"))?;
    let mut summary = QuantizeSummary::default();
    let plan = Plan::new(&g, targets, opts, &mut summary)?;
    let mut rw = Rewrite::new(GraphBuilder::from_graph(g));
    for &(ni, wi) in &plan.chosen {
        rw.matmul(ni, wi, &plan, &mut summary);
    }
    summary.smoothed_activations = plan.smooth.len();
    rw.splice();
    add_outliers_after_bias(&mut rw.b.graph, &rw.outlier_adds)?;
    drop_unused(&mut rw.b.graph, rw.dead_inits);
    model.graph = Some(rw.b.graph);
    // DynamicQuantizeLinear/MatMulInteger need opset 11; our graphs are 17.
    if graph::default_opset(model) < 11 {
        return Err(QuantizeError::graph(
            "model opset < 11 cannot hold DynamicQuantizeLinear",
        ));
    }
    if opts.int8_embeddings {
        // `Unsqueeze` takes its axes as an input from opset 13 on.
        if graph::default_opset(model) < 13 {
            return Err(QuantizeError::Invalid(
                "int8 embeddings need opset 13 or later; pass --fp32-embeddings".into(),
            ));
        }
        summary.int8_embeddings = quantize_embeddings(model, MIN_TABLE_ELEMENTS)?;
    }
    Ok(summary)
}

/// What the rewrite does to each quantized MatMul, decided before the graph changes.
struct Plan {
    /// (node, weight initializer) of every MatMul to quantize, in graph order.
    chosen: Vec<(usize, usize)>,
    /// Their fp32 weights by initializer index, with their `[k, n]` shape.
    weights: HashMap<usize, (Vec<f32>, usize, usize)>,
    /// Per activation: its input channels split off into fp32.
    outliers: HashMap<String, Vec<usize>>,
    /// Per activation: its smoothing factors `s` (X / s, W rows * s).
    smooth: HashMap<String, Vec<f32>>,
    qmax: i32,
    per_channel: bool,
}

impl Plan {
    fn new(
        g: &GraphProto,
        targets: Vec<(usize, usize)>,
        opts: &QuantizeOptions,
        summary: &mut QuantizeSummary,
    ) -> Result<Self, QuantizeError> {
        let chosen = choose(g, targets, opts, summary);
        let mut weights = HashMap::new();
        for &(_, wi) in &chosen {
            let t = &g.initializer[wi];
            let (k, n) = (t.dims[0].max(0) as usize, t.dims[1].max(0) as usize);
            weights.insert(wi, (tensor_to_f32(t)?, k, n));
        }
        let mut plan = Plan {
            chosen,
            weights,
            outliers: HashMap::new(),
            smooth: HashMap::new(),
            qmax: if opts.reduce_range { 63 } else { 127 },
            per_channel: opts.per_channel,
        };
        if let Some(stats) = &opts.calibration {
            if opts.outlier_ratio > 0.0 {
                plan.outliers = plan.outlier_channels(g, stats, opts.outlier_ratio);
            }
            plan.smooth = plan.smoothing(g, stats);
        }
        Ok(plan)
    }

    /// The activation (first input) of node `ni`.
    fn input(g: &GraphProto, ni: usize) -> &String {
        &g.node[ni].input[0]
    }

    /// Outlier channels per activation, from the calibration maxima.
    fn outlier_channels(
        &self,
        g: &GraphProto,
        stats: &ActivationStats,
        ratio: f32,
    ) -> HashMap<String, Vec<usize>> {
        let mut out = HashMap::new();
        for &(ni, _) in &self.chosen {
            let x = Self::input(g, ni);
            if let Some(am) = stats.amax.get(x) {
                let o = outlier_channels(am, ratio);
                if !o.is_empty() {
                    out.insert(x.clone(), o);
                }
            }
        }
        out
    }

    /// Activation smoothing: per input channel j, `s_j = amax(X_j)^a / amax(W_j,:)^(1-a)`; X is
    /// multiplied by 1/s (one Mul) and the weight rows by s, which is exact in fp32. With
    /// calibration samples the strength `a` is chosen per activation by simulating its MatMuls.
    fn smoothing(&self, g: &GraphProto, stats: &ActivationStats) -> HashMap<String, Vec<f32>> {
        let mut smooth = HashMap::new();
        for (x, wm) in self.weight_row_max(g) {
            let Some(am) = stats.amax.get(&x).filter(|a| a.len() == wm.len()) else {
                continue;
            };
            // Split-off channels leave the int8 path: no factor for them, and the simulation
            // sees them as zero (their fp32 product is exact).
            let out_ch: &[usize] = self.outliers.get(&x).map(Vec::as_slice).unwrap_or(&[]);
            let mut am = am.clone();
            for &j in out_ch {
                am[j] = 0.0;
            }
            let k = wm.len();
            let f = match stats
                .samples
                .get(&x)
                .filter(|s| !s.is_empty() && s.len() % k == 0)
            {
                Some(sample) => self.best_factors(g, &x, sample, &am, &wm, stats.alpha, out_ch),
                None => factors(&am, &wm, stats.alpha),
            };
            if f.iter().any(|&v| v != 1.0) {
                smooth.insert(x, f);
            }
        }
        smooth
    }

    /// Per activation: the largest |w| of each row (input channel) over the weights it feeds.
    fn weight_row_max(&self, g: &GraphProto) -> HashMap<String, Vec<f32>> {
        let mut wmax: HashMap<String, Vec<f32>> = HashMap::new();
        for &(ni, wi) in &self.chosen {
            let (w, k, n) = &self.weights[&wi];
            let e = wmax
                .entry(Self::input(g, ni).clone())
                .or_insert_with(|| vec![0f32; *k]);
            if e.len() != *k {
                continue;
            }
            for (r, m) in e.iter_mut().enumerate() {
                for c in 0..*n {
                    *m = m.max(w[r * n + c].abs());
                }
            }
        }
        wmax
    }

    /// The smoothing factors of activation `x` whose simulated int8 MatMuls (on the calibration
    /// `sample`, outlier channels zeroed) err least, among strengths `{0, a/2, a, (1+a)/2}`.
    #[allow(clippy::too_many_arguments)]
    fn best_factors(
        &self,
        g: &GraphProto,
        x: &str,
        sample: &[f32],
        am: &[f32],
        wm: &[f32],
        a: f32,
        out_ch: &[usize],
    ) -> Vec<f32> {
        let k = wm.len();
        let mut sample = sample.to_vec();
        for row in sample.chunks_mut(k) {
            for &j in out_ch {
                row[j] = 0.0;
            }
        }
        let stripped: Vec<(Vec<f32>, usize)> = self
            .chosen
            .iter()
            .filter(|&&(ni, _)| Self::input(g, ni) == x)
            .map(|&(_, wi)| {
                let (w, _, n) = &self.weights[&wi];
                let mut w = w.clone();
                for &j in out_ch {
                    w[j * n..(j + 1) * n].iter_mut().for_each(|v| *v = 0.0);
                }
                (w, *n)
            })
            .collect();
        let group: Vec<(&[f32], usize)> =
            stripped.iter().map(|(w, n)| (w.as_slice(), *n)).collect();
        let mut best: Option<(f64, Vec<f32>)> = None;
        for cand in [0.0, a / 2.0, a, (1.0 + a) / 2.0] {
            let f = factors(am, wm, cand);
            let e = simulated_error(&sample, k, &group, &f, self.qmax, self.per_channel);
            if best.as_ref().is_none_or(|(b, _)| e < *b) {
                best = Some((e, f));
            }
        }
        best.map(|(_, f)| f).unwrap_or_else(|| vec![1.0; k])
    }
}

/// The weight MatMuls to quantize; those matching `--keep-fp32` patterns (by node, weight or
/// output name) are recorded as kept.
fn choose(
    g: &GraphProto,
    targets: Vec<(usize, usize)>,
    opts: &QuantizeOptions,
    summary: &mut QuantizeSummary,
) -> Vec<(usize, usize)> {
    let mut chosen = Vec::new();
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
    chosen
}

/// Smoothing factors at strength `alpha`, each within `1e-4..=1e4` (1 where a channel is silent).
fn factors(am: &[f32], wm: &[f32], alpha: f32) -> Vec<f32> {
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
}

/// The graph being rewritten and what is shared between the MatMuls of one activation.
struct Rewrite {
    b: GraphBuilder,
    /// The replacement nodes of each quantized node.
    replaced: HashMap<usize, Vec<NodeProto>>,
    /// Per activation: its `DynamicQuantizeLinear` outputs (quantized, scale, zero point).
    dql: HashMap<String, (String, String, String)>,
    /// Per activation: its gathered outlier channels.
    gathered: HashMap<String, String>,
    /// (int8 result, fp32 outlier product, sum) of each split MatMul.
    outlier_adds: Vec<(String, String, String)>,
    /// The fp32 weights replaced (dropped unless another node reads them).
    dead_inits: Vec<usize>,
}

impl Rewrite {
    fn new(b: GraphBuilder) -> Self {
        Rewrite {
            b,
            replaced: HashMap::new(),
            dql: HashMap::new(),
            gathered: HashMap::new(),
            outlier_adds: Vec::new(),
            dead_inits: Vec::new(),
        }
    }

    /// Replaces MatMul `ni` (weight `wi`) by its int8 nodes, plus the fp32 product of the split-off
    /// channels when there are any.
    fn matmul(&mut self, ni: usize, wi: usize, plan: &Plan, summary: &mut QuantizeSummary) {
        let node = self.b.graph.node[ni].clone();
        let wname = self.b.graph.initializer[wi]
            .name
            .clone()
            .unwrap_or_default();
        let (w, k, n) = plan.weights[&wi].clone();
        let x = node.input[0].clone();
        let out_ch: Vec<usize> = plan.outliers.get(&x).cloned().unwrap_or_default();
        let (w, w_out) = split_weight(w, n, &out_ch, plan.smooth.get(&x));
        let (q, scales) = quantize_weight(&w, k, n, plan.per_channel, plan.qmax);
        let y = node.output.first().cloned().unwrap_or_default();
        let before = self.b.graph.node.len();
        let (xq, xs, xzp) = self.quantized_input(&x, k, plan, &out_ch, summary);
        let b = &mut self.b;
        let wq = b.initializer(tensor(&format!("{wname}.int8"), &[k as i64, n as i64], &q));
        let ws = b.initializer(tensor(&format!("{wname}.scale"), &[n as i64], &scales));
        let zeros = vec![0i8; n];
        let wzp = b.initializer(tensor(&format!("{wname}.zero_point"), &[n as i64], &zeros));
        let mmi = b.op_as(
            "MatMulInteger",
            &[&xq, &wq, &xzp, &wzp],
            vec![],
            &format!("{y}.int32"),
        );
        let to_float = vec![attr_int("to", DataType::Float as i64)];
        let cast = b.op_as("Cast", &[&mmi], to_float, &format!("{y}.cast"));
        let scale = b.op_as("Mul", &[&xs, &ws], vec![], &format!("{y}.scale"));
        if out_ch.is_empty() {
            b.node_named("Mul", &[&cast, &scale], &[&y], vec![]);
        } else {
            let xo = self.gathered_outliers(&x, &out_ch, summary);
            let yq = self
                .b
                .op_as("Mul", &[&cast, &scale], vec![], &format!("{y}.int8"));
            self.add_outlier_product(&xo, (&wname, &w_out, n, out_ch.len()), yq, &y);
        }
        let new_nodes = self.b.graph.node.drain(before..).collect();
        self.replaced.insert(ni, new_nodes);
        self.dead_inits.push(wi);
        summary.quantized.push(node_label(&node));
    }

    /// The `DynamicQuantizeLinear` of activation `x` (made by its first MatMul, shared by the
    /// others): of `x` itself, or of `x / s` with outlier channels zeroed.
    fn quantized_input(
        &mut self,
        x: &str,
        k: usize,
        plan: &Plan,
        out_ch: &[usize],
        summary: &mut QuantizeSummary,
    ) -> (String, String, String) {
        if let Some(t) = self.dql.get(x) {
            return t.clone();
        }
        let b = &mut self.b;
        let smooth = plan.smooth.get(x);
        let input = if smooth.is_some() || !out_ch.is_empty() {
            let mut inv: Vec<f32> = match smooth {
                Some(f) => f.iter().map(|v| 1.0 / v).collect(),
                None => vec![1.0; k],
            };
            for &j in out_ch {
                inv[j] = 0.0;
            }
            let c = b.initializer(tensor(&format!("{x}.smooth"), &[k as i64], &inv));
            b.op_as("Mul", &[x, &c], vec![], &format!("{x}.smoothed"))
        } else {
            x.to_string()
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
        self.dql.insert(x.to_string(), t.clone());
        t
    }

    /// The outlier channels of activation `x`, gathered once per activation.
    fn gathered_outliers(
        &mut self,
        x: &str,
        out_ch: &[usize],
        summary: &mut QuantizeSummary,
    ) -> String {
        if let Some(t) = self.gathered.get(x) {
            return t.clone();
        }
        let ids: Vec<i64> = out_ch.iter().map(|&j| j as i64).collect();
        let name = format!("{x}.outlier_channels");
        let idx = self.b.initializer_i64(&name, &[ids.len() as i64], &ids);
        let axis = vec![attr_int("axis", -1)];
        let t = self
            .b
            .op_as("Gather", &[x, &idx], axis, &format!("{x}.outliers"));
        summary.outlier_channels += out_ch.len();
        self.gathered.insert(x.to_string(), t.clone());
        t
    }

    /// `y = yq + xo · W_out`: the gathered outlier channels `xo` times their unscaled weight rows,
    /// in fp32.
    fn add_outlier_product(
        &mut self,
        xo: &str,
        (wname, w_out, n, rows): (&str, &[f32], usize, usize),
        yq: String,
        y: &str,
    ) {
        let b = &mut self.b;
        let dims = [rows as i64, n as i64];
        let wo = b.initializer(tensor(&format!("{wname}.outlier_rows"), &dims, w_out));
        let yo = b.op_as("MatMul", &[xo, &wo], vec![], &format!("{y}.outliers"));
        b.node_named("Add", &[&yq, &yo], &[y], vec![]);
        self.outlier_adds.push((yq, yo, y.to_string()));
    }

    /// Splices the replacements in place of the original nodes (keeps a topological order as long
    /// as each DynamicQuantizeLinear is emitted before its first consumer, which holds because the
    /// first replaced MatMul of an activation carries it).
    fn splice(&mut self) {
        let old = std::mem::take(&mut self.b.graph.node);
        for (i, n) in old.into_iter().enumerate() {
            match self.replaced.remove(&i) {
                Some(new) => self.b.graph.node.extend(new),
                None => self.b.graph.node.push(n),
            }
        }
    }
}

/// The weight for the int8 product (outlier rows zeroed, rows scaled by the smoothing factors)
/// and the outlier rows, unscaled, for the fp32 product.
fn split_weight(
    mut w: Vec<f32>,
    n: usize,
    out_ch: &[usize],
    smooth: Option<&Vec<f32>>,
) -> (Vec<f32>, Vec<f32>) {
    let mut w_out = Vec::with_capacity(out_ch.len() * n);
    for &j in out_ch {
        w_out.extend_from_slice(&w[j * n..(j + 1) * n]);
        w[j * n..(j + 1) * n].iter_mut().for_each(|v| *v = 0.0);
    }
    if let Some(f) = smooth {
        for (r, row) in w.chunks_mut(n.max(1)).enumerate() {
            row.iter_mut().for_each(|v| *v *= f[r]);
        }
    }
    (w, w_out)
}

/// Drops the fp32 weights no node uses any more (a weight shared with a kept MatMul stays).
fn drop_unused(g: &mut GraphProto, mut dead: Vec<usize>) {
    let used: std::collections::HashSet<&str> = g
        .node
        .iter()
        .flat_map(|n| n.input.iter().map(String::as_str))
        .collect();
    dead.sort_unstable();
    dead.dedup();
    let dead: Vec<usize> = dead
        .into_iter()
        .filter(|&wi| {
            !g.initializer[wi]
                .name
                .as_deref()
                .is_some_and(|n| used.contains(n))
        })
        .collect();
    for wi in dead.into_iter().rev() {
        g.initializer.remove(wi);
    }
}

/// Moves each outlier `Add(int8, fp32)` behind the MatMul's bias `Add` when the MatMul output has
/// no other use: `(int8 + bias) + fp32` instead of `(int8 + fp32) + bias`, so that ONNX Runtime
/// can fold the bias into its fused int8 MatMul. Restores a topological node order.
fn add_outliers_after_bias(
    g: &mut GraphProto,
    adds: &[(String, String, String)],
) -> Result<(), QuantizeError> {
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
