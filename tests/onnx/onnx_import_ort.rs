//! Import and quantization, end to end in ONNX Runtime: a tiny random BERT written by the test
//! (its import verified against candle, its int8 graph fused by ONNX Runtime), the real MiniLM
//! checkpoint, and the outlier decomposition measured in ONNX Runtime.

#![cfg(feature = "real-model")]

use crate::support as common;

use std::path::{Path, PathBuf};

use edgetune::backbone::raw as runtime;
use edgetune::backbone::SessionOptions;
use edgetune::graph;
use edgetune::onnx::{import, quantize};

fn minilm() -> PathBuf {
    common::require_setup();
    common::root().join(".models/minilm-hf")
}

#[test]
fn tiny_bert_import_quantize_run() {
    common::require_setup();
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    let out = tmp.path().join("model");
    common::write_tiny_bert(&hf, 2, true, 7);

    let r = import::import(&import::ImportOptions::new(&hf, &out)).unwrap();
    let v = r.verification.expect("verification ran");
    eprintln!("tiny import: {v:?}");
    assert!(
        v.max_abs_diff_hidden <= 1e-4 && v.max_abs_diff_pooled <= 1e-4,
        "{v:?}"
    );
    assert_eq!(
        r.hidden_outputs,
        vec!["hidden_state_0", "hidden_state_1", "hidden_state_2"]
    );
    for f in ["backbone.onnx", "tokenizer.json", "manifest.json"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let m = import::Manifest::load(&out).unwrap();
    assert_eq!(m.num_layers, 2);
    assert_eq!(m.hidden_size, 32);
    assert_eq!(
        m.files["backbone.onnx"],
        edgetune::fsutil::sha256_file(&out.join("backbone.onnx")).unwrap()
    );
    assert_eq!(
        m.source_files["model.safetensors"],
        edgetune::fsutil::sha256_file(&hf.join("model.safetensors")).unwrap()
    );
    assert_eq!(m.outputs[0], "last_hidden_state");

    // The imported graph: standard ops, hidden states by metadata, last state == last_hidden_state.
    let model = graph::load_model(&out.join("backbone.onnx")).unwrap();
    assert_eq!(graph::count_layers(&model).unwrap(), 2);
    let g = model.graph.as_ref().unwrap();
    let lns = g
        .node
        .iter()
        .filter(|n| n.op_type.as_deref() == Some("LayerNormalization"))
        .count();
    assert_eq!(lns, 5, "2L+1 LayerNormalization nodes");
    let mut s = runtime::open_file(&out.join("backbone.onnx"), &SessionOptions::default()).unwrap();
    let tok = runtime::load_tokenizer(&out.join("tokenizer.json")).unwrap();
    let b = runtime::EncoderBatch::tokenize(
        &tok,
        &["play some jazz", "what is the weather in paris tonight"],
        64,
    )
    .unwrap();
    let o = runtime::run_encoder(
        &mut s,
        &b,
        &["last_hidden_state", "hidden_state_0", "hidden_state_2"],
    )
    .unwrap();
    assert_eq!(o[0].shape, vec![2, b.seq, 32]);
    assert!(o[2].data == o[0].data);
    assert!(runtime::max_abs_diff(&o[1].data, &o[0].data) > 0.1);

    // Quantize: all 12 weight MatMuls become the int8 pattern, ORT fuses it, and output stays close.
    let qr = quantize::quantize_dir(&quantize::QuantizeDirOptions {
        model_dir: out.clone(),
        out: None,
        quant: Default::default(),
        sentences: None,
        warn_cosine: quantize::DEFAULT_WARN_COSINE,
        threads: Some(1),
        measure_speed: false,
        smooth_alpha: Some(0.7),
        calibration: None,
        auto_alpha: false,
        force: false,
        progress: false,
        plots: None,
    })
    .unwrap();
    eprintln!(
        "tiny quantize: {:?} fused {} unfused {}",
        qr.fidelity, qr.fused_nodes, qr.unfused_nodes
    );
    assert_eq!(qr.summary.quantized.len(), 12);
    assert_eq!(
        qr.summary.dynamic_quantize_nodes, 8,
        "q/k/v share one DynamicQuantizeLinear per layer"
    );
    assert_eq!(qr.fused_nodes, 12, "ORT must fuse every quantized MatMul");
    assert_eq!(qr.unfused_nodes, 0);
    assert!(
        qr.fidelity.mean_cosine > 0.98 && qr.fidelity.mean_cosine <= 1.0 + 1e-6,
        "{:?}",
        qr.fidelity
    );
    let q = graph::load_model(&out.join("backbone.int8.onnx")).unwrap();
    let qg = q.graph.as_ref().unwrap();
    assert_eq!(
        qg.node
            .iter()
            .filter(|n| n.op_type.as_deref() == Some("MatMulInteger"))
            .count(),
        12
    );
    let int8_weights = qg
        .initializer
        .iter()
        .filter(|t| t.data_type == Some(3))
        .count();
    assert_eq!(int8_weights, 24, "12 int8 weights + 12 int8 zero points");
    let m = import::Manifest::load(&out).unwrap();
    assert!(m.files.contains_key("backbone.int8.onnx"));

    // --keep-fp32 keeps exactly the matching MatMuls.
    let mut q2 = graph::load_model(&out.join("backbone.onnx")).unwrap();
    let opts = quantize::QuantizeOptions {
        keep_fp32: vec!["layer.1.output.dense".into()],
        ..Default::default()
    };
    let s2 = quantize::quantize_model(&mut q2, &opts).unwrap();
    assert_eq!(s2.quantized.len(), 11);
    assert_eq!(s2.kept_fp32.len(), 1);
    let p2 = tmp.path().join("partial.onnx");
    graph::save_model(&p2, &q2).unwrap();
    let mut s = runtime::open_file(&p2, &SessionOptions::default()).unwrap();
    let o2 = runtime::run_encoder(&mut s, &b, &["last_hidden_state"]).unwrap();
    assert_eq!(o2[0].shape, o[0].shape);
}

#[test]
fn real_minilm_import_matches_candle() {
    let hf = minilm();
    let tmp = tempfile::tempdir().unwrap();
    let r = import::import(&import::ImportOptions::new(&hf, tmp.path())).unwrap();
    let v = r.verification.unwrap();
    eprintln!("MiniLM import: {v:?}");
    assert!(v.max_abs_diff_hidden <= 1e-4, "{v:?}");
    assert!(v.max_abs_diff_pooled <= 1e-4, "{v:?}");
    assert_eq!(r.hidden_outputs.len(), 7);
    // Our own graph and the third-party int8 export agree on the layer count.
    let model = graph::load_model(&r.backbone).unwrap();
    assert_eq!(graph::count_layers(&model).unwrap(), 6);
}

/// Outlier decomposition: one activation channel made 50x larger than the others (through its
/// LayerNorm weight) sets the int8 activation scale of the MatMul it feeds; splitting it off into
/// fp32 must bring the output back close to fp32, keep every int8 MatMul fused by ONNX Runtime,
/// and move the bias `Add` in front of the outlier `Add` (so ORT folds the bias into the int8 op).
#[test]
fn outlier_channels_are_multiplied_in_fp32() {
    common::require_setup();
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    common::write_tiny_bert(&hf, 2, false, 5);
    let out = tmp.path().join("m");
    import::import(&import::ImportOptions::new(&hf, &out)).unwrap();
    let fp32 = out.join("backbone.onnx");
    let mut model = graph::load_model(&fp32).unwrap();
    let ln = "encoder.layer.0.attention.output.LayerNorm.weight";
    {
        let g = model.graph.as_mut().unwrap();
        let t = g
            .initializer
            .iter_mut()
            .find(|t| t.name.as_deref() == Some(ln))
            .unwrap();
        let mut w = graph::tensor_to_f32(t).unwrap();
        w[3] *= 50.0;
        *t = graph::tensor(ln, &[w.len() as i64], &w);
    }
    graph::save_model(&fp32, &model).unwrap();

    let tok = runtime::load_tokenizer(&out.join("tokenizer.json")).unwrap();
    let texts = [
        "play some jazz",
        "what is the weather in paris tonight",
        "book a table for two",
        "add this song to my playlist",
        "rate this novel five stars",
    ];
    let stats = quantize::activation_stats(&fp32, &tok, &texts, 0.0, Some(1), false).unwrap();
    let x = "encoder.layer.0.attention.out";
    assert_eq!(
        quantize::outlier_channels(&stats.amax[x], quantize::DEFAULT_OUTLIER_RATIO),
        vec![3],
        "amax {:?}",
        stats.amax[x]
    );
    let b = runtime::EncoderBatch::tokenize(&tok, &texts, 64).unwrap();
    let run = |p: &Path| {
        let mut s = runtime::open_file(p, &SessionOptions::default()).unwrap();
        runtime::run_encoder(&mut s, &b, &["last_hidden_state"])
            .unwrap()
            .remove(0)
            .data
    };
    let reference = run(&fp32);
    let mut errors = Vec::new();
    for ratio in [0.0, quantize::DEFAULT_OUTLIER_RATIO] {
        let mut m = graph::load_model(&fp32).unwrap();
        let s = quantize::quantize_model(
            &mut m,
            &quantize::QuantizeOptions {
                calibration: Some(stats.clone()),
                outlier_ratio: ratio,
                // Only the MatMul the outlier feeds is int8: the error below is its alone.
                keep_fp32: vec!["attention".into(), "output.dense".into(), "layer.1".into()],
                ..Default::default()
            },
        )
        .unwrap();
        let p = tmp.path().join(format!("q{ratio}.onnx"));
        graph::save_model(&p, &m).unwrap();
        let g = m.graph.as_ref().unwrap();
        let gathers = g
            .node
            .iter()
            .filter(|n| n.op_type.as_deref() == Some("Gather"))
            .filter(|n| n.input[0] == x)
            .count();
        if ratio > 0.0 {
            assert_eq!(s.quantized.len(), 1, "{s:?}");
            assert_eq!(s.outlier_channels, 1, "{s:?}");
            assert_eq!(gathers, 1);
            // The outlier sum comes last: it produces the name the bias Add used to produce.
            let dense = "encoder.layer.0.intermediate.dense.out";
            let producer = g
                .node
                .iter()
                .find(|n| n.output.iter().any(|o| o == dense))
                .unwrap();
            assert!(
                producer.input.iter().any(|i| i.ends_with(".outliers")),
                "{producer:?}"
            );
        } else {
            assert_eq!((s.outlier_channels, gathers), (0, 0));
        }
        let counts = quantize::fused_op_counts(&p).unwrap();
        assert_eq!(counts.get("MatMulInteger"), None, "{counts:?}");
        errors.push(runtime::max_abs_diff(&run(&p), &reference));
    }
    eprintln!(
        "max |diff| to fp32: plain int8 {}, with outlier split {}",
        errors[0], errors[1]
    );
    assert!(
        errors[1] * 3.0 < errors[0],
        "splitting the outlier channel off should cut the error: {errors:?}"
    );
}
