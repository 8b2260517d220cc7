//! Lossless ONNX read/write, metadata and hidden-state exposure on graphs built here (the real
//! third-party int8 MiniLM export is in `onnx_io_foreign.rs` under `real-model`).

use crate::support as common;

use std::path::Path;

use edgetune::graph::{self, proto};

fn attr_count(g: &proto::GraphProto) -> (usize, usize) {
    let all = g.node.iter().map(|n| n.attribute.len()).sum();
    let zero_ints = g
        .node
        .iter()
        .flat_map(|n| &n.attribute)
        .filter(|a| {
            a.r#type == Some(proto::attribute_proto::AttributeType::Int as i32) && a.i == Some(0)
        })
        .count();
    (all, zero_ints)
}

#[test]
fn zero_valued_attribute_survives_encoding() {
    let a = graph::attr_int("axis", 0);
    let node = proto::NodeProto {
        op_type: Some("Gather".into()),
        attribute: vec![a],
        ..Default::default()
    };
    let g = proto::GraphProto {
        node: vec![node],
        ..Default::default()
    };
    let m = proto::ModelProto {
        graph: Some(g),
        ..Default::default()
    };
    let back = graph::decode_model(&graph::encode_model(&m)).unwrap();
    let attr = &back.graph.unwrap().node[0].attribute[0];
    assert_eq!(attr.i, Some(0), "axis = 0 must be stored explicitly");
    assert_eq!(
        attr.r#type,
        Some(proto::attribute_proto::AttributeType::Int as i32)
    );
}

#[test]
fn metadata_helpers() {
    let mut m = proto::ModelProto::default();
    graph::set_metadata(&mut m, "a", "1");
    graph::set_metadata(&mut m, "b", "2");
    graph::set_metadata(&mut m, "a", "3");
    assert_eq!(
        graph::model_metadata(&m),
        vec![("a".into(), "3".into()), ("b".into(), "2".into())]
    );
    assert_eq!(graph::metadata_value(&m, "b"), Some("2"));
}

#[test]
fn header_has_metadata_and_outputs_without_weights() {
    let dir = tempfile::tempdir().unwrap();
    let f32_ = proto::tensor_proto::DataType::Float;
    let mut b = graph::GraphBuilder::new("g");
    let x = b.input("x", f32_, &[graph::Dim::Fixed(4)]);
    let w = b.initializer_f32("w", &[4], &[1.0, 2.0, 3.0, 4.0]);
    let y = b.op("Mul", &[&x, &w], vec![]);
    b.output_as(&y, "y", f32_, &[graph::Dim::param("n")]);
    let mut m = b.into_model("test");
    graph::set_metadata(&mut m, "k", "v");
    let path = dir.path().join("m.onnx");
    graph::save_model(&path, &m).unwrap();

    let h = graph::load_model_header(&path).unwrap();
    assert_eq!(graph::model_metadata(&h), graph::model_metadata(&m));
    let (g, hg) = (m.graph.as_ref().unwrap(), h.graph.as_ref().unwrap());
    assert_eq!(hg.input, g.input);
    assert_eq!(hg.output, g.output);
    assert!(hg.node.is_empty() && hg.initializer.is_empty(), "{hg:?}");
    assert!(!g.node.is_empty() && !g.initializer.is_empty());

    // Damage inside the skipped weights goes unnoticed by design; a cut header does not.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let err = graph::load_model_header(&path).unwrap_err().to_string();
    assert!(err.contains("m.onnx"), "{err}");
}

#[test]
fn load_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("junk.onnx");
    std::fs::write(&p, b"\xff\xff\xff not a protobuf").unwrap();
    let e = graph::load_model(&p).unwrap_err().to_string();
    assert!(e.contains("junk.onnx"), "{e}");
    let e = graph::load_model(Path::new("/nonexistent/x.onnx"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/x.onnx"), "{e}");
}

/// A graph written by `edgetune import` (a tiny BERT, no ONNX Runtime needed) round-trips
/// losslessly, and its hidden states can be exposed as outputs, idempotently.
#[test]
fn imported_graph_round_trips_and_exposes_hidden_states() {
    let tmp = tempfile::tempdir().unwrap();
    let (model_dir, _) = common::tiny_backbone(tmp.path());
    let path = model_dir.join("backbone.onnx");
    let original = std::fs::read(&path).unwrap();
    let model = graph::load_model(&path).unwrap();
    assert_eq!(graph::count_layers(&model).unwrap(), 2);
    let out = tmp.path().join("copy.onnx");
    graph::save_model(&out, &model).unwrap();
    assert!(
        std::fs::read(&out).unwrap() == original,
        "re-encoded bytes differ"
    );
    let again = graph::load_model(&out).unwrap();
    assert_eq!(again, model);
    assert_eq!(
        attr_count(again.graph.as_ref().unwrap()),
        attr_count(model.graph.as_ref().unwrap())
    );

    let mut m = model.clone();
    let names = graph::expose_hidden_states(&mut m, &[0, 1, 2]).unwrap();
    assert_eq!(
        names,
        vec!["hidden_state_0", "hidden_state_1", "hidden_state_2"]
    );
    let outs = m.graph.as_ref().unwrap().output.len();
    graph::expose_hidden_states(&mut m, &[2, 1]).unwrap();
    assert_eq!(
        m.graph.as_ref().unwrap().output.len(),
        outs,
        "exposing again adds nothing"
    );
    assert!(graph::expose_hidden_states(&mut m, &[3]).is_err());
    let tensors = edgetune::graph::hidden::hidden_state_tensors(&model).unwrap();
    assert_eq!(tensors.len(), 3);
}
