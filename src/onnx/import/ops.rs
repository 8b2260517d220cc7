//! Small graph pieces the importer's builders share: fused layer norms and weight transposes.

use crate::graph::{attr_float, attr_int, GraphBuilder, OnnxError};
use crate::hf::Weights;

/// Transposes a row-major `[rows, cols]` matrix into `[cols, rows]`.
pub fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; w.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    t
}

/// Appends a fused `LayerNormalization` with the weights `{name}.weight` / `{name}.bias` of `w`;
/// its output is named `out` (made unique).
#[allow(clippy::too_many_arguments)]
pub fn layer_norm(
    b: &mut GraphBuilder,
    w: &Weights,
    x: &str,
    name: &str,
    h: usize,
    eps: f32,
    out: &str,
) -> Result<String, OnnxError> {
    let g = b.initializer_f32(
        &format!("{name}.weight"),
        &[h as i64],
        w.get(&format!("{name}.weight"), &[h])?,
    );
    let be = b.initializer_f32(
        &format!("{name}.bias"),
        &[h as i64],
        w.get(&format!("{name}.bias"), &[h])?,
    );
    let out = b.unique(out);
    b.node_named(
        "LayerNormalization",
        &[x, &g, &be],
        &[&out],
        vec![
            attr_int("axis", -1),
            attr_float("epsilon", eps),
            attr_int("stash_type", 1),
        ],
    );
    Ok(out)
}
