//! Building ONNX graphs: typed inputs/outputs, attributes and a node-by-node [`GraphBuilder`].

use std::collections::{BTreeMap, HashMap, HashSet};

use super::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use super::tensor::tensor;

/// ONNX IR version written by the builder (IR 8 = ONNX 1.10+, read by every ORT since 1.10).
pub const IR_VERSION: i64 = 8;
/// Default-domain opset written by the builder (17 has `LayerNormalization`).
pub const OPSET: i64 = 17;

/// One dimension of a declared input/output shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(i64),
    /// A symbolic (dynamic) size such as `batch`.
    Param(String),
}

impl Dim {
    /// A symbolic dimension.
    pub fn param(name: &str) -> Self {
        Dim::Param(name.to_string())
    }
}

/// A tensor-typed `ValueInfoProto` (graph input/output).
pub fn value_info(name: &str, elem_type: DataType, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            denotation: None,
            value: Some(match d {
                Dim::Fixed(v) => tensor_shape_proto::dimension::Value::DimValue(*v),
                Dim::Param(p) => tensor_shape_proto::dimension::Value::DimParam(p.clone()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            denotation: None,
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem_type as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
        ..Default::default()
    }
}

/// The element type and dims of a tensor-typed value info, if declared.
pub fn value_info_shape(vi: &ValueInfoProto) -> Option<(i32, Vec<Dim>)> {
    let Some(TypeProto {
        value: Some(type_proto::Value::TensorType(t)),
        ..
    }) = &vi.r#type
    else {
        return None;
    };
    let dims = t
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(tensor_shape_proto::dimension::Value::DimValue(v)) => Dim::Fixed(*v),
                    Some(tensor_shape_proto::dimension::Value::DimParam(p)) => {
                        Dim::Param(p.clone())
                    }
                    None => Dim::Param(String::new()),
                })
                .collect()
        })
        .unwrap_or_default();
    Some((t.elem_type.unwrap_or(0), dims))
}

/// An `INT` attribute (kept even when zero: proto2 optional).
pub fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

/// An `INTS` attribute.
pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// A `FLOAT` attribute.
pub fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}

/// A `FLOATS` attribute.
pub fn attr_floats(name: &str, v: &[f32]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Floats as i32),
        floats: v.to_vec(),
        ..Default::default()
    }
}

/// A `STRING` attribute.
pub fn attr_string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

/// A `STRINGS` attribute.
pub fn attr_strings(name: &str, v: &[&str]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Strings as i32),
        strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..Default::default()
    }
}

/// A `TENSOR` attribute (e.g. `Constant`'s `value`).
pub fn attr_tensor(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Tensor as i32),
        t: Some(t),
        ..Default::default()
    }
}

/// Looks up an attribute of a node by name.
pub fn get_attr<'n>(node: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    node.attribute
        .iter()
        .find(|a| a.name.as_deref() == Some(name))
}

/// Builds a [`GraphProto`] node by node, generating unique value names.
///
/// ```
/// use edgetune::graph::{GraphBuilder, Dim, attr_int};
/// use edgetune::graph::proto::tensor_proto::DataType;
/// let mut b = GraphBuilder::new("g");
/// b.input("x", DataType::Float, &[Dim::param("batch"), Dim::Fixed(4)]);
/// let w = b.initializer_f32("w", &[4, 2], &[0.0; 8]);
/// let y = b.op("MatMul", &["x", &w], vec![]);
/// let z = b.op("Softmax", &[&y], vec![attr_int("axis", -1)]);
/// b.output_as(&z, "y", DataType::Float, &[Dim::param("batch"), Dim::Fixed(2)]);
/// let model = b.into_model("doc");
/// assert_eq!(model.graph.unwrap().node.len(), 3);
/// ```
#[derive(Debug, Default)]
pub struct GraphBuilder {
    /// The graph under construction.
    pub graph: GraphProto,
    used: HashSet<String>,
    counters: HashMap<String, usize>,
    opsets: BTreeMap<String, i64>,
}

impl GraphBuilder {
    /// An empty graph named `name`, default-domain opset [`OPSET`].
    pub fn new(name: &str) -> Self {
        let mut opsets = BTreeMap::new();
        opsets.insert(String::new(), OPSET);
        GraphBuilder {
            graph: GraphProto {
                name: Some(name.into()),
                ..Default::default()
            },
            opsets,
            ..Default::default()
        }
    }

    /// Continues building on an existing graph (names already used are respected).
    pub fn from_graph(graph: GraphProto) -> Self {
        let mut used = HashSet::new();
        for n in &graph.node {
            used.extend(n.output.iter().cloned());
            if let Some(name) = &n.name {
                used.insert(name.clone());
            }
        }
        used.extend(graph.input.iter().filter_map(|v| v.name.clone()));
        used.extend(graph.initializer.iter().filter_map(|t| t.name.clone()));
        let mut opsets = BTreeMap::new();
        opsets.insert(String::new(), OPSET);
        GraphBuilder {
            graph,
            used,
            opsets,
            ..Default::default()
        }
    }

    /// Requires at least `version` of opset `domain` ("" = default, "com.microsoft", ...).
    pub fn require_opset(&mut self, domain: &str, version: i64) {
        let e = self.opsets.entry(domain.to_string()).or_insert(version);
        *e = (*e).max(version);
    }

    /// A fresh value/node name starting with `prefix`, never returned before in this graph.
    pub fn unique(&mut self, prefix: &str) -> String {
        if self.used.insert(prefix.to_string()) {
            return prefix.to_string();
        }
        loop {
            let c = self.counters.entry(prefix.to_string()).or_insert(0);
            *c += 1;
            let name = format!("{prefix}_{c}");
            if self.used.insert(name.clone()) {
                return name;
            }
        }
    }

    /// Declares a graph input.
    pub fn input(&mut self, name: &str, elem_type: DataType, dims: &[Dim]) -> String {
        self.used.insert(name.to_string());
        self.graph.input.push(value_info(name, elem_type, dims));
        name.to_string()
    }

    /// Declares an existing value as a graph output.
    pub fn output(&mut self, name: &str, elem_type: DataType, dims: &[Dim]) {
        self.graph.output.push(value_info(name, elem_type, dims));
    }

    /// Exposes value `value` as graph output `name` through an `Identity` node (or directly when the
    /// names are equal).
    pub fn output_as(&mut self, value: &str, name: &str, elem_type: DataType, dims: &[Dim]) {
        if value != name {
            self.used.insert(name.to_string());
            self.node_named("Identity", &[value], &[name], vec![]);
        }
        self.output(name, elem_type, dims);
    }

    /// Adds an initializer (its name made unique) and returns the name.
    pub fn initializer(&mut self, mut t: TensorProto) -> String {
        let name = self.unique(t.name.as_deref().unwrap_or("init"));
        t.name = Some(name.clone());
        self.graph.initializer.push(t);
        name
    }

    /// Adds a float initializer.
    pub fn initializer_f32(&mut self, name: &str, dims: &[i64], data: &[f32]) -> String {
        self.initializer(tensor(name, dims, data))
    }

    /// Adds an int64 initializer.
    pub fn initializer_i64(&mut self, name: &str, dims: &[i64], data: &[i64]) -> String {
        self.initializer(tensor(name, dims, data))
    }

    /// Adds a node with explicit output names and returns the node's index.
    pub fn node_named(
        &mut self,
        op: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<AttributeProto>,
    ) -> usize {
        let base = outputs
            .first()
            .map(|o| format!("{o}_{op}"))
            .unwrap_or_else(|| op.to_string());
        let node_name = self.unique(&base);
        for o in outputs {
            self.used.insert(o.to_string());
        }
        self.graph.node.push(NodeProto {
            name: Some(node_name),
            op_type: Some(op.to_string()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute: attrs,
            ..Default::default()
        });
        self.graph.node.len() - 1
    }

    /// Adds a node with one generated output name (prefix `op` lower-cased) and returns it.
    pub fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        let prefix = op.to_ascii_lowercase();
        self.op_as(op, inputs, attrs, &prefix)
    }

    /// Like [`GraphBuilder::op`], with a chosen output-name prefix (e.g. `layer3.attn.q`).
    pub fn op_as(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<AttributeProto>,
        out_prefix: &str,
    ) -> String {
        let out = self.unique(out_prefix);
        self.node_named(op, inputs, &[&out], attrs);
        out
    }

    /// Adds a node with `n` generated outputs (e.g. `GRU`, `DynamicQuantizeLinear`) and returns them.
    pub fn op_multi(
        &mut self,
        op: &str,
        inputs: &[&str],
        n: usize,
        attrs: Vec<AttributeProto>,
        out_prefix: &str,
    ) -> Vec<String> {
        let outs: Vec<String> = (0..n)
            .map(|i| self.unique(&format!("{out_prefix}.{i}")))
            .collect();
        let refs: Vec<&str> = outs.iter().map(|s| s.as_str()).collect();
        self.node_named(op, inputs, &refs, attrs);
        outs
    }

    /// A `MatMul` by a constant `[in, out]` weight (row-major), plus an optional bias `Add`.
    pub fn linear(
        &mut self,
        x: &str,
        weight_in_out: &[f32],
        in_dim: usize,
        out_dim: usize,
        bias: Option<&[f32]>,
        prefix: &str,
    ) -> String {
        let w = self.initializer_f32(
            &format!("{prefix}.weight"),
            &[in_dim as i64, out_dim as i64],
            weight_in_out,
        );
        let y = self.op_as("MatMul", &[x, &w], vec![], &format!("{prefix}.matmul"));
        match bias {
            Some(b) => {
                let b = self.initializer_f32(&format!("{prefix}.bias"), &[out_dim as i64], b);
                self.op_as("Add", &[&y, &b], vec![], &format!("{prefix}.out"))
            }
            None => y,
        }
    }

    /// Finishes the graph as a model (IR [`IR_VERSION`], the required opsets).
    pub fn into_model(self, producer: &str) -> ModelProto {
        ModelProto {
            ir_version: Some(IR_VERSION),
            producer_name: Some(producer.to_string()),
            producer_version: Some(env!("CARGO_PKG_VERSION").to_string()),
            opset_import: self
                .opsets
                .iter()
                .map(|(d, v)| OperatorSetIdProto {
                    domain: Some(d.clone()),
                    version: Some(*v),
                })
                .collect(),
            graph: Some(self.graph),
            ..Default::default()
        }
    }
}
