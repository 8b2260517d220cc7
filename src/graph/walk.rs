//! Walking ONNX graphs: opsets, topological order, producers and consumers, pruning.

use std::collections::{HashMap, HashSet};

use super::builder::{value_info_shape, Dim};
use super::error::OnnxError;
use super::proto::{GraphProto, ModelProto};

/// The default-domain opset version a model imports (0 if none).
pub fn default_opset(model: &ModelProto) -> i64 {
    model
        .opset_import
        .iter()
        .find(|o| {
            o.domain.as_deref().unwrap_or("").is_empty() || o.domain.as_deref() == Some("ai.onnx")
        })
        .and_then(|o| o.version)
        .unwrap_or(0)
}

/// The batch and sequence dimensions of an encoder's `input_ids` (symbolic `batch` / `sequence`
/// when the graph does not declare a 2-D shape).
pub fn input_ids_dims(g: &GraphProto) -> (Dim, Dim) {
    g.input
        .iter()
        .find(|i| i.name.as_deref() == Some("input_ids"))
        .and_then(value_info_shape)
        .filter(|(_, d)| d.len() == 2)
        .map(|(_, d)| (d[0].clone(), d[1].clone()))
        .unwrap_or((Dim::param("batch"), Dim::param("sequence")))
}

/// Node indices of `graph` in a topological order (stable: file order among ready nodes). Errors on
/// cycles or values that nothing produces (graph inputs, initializers and empty optional inputs are
/// sources). Subgraph-captured values are treated as sources.
pub fn topological_order(graph: &GraphProto) -> Result<Vec<usize>, OnnxError> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in graph.node.iter().enumerate() {
        for o in &n.output {
            if !o.is_empty() {
                producer.insert(o.as_str(), i);
            }
        }
    }
    let mut indeg = vec![0usize; graph.node.len()];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); graph.node.len()];
    for (i, n) in graph.node.iter().enumerate() {
        let mut seen = HashSet::new();
        for inp in &n.input {
            if let Some(&p) = producer.get(inp.as_str()) {
                if p != i && seen.insert(p) {
                    indeg[i] += 1;
                    users[p].push(i);
                }
            }
        }
    }
    let mut ready: std::collections::BTreeSet<usize> =
        (0..graph.node.len()).filter(|&i| indeg[i] == 0).collect();
    let mut order = Vec::with_capacity(graph.node.len());
    while let Some(&i) = ready.iter().next() {
        ready.remove(&i);
        order.push(i);
        for &u in &users[i] {
            indeg[u] -= 1;
            if indeg[u] == 0 {
                ready.insert(u);
            }
        }
    }
    if order.len() != graph.node.len() {
        return Err(OnnxError::graph(format!(
            "graph has a cycle ({} of {} nodes ordered)",
            order.len(),
            graph.node.len()
        )));
    }
    Ok(order)
}

/// Map from value name to the index of the node producing it.
pub fn producers(graph: &GraphProto) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for (i, n) in graph.node.iter().enumerate() {
        for o in &n.output {
            m.insert(o.clone(), i);
        }
    }
    m
}

/// Map from value name to the indices of the nodes consuming it.
pub fn consumers(graph: &GraphProto) -> HashMap<String, Vec<usize>> {
    let mut m: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, n) in graph.node.iter().enumerate() {
        for inp in &n.input {
            m.entry(inp.clone()).or_default().push(i);
        }
    }
    m
}

/// Removes nodes that no graph output depends on, then initializers and value infos nothing uses.
/// Graphs with subgraphs (control flow) are left alone.
pub fn prune(g: &mut GraphProto) -> Result<(), OnnxError> {
    if g.node.iter().any(|n| {
        n.attribute
            .iter()
            .any(|a| a.g.is_some() || !a.graphs.is_empty())
    }) {
        return Ok(());
    }
    let order = topological_order(g)?;
    let mut needed: HashSet<String> = g.output.iter().filter_map(|o| o.name.clone()).collect();
    let mut keep = vec![false; g.node.len()];
    for &i in order.iter().rev() {
        let n = &g.node[i];
        if n.output.iter().any(|o| needed.contains(o)) {
            keep[i] = true;
            needed.extend(n.input.iter().filter(|s| !s.is_empty()).cloned());
        }
    }
    let mut i = 0;
    g.node.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    g.initializer
        .retain(|t| t.name.as_ref().is_some_and(|n| needed.contains(n)));
    let produced: HashSet<String> = g
        .node
        .iter()
        .flat_map(|n| n.output.iter().cloned())
        .collect();
    g.value_info
        .retain(|v| v.name.as_ref().is_some_and(|n| produced.contains(n)));
    Ok(())
}
