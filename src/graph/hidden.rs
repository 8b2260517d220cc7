//! Exposing an encoder's intermediate hidden states as graph outputs.
//!
//! Hidden state `k` is the embedding output for `k = 0` and the output of transformer layer `k` for
//! `1 <= k <= L`. Graphs written by `edgetune import` (`crate::onnx::import`) record the tensor of each hidden state in
//! `metadata_props` (`edgetune.hidden_state_tensor.{k}`). For foreign exports with fused
//! `LayerNormalization`, the LayerNormalization nodes in topological order number `2L + 1` (embedding
//! LN, then attention-output LN and FFN-output LN per layer) and hidden state `k` is LN number `2k`.

use std::collections::HashSet;

use super::builder::{value_info_shape, Dim};
use super::error::OnnxError;
use super::io::metadata_value;
use super::proto::{tensor_proto::DataType, ModelProto, NodeProto};
use super::walk;

/// Metadata key holding the layer count in graphs written by edgetune.
pub const META_NUM_LAYERS: &str = "edgetune.num_layers";
/// Metadata key holding the hidden size in graphs written by edgetune.
pub const META_HIDDEN_SIZE: &str = "edgetune.hidden_size";
/// Metadata key prefix naming the tensor of hidden state `k` (`edgetune.hidden_state_tensor.{k}`).
pub const META_HIDDEN_TENSOR: &str = "edgetune.hidden_state_tensor.";

/// The graph-output name of hidden state `k`: `hidden_state_{k}`.
pub fn hidden_state_name(k: usize) -> String {
    format!("hidden_state_{k}")
}

fn layer_norms(model: &ModelProto) -> Result<Vec<&NodeProto>, OnnxError> {
    let g = model
        .graph
        .as_ref()
        .ok_or_else(|| OnnxError::graph("model has no graph"))?;
    let order = walk::topological_order(g)?;
    Ok(order
        .into_iter()
        .map(|i| &g.node[i])
        .filter(|n| {
            n.op_type.as_deref() == Some("LayerNormalization")
                && n.domain.as_deref().unwrap_or("").is_empty()
        })
        .collect())
}

/// Number of transformer layers `L` of an encoder graph: from edgetune's metadata when present,
/// else from the `2L + 1` fused `LayerNormalization` nodes.
pub fn count_layers(model: &ModelProto) -> Result<usize, OnnxError> {
    if let Some(v) = metadata_value(model, META_NUM_LAYERS) {
        return v.parse().map_err(|_| {
            OnnxError::graph(format!(
                "metadata {META_NUM_LAYERS} = {v:?} is not a number"
            ))
        });
    }
    let n = layer_norms(model)?.len();
    if n == 0 || n % 2 == 0 {
        return Err(OnnxError::graph(format!(
            "cannot count layers: expected 2L+1 fused LayerNormalization nodes (opset >= 17), found {n}; \
             graphs with decomposed layer norms are not supported"
        )));
    }
    Ok((n - 1) / 2)
}

/// Names of the tensors holding hidden states `0..=L`.
pub fn hidden_state_tensors(model: &ModelProto) -> Result<Vec<String>, OnnxError> {
    let l = count_layers(model)?;
    if metadata_value(model, &format!("{META_HIDDEN_TENSOR}0")).is_some() {
        return (0..=l)
            .map(|k| {
                metadata_value(model, &format!("{META_HIDDEN_TENSOR}{k}"))
                    .map(str::to_string)
                    .ok_or_else(|| {
                        OnnxError::graph(format!("metadata {META_HIDDEN_TENSOR}{k} missing"))
                    })
            })
            .collect();
    }
    let lns = layer_norms(model)?;
    // `l` may come from the file's metadata: any count, so no arithmetic that can overflow.
    if l.checked_mul(2).and_then(|n| n.checked_add(1)) != Some(lns.len()) {
        return Err(OnnxError::graph(format!(
            "expected 2L + 1 LayerNormalization nodes for L = {l} layers, found {}",
            lns.len()
        )));
    }
    (0..=l)
        .map(|k| {
            lns[2 * k]
                .output
                .first()
                .cloned()
                .ok_or_else(|| OnnxError::graph("LayerNormalization node without output"))
        })
        .collect()
}

/// Hidden size of the encoder: edgetune metadata, else the length of the first LayerNormalization
/// scale initializer; `None` if neither is found.
fn hidden_size(model: &ModelProto) -> Option<i64> {
    if let Some(v) = metadata_value(model, META_HIDDEN_SIZE).and_then(|v| v.parse().ok()) {
        return Some(v);
    }
    let g = model.graph.as_ref()?;
    let ln = layer_norms(model).ok()?.into_iter().next()?;
    let scale = ln.input.get(1)?;
    if let Some(t) = g
        .initializer
        .iter()
        .find(|t| t.name.as_ref() == Some(scale))
    {
        return t.dims.last().copied();
    }
    // int8-storage exports compute the scale (Cast/Mul of a quantized initializer): look one hop back.
    let prod = walk::producers(g);
    let node = &g.node[*prod.get(scale)?];
    node.input
        .iter()
        .filter_map(|i| g.initializer.iter().find(|t| t.name.as_ref() == Some(i)))
        .filter_map(|t| t.dims.last().copied())
        .max()
}

/// Adds graph outputs `hidden_state_{k}` (float, `[batch, sequence, hidden]`) for each `k` in
/// `states` via `Identity` nodes, and returns their names in the order of `states`. Outputs already
/// present are kept, not duplicated. `k` must be in `0..=L`.
pub fn expose_hidden_states(
    model: &mut ModelProto,
    states: &[usize],
) -> Result<Vec<String>, OnnxError> {
    let tensors = hidden_state_tensors(model)?;
    let l = tensors.len() - 1;
    if let Some(&bad) = states.iter().find(|&&k| k > l) {
        return Err(OnnxError::Invalid(format!(
            "hidden state {bad} requested, the model has 0..={l}"
        )));
    }
    let hidden = hidden_size(model);
    let g = model
        .graph
        .as_mut()
        .ok_or_else(|| OnnxError::graph("model has no graph"))?;
    // Batch/sequence dimension names from the first input, so shapes line up with the inputs.
    let (batch, seq) = g
        .input
        .first()
        .and_then(value_info_shape)
        .filter(|(_, d)| d.len() == 2)
        .map(|(_, d)| (d[0].clone(), d[1].clone()))
        .unwrap_or((Dim::param("batch"), Dim::param("sequence")));
    let hidden = hidden
        .map(Dim::Fixed)
        .unwrap_or_else(|| Dim::param("hidden"));
    let existing: HashSet<String> = g.output.iter().filter_map(|o| o.name.clone()).collect();
    let mut b = super::builder::GraphBuilder::from_graph(std::mem::take(g));
    let mut names = Vec::with_capacity(states.len());
    for &k in states {
        let name = hidden_state_name(k);
        if !existing.contains(&name) && !names.contains(&name) {
            if b.graph.node.iter().any(|n| n.output.contains(&name)) {
                return Err(OnnxError::graph(format!(
                    "a value named {name} already exists and is not an output"
                )));
            }
            b.output_as(
                &tensors[k],
                &name,
                DataType::Float,
                &[batch.clone(), seq.clone(), hidden.clone()],
            );
        }
        names.push(name);
    }
    *g = b.graph;
    Ok(names)
}
