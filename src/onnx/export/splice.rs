//! Fine-tuned top layers in an ONNX encoder: the export of runs trained with `--unfreeze-top N`.
//!
//! [`build_top_layers`] writes layers `first..L` as a small standalone graph (inputs `hidden_in`, the
//! hidden state `first`, and `attention_mask`; outputs the hidden states `first+1..=L`), with the same
//! per-layer builder as the importer ([`crate::onnx::import::encoder_layer`]) and the same additive attention
//! mask (`(1 - mask) * f32::MIN`, as [`crate::backbone::layers::TopLayers::attention_bias`] uses in
//! training). It can be quantized on its own ([`crate::onnx::quantize::quantize_model`] then touches only
//! the new layers' MatMuls). [`splice_top_layers`] then replaces the backbone's layers `first..L` by
//! it: the backbone is kept exactly as it is up to hidden state `first` (the old top-layer nodes and
//! their weights are pruned), the new layers read that tensor and the backbone's `attention_mask`,
//! and the new last layer's output becomes `last_hidden_state`. The model's metadata
//! (`edgetune.hidden_state_tensor.{k}`, `edgetune.num_layers`, `edgetune.hidden_size`) names the new
//! hidden states, so [`super::merge::build_merged`] finds them like any other.

use std::collections::HashMap;

use crate::graph::hidden::{
    hidden_state_name, hidden_state_tensors, META_HIDDEN_SIZE, META_HIDDEN_TENSOR, META_NUM_LAYERS,
};
use crate::graph::proto::{tensor_proto::DataType, GraphProto, ModelProto, ValueInfoProto};
use crate::graph::{
    self, set_metadata, value_info, value_info_shape, Dim, GraphBuilder, OnnxError,
};
use crate::hf::{BertConfig, Weights};
use crate::onnx::import::{encoder_layer, LayerConstants};

/// Input of the standalone top-layer graph: hidden state `first`, float `[batch, sequence, hidden]`.
pub const TOP_INPUT: &str = "hidden_in";
/// Metadata key recording, in a spliced model, the first layer that was replaced by fine-tuned weights.
pub const META_FINE_TUNED_FROM: &str = "edgetune.fine_tuned_from_layer";
/// Prefix of the value, initializer and node names of the spliced layers.
pub const PREFIX: &str = "top/";

/// Builds layers `first..c.num_hidden_layers` (weights `encoder.layer.{i}.*` of `w`, fp32, and for
/// MPNet the relative position bias the layers share) as a standalone graph: inputs `attention_mask` (int64 `[batch, sequence]`) and [`TOP_INPUT`]; outputs
/// `hidden.{k}` for `k` in `first+1..=L`, in that order.
pub fn build_top_layers(
    c: &BertConfig,
    w: &Weights,
    first: usize,
) -> Result<ModelProto, OnnxError> {
    let l = c.num_hidden_layers;
    if first >= l {
        return Err(OnnxError::Invalid(format!(
            "cannot build layers {first}..{l}: the model has {l} layers"
        )));
    }
    let mut b = GraphBuilder::new("edgetune_top_layers");
    let (batch, seq) = (Dim::param("batch"), Dim::param("sequence"));
    let states = [batch.clone(), seq.clone(), Dim::Fixed(c.hidden_size as i64)];
    b.input("attention_mask", DataType::Int64, &[batch, seq]);
    b.input(TOP_INPUT, DataType::Float, &states);
    let consts = LayerConstants::new(&mut b, c, w, "attention_mask")?;
    let mut x = TOP_INPUT.to_string();
    for i in first..l {
        x = encoder_layer(&mut b, c, w, &consts, i, &x, &format!("hidden.{}", i + 1))?;
        b.output(&x, DataType::Float, &states);
    }
    Ok(b.into_model("edgetune"))
}

/// Replaces layers `first..L` of the encoder `backbone` by the graph `top` from [`build_top_layers`]
/// (fp32 or quantized). Hidden states `0..=first` and everything computing them stay as they are;
/// the old layers above are removed; `last_hidden_state` and the exposed `hidden_state_{k}` outputs
/// (`k > first`) now come from the new layers. Errors if the layer counts disagree, or if the
/// backbone imports an opset older than 17 (`LayerNormalization`).
pub fn splice_top_layers(
    mut backbone: ModelProto,
    top: &ModelProto,
    first: usize,
) -> Result<ModelProto, OnnxError> {
    let tensors = hidden_state_tensors(&backbone)?;
    let l = tensors.len() - 1;
    let tg = top
        .graph
        .as_ref()
        .ok_or_else(|| OnnxError::graph("top-layer model has no graph"))?;
    if first >= l || first + tg.output.len() != l {
        return Err(OnnxError::Invalid(format!(
            "{} fine-tuned layers from layer {first} do not fit a backbone of {l} layers",
            tg.output.len()
        )));
    }
    let opset = graph::default_opset(&backbone);
    if opset < graph::OPSET {
        return Err(OnnxError::Invalid(format!(
            "the backbone imports opset {opset}; the fine-tuned layers need opset {} (LayerNormalization)",
            graph::OPSET
        )));
    }
    let hidden = tg
        .input
        .iter()
        .find(|i| i.name.as_deref() == Some(TOP_INPUT))
        .and_then(value_info_shape)
        .and_then(|(_, d)| match d.last() {
            Some(Dim::Fixed(h)) => Some(*h),
            _ => None,
        })
        .ok_or_else(|| OnnxError::graph(format!("top-layer graph has no input {TOP_INPUT}")))?;
    let g = backbone
        .graph
        .take()
        .ok_or_else(|| OnnxError::graph("backbone has no graph"))?;
    let (batch, seq) = graph::input_ids_dims(&g);
    let (g, exposed_above) = remove_layers_above(g, &tensors, first)?;

    let mut b = GraphBuilder::from_graph(g);
    let new_tensors = append_top_graph(&mut b, tg, &tensors[..=first], l)?;
    b.output(
        "last_hidden_state",
        DataType::Float,
        &[batch, seq, Dim::Fixed(hidden)],
    );
    backbone.graph = Some(b.graph);
    // Opsets the new nodes need (the default domain was checked above).
    for o in &top.opset_import {
        let d = o.domain.as_deref().unwrap_or("");
        if !backbone
            .opset_import
            .iter()
            .any(|b| b.domain.as_deref().unwrap_or("") == d)
        {
            backbone.opset_import.push(o.clone());
        }
    }
    set_metadata(&mut backbone, META_NUM_LAYERS, &l.to_string());
    set_metadata(&mut backbone, META_HIDDEN_SIZE, &hidden.to_string());
    for (k, t) in new_tensors.iter().enumerate() {
        set_metadata(&mut backbone, &format!("{META_HIDDEN_TENSOR}{k}"), t);
    }
    set_metadata(&mut backbone, META_FINE_TUNED_FROM, &first.to_string());
    crate::graph::expose_hidden_states(&mut backbone, &exposed_above)?;
    Ok(backbone)
}

/// Removes the layers above hidden state `first` (tensors of the states `0..=L` in `tensors`)
/// from the backbone graph `g`: only what states `0..=first` and their exposed outputs need is
/// kept. Returns the graph and the states above `first` that were exposed as outputs (recreated
/// from the new layers by the caller).
fn remove_layers_above(
    mut g: GraphProto,
    tensors: &[String],
    first: usize,
) -> Result<(GraphProto, Vec<usize>), OnnxError> {
    let l = tensors.len() - 1;
    if !g
        .input
        .iter()
        .any(|i| i.name.as_deref() == Some("attention_mask"))
    {
        return Err(OnnxError::graph("backbone has no input `attention_mask`"));
    }
    let is_state =
        |o: &ValueInfoProto, k: usize| o.name.as_deref() == Some(hidden_state_name(k).as_str());
    let exposed_above: Vec<usize> = (first + 1..=l)
        .filter(|&k| g.output.iter().any(|o| is_state(o, k)))
        .collect();
    let kept_outputs: Vec<_> = g
        .output
        .iter()
        .filter(|o| (0..=first).any(|k| is_state(o, k)))
        .cloned()
        .collect();
    g.output = tensors[..=first]
        .iter()
        .map(|t| value_info(t, DataType::Float, &[]))
        .chain(kept_outputs.iter().cloned())
        .collect();
    graph::prune(&mut g)?;
    g.output = kept_outputs;
    if g.node
        .iter()
        .any(|n| n.output.iter().any(|o| o == "last_hidden_state"))
    {
        return Err(OnnxError::graph(
            "the backbone's old top layers could not be removed (a graph with control flow?)",
        ));
    }
    Ok((g, exposed_above))
}

/// Copies the nodes, initializers and value infos of the top-layer graph `tg` into `b` (names
/// prefixed [`PREFIX`]), its input [`TOP_INPUT`] reading `below[first]` and its `attention_mask`
/// the backbone's; its last output becomes `last_hidden_state`. Returns the tensors of hidden
/// states `0..=l` (`below` followed by the new layers' outputs).
fn append_top_graph(
    b: &mut GraphBuilder,
    tg: &GraphProto,
    below: &[String],
    l: usize,
) -> Result<Vec<String>, OnnxError> {
    let first = below.len() - 1;
    let mut map: HashMap<String, String> = HashMap::new();
    map.insert(TOP_INPUT.to_string(), below[first].clone());
    map.insert("attention_mask".to_string(), "attention_mask".to_string());
    let mut new_tensors = below.to_vec();
    for (j, o) in tg.output.iter().enumerate() {
        let k = first + 1 + j;
        let name = o
            .name
            .clone()
            .ok_or_else(|| OnnxError::graph("top-layer graph output without a name"))?;
        let to = if k == l {
            let n = b.unique("last_hidden_state");
            if n != "last_hidden_state" {
                return Err(OnnxError::graph(
                    "`last_hidden_state` is still used in the backbone after removing its top layers",
                ));
            }
            n
        } else {
            b.unique(&format!("{PREFIX}hidden.{k}"))
        };
        map.insert(name, to.clone());
        new_tensors.push(to);
    }
    for t in &tg.initializer {
        let mut t = t.clone();
        let name = t.name.clone().unwrap_or_default();
        let to = b.unique(&format!("{PREFIX}{name}"));
        map.insert(name, to.clone());
        t.name = Some(to);
        b.graph.initializer.push(t);
    }
    for n in &tg.node {
        let mut n = n.clone();
        for i in n.input.iter_mut().filter(|i| !i.is_empty()) {
            *i = map
                .get(i.as_str())
                .cloned()
                .ok_or_else(|| OnnxError::graph(format!("top-layer graph: {i} has no producer")))?;
        }
        for o in n.output.iter_mut().filter(|o| !o.is_empty()) {
            let to = match map.get(o.as_str()) {
                Some(t) => t.clone(),
                None => {
                    let t = b.unique(&format!("{PREFIX}{o}"));
                    map.insert(o.clone(), t.clone());
                    t
                }
            };
            *o = to;
        }
        n.name = Some(b.unique(&format!("{PREFIX}{}", n.name.as_deref().unwrap_or("node"))));
        b.graph.node.push(n);
    }
    for v in &tg.value_info {
        if let Some(to) = v.name.as_deref().and_then(|n| map.get(n)) {
            let mut v = v.clone();
            v.name = Some(to.clone());
            b.graph.value_info.push(v);
        }
    }
    Ok(new_tensors)
}
