//! Embedding tables in int8: per-row symmetric scales, dequantized by standard ONNX operators where
//! the table is read.
//!
//! A float table `T [rows, width]` read only by `Gather` (axis 0) or `Slice` (on axis 0) becomes
//! `T.q` (int8) and `T.scale` (f32 `[rows]`, `max |row| / 127`); each reader is repeated on both,
//! and its output is `Cast(float)(reader(T.q)) * Unsqueeze(reader(T.scale), -1)`: the same rows,
//! each within half a step of its own scale. The word-embedding table of MiniLM (30,522 x 384) is
//! three quarters of its fp32 weights.

use std::collections::HashMap;

use super::error::QuantizeError;
use crate::graph::proto::{tensor_proto::DataType, GraphProto, ModelProto, NodeProto};
use crate::graph::{attr_int, get_attr, tensor, tensor_to_f32, tensor_to_i64};

/// Tables smaller than this many elements stay fp32 (the token-type table, 2 x 384, would save a
/// few KiB for three extra nodes).
pub const MIN_TABLE_ELEMENTS: usize = 1 << 16;

/// The nodes reading initializer `name`, when every one reads whole rows of it (`Gather` on axis
/// 0, `Slice` along axis 0), else `None`.
fn readers(g: &GraphProto, name: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for (i, n) in g.node.iter().enumerate() {
        let uses: Vec<usize> = n
            .input
            .iter()
            .enumerate()
            .filter(|(_, x)| x.as_str() == name)
            .map(|(k, _)| k)
            .collect();
        if uses.is_empty() {
            continue;
        }
        if uses != [0] {
            return None;
        }
        match n.op_type.as_deref() {
            Some("Gather") => {
                let axis = get_attr(n, "axis").and_then(|a| a.i).unwrap_or(0);
                if axis != 0 {
                    return None;
                }
                out.push(i);
            }
            Some("Slice") => {
                // Only slices along the rows: `axes` absent (then starts has one entry) or [0].
                let axes = match n.input.get(3).filter(|a| !a.is_empty()) {
                    Some(a) => g
                        .initializer
                        .iter()
                        .find(|t| t.name.as_deref() == Some(a.as_str()))
                        .and_then(|t| tensor_to_i64(t).ok())?,
                    None => vec![0],
                };
                if axes != [0] {
                    return None;
                }
                out.push(i);
            }
            _ => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Per-row symmetric int8: `(values, scales)` with `scale = max |row| / 127` (1 for a zero row).
pub fn quantize_rows(t: &[f32], rows: usize, width: usize) -> (Vec<i8>, Vec<f32>) {
    let mut q = Vec::with_capacity(t.len());
    let mut scales = Vec::with_capacity(rows);
    for r in 0..rows {
        let row = &t[r * width..(r + 1) * width];
        let m = row.iter().fold(0f32, |a, v| a.max(v.abs()));
        let s = if m > 0.0 && m.is_finite() {
            m / 127.0
        } else {
            1.0
        };
        scales.push(s);
        q.extend(
            row.iter()
                .map(|v| (v / s).round().clamp(-127.0, 127.0) as i8),
        );
    }
    (q, scales)
}

/// Quantizes every float 2-D initializer of at least `min_elements` that is read only by whole
/// rows; returns the names of the tables quantized.
pub fn quantize_embeddings(
    model: &mut ModelProto,
    min_elements: usize,
) -> Result<Vec<String>, QuantizeError> {
    let g = model
        .graph
        .as_mut()
        .ok_or_else(|| QuantizeError::graph("model has no graph"))?;
    let candidates: Vec<(usize, String)> = g
        .initializer
        .iter()
        .enumerate()
        .filter(|(_, t)| {
            t.data_type == Some(DataType::Float as i32)
                && t.dims.len() == 2
                && t.dims.iter().all(|&d| d > 0)
                && (t.dims[0] as usize).saturating_mul(t.dims[1] as usize) >= min_elements
        })
        .filter_map(|(i, t)| t.name.clone().map(|n| (i, n)))
        .collect();
    let mut done = Vec::new();
    // Replacement nodes, by the index of the node they replace.
    let mut replace: HashMap<usize, Vec<NodeProto>> = HashMap::new();
    let mut dead: Vec<usize> = Vec::new();
    for (ti, name) in candidates {
        let Some(rd) = readers(g, &name) else {
            continue;
        };
        if rd.iter().any(|i| replace.contains_key(i)) {
            continue;
        }
        let t = &g.initializer[ti];
        let (rows, width) = (t.dims[0] as usize, t.dims[1] as usize);
        let values = tensor_to_f32(t)?;
        let (q, scales) = quantize_rows(&values, rows, width);
        let table = Table::new(&name);
        g.initializer
            .push(tensor(&table.q, &[rows as i64, width as i64], &q));
        g.initializer
            .push(tensor(&table.scale, &[rows as i64], &scales));
        g.initializer.push(tensor(&table.axes, &[1], &[-1i64]));
        for (k, ni) in rd.iter().enumerate() {
            replace.insert(*ni, table.read(&g.node[*ni], k));
        }
        dead.push(ti);
        done.push(name);
    }
    if done.is_empty() {
        return Ok(done);
    }
    let old = std::mem::take(&mut g.node);
    for (i, n) in old.into_iter().enumerate() {
        match replace.remove(&i) {
            Some(new) => g.node.extend(new),
            None => g.node.push(n),
        }
    }
    dead.sort_unstable();
    for ti in dead.into_iter().rev() {
        g.initializer.remove(ti);
    }
    Ok(done)
}

/// The initializers of an int8 table: its rows, their scales, the axes that unsqueeze them.
struct Table {
    name: String,
    q: String,
    scale: String,
    axes: String,
}

impl Table {
    fn new(name: &str) -> Self {
        Table {
            name: name.to_string(),
            q: format!("{name}.q"),
            scale: format!("{name}.scale"),
            axes: format!("{name}.scale_axes"),
        }
    }

    /// The nodes replacing the `k`-th reader `node` of the float table: the same read on the
    /// int8 rows and on their scales, then `Cast(rows) * Unsqueeze(scales)` into its output.
    fn read(&self, node: &NodeProto, k: usize) -> Vec<NodeProto> {
        let y = node.output.first().cloned().unwrap_or_default();
        let base = format!("{}.read{k}", self.name);
        let with_input = |first: &str, out: &str, suffix: &str| {
            let mut n = node.clone();
            n.input[0] = first.to_string();
            n.output = vec![out.to_string()];
            n.name = Some(format!("{base}.{suffix}"));
            n
        };
        let op = |op: &str, inputs: &[&str], out: &str, suffix: &str, attrs| NodeProto {
            op_type: Some(op.to_string()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.to_string()],
            name: Some(format!("{base}.{suffix}")),
            attribute: attrs,
            ..Default::default()
        };
        let (yq, ys) = (format!("{base}.q"), format!("{base}.scale"));
        let (yf, ys1) = (format!("{base}.float"), format!("{base}.scale1"));
        let to_float = vec![attr_int("to", DataType::Float as i64)];
        vec![
            with_input(&self.q, &yq, "rows_q"),
            with_input(&self.scale, &ys, "rows_scale"),
            op("Cast", &[&yq], &yf, "cast", to_float),
            op("Unsqueeze", &[&ys, &self.axes], &ys1, "unsqueeze", vec![]),
            op("Mul", &[&yf, &ys1], &y, "dequantize", vec![]),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_to_their_own_scale() {
        let t = [1.0, -0.5, 0.25, 0.0, 0.0, 0.0, 100.0, 1.0, -127.0];
        let (q, s) = quantize_rows(&t, 3, 3);
        assert_eq!(s, vec![1.0 / 127.0, 1.0, 1.0]);
        assert_eq!(&q[..3], &[127, -64, 32]);
        assert_eq!(&q[3..6], &[0, 0, 0]);
        assert_eq!(&q[6..], &[100, 1, -127]);
        for (r, row) in t.chunks(3).enumerate() {
            for (c, v) in row.iter().enumerate() {
                let back = q[r * 3 + c] as f32 * s[r];
                assert!((back - v).abs() <= s[r] / 2.0 + 1e-6, "{v} -> {back}");
            }
        }
    }
}
