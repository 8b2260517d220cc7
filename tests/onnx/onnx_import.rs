//! Import and quantization as graph transformations, without ONNX Runtime: a tiny random BERT
//! written by the test (safetensors + config.json + WordPiece tokenizer.json) imported with the
//! self-check off, its graph inspected, its weight MatMuls rewritten to int8, and the
//! `edgetune import --no-verify` command. The checks that run the graphs in ONNX Runtime (the
//! self-verification against candle, ORT's fusion of the int8 pattern, fidelity, the real MiniLM)
//! are in `onnx_import_ort.rs` under `real-model`.

use crate::support as common;

use edgetune::graph;
use edgetune::onnx::{import, quantize};

#[test]
fn tiny_bert_import_graph_and_int8_rewrite() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    let out = tmp.path().join("model");
    common::write_tiny_bert(&hf, 2, true, 7);
    let mut opts = import::ImportOptions::new(&hf, &out);
    opts.verify = false;
    let r = import::import(&opts).unwrap();
    assert!(r.verification.is_none());
    assert_eq!(
        r.hidden_outputs,
        vec!["hidden_state_0", "hidden_state_1", "hidden_state_2"]
    );
    for f in ["backbone.onnx", "tokenizer.json", "manifest.json"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("staged")), "{names:?}");
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

    // The imported graph: standard ops, hidden states by metadata, fused layer norms.
    let model = graph::load_model(&out.join("backbone.onnx")).unwrap();
    assert_eq!(graph::count_layers(&model).unwrap(), 2);
    let g = model.graph.as_ref().unwrap();
    let lns = g
        .node
        .iter()
        .filter(|n| n.op_type.as_deref() == Some("LayerNormalization"))
        .count();
    assert_eq!(lns, 5, "2L+1 LayerNormalization nodes");
    assert!(g
        .node
        .iter()
        .all(|n| n.domain.as_deref().unwrap_or("").is_empty()));
    let outputs: Vec<&str> = g.output.iter().filter_map(|o| o.name.as_deref()).collect();
    assert_eq!(
        outputs,
        [
            "last_hidden_state",
            "hidden_state_0",
            "hidden_state_1",
            "hidden_state_2"
        ]
    );

    // Quantize: all 12 weight MatMuls become the int8 pattern.
    let mut q = model.clone();
    let s = quantize::quantize_model(&mut q, &quantize::QuantizeOptions::default()).unwrap();
    assert_eq!(s.quantized.len(), 12);
    assert_eq!(
        s.dynamic_quantize_nodes, 8,
        "q/k/v share one DynamicQuantizeLinear per layer"
    );
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
    // 7-bit weights by default (no u8*s8 saturation on AVX2 without VNNI).
    for t in qg.initializer.iter().filter(|t| t.data_type == Some(3)) {
        let bytes = t.raw_data.as_deref().unwrap_or_default();
        assert!(
            bytes.iter().all(|&b| (b as i8).unsigned_abs() <= 63),
            "{:?}",
            t.name
        );
    }

    // --keep-fp32 keeps exactly the matching MatMuls.
    let mut q2 = model.clone();
    let opts = quantize::QuantizeOptions {
        keep_fp32: vec!["layer.1.output.dense".into()],
        ..Default::default()
    };
    let s2 = quantize::quantize_model(&mut q2, &opts).unwrap();
    assert_eq!(s2.quantized.len(), 11);
    assert_eq!(s2.kept_fp32.len(), 1);
    let p2 = tmp.path().join("partial.onnx");
    graph::save_model(&p2, &q2).unwrap();
    assert_eq!(graph::load_model(&p2).unwrap(), q2);
}

#[test]
fn tiny_bert_unprefixed_and_subset_of_hidden_states() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    common::write_tiny_bert(&hf, 3, false, 11);
    let mut opts = import::ImportOptions::new(&hf, tmp.path().join("m"));
    opts.verify = false;
    opts.hidden_states = import::parse_hidden_states("0,3").unwrap();
    let r = import::import(&opts).unwrap();
    assert_eq!(r.hidden_outputs, vec!["hidden_state_0", "hidden_state_3"]);
    let m = import::Manifest::load(&tmp.path().join("m")).unwrap();
    assert_eq!(
        m.outputs,
        vec!["last_hidden_state", "hidden_state_0", "hidden_state_3"]
    );
    // A second import into the same folder is refused without --force.
    let e = import::import(&opts).unwrap_err().to_string();
    assert!(e.contains("--force"), "{e}");
    // Out-of-range request fails cleanly, and the folder stays as it was.
    opts.force = true;
    opts.hidden_states = Some(vec![4]);
    let e = import::import(&opts).unwrap_err().to_string();
    assert!(e.contains("hidden state 4"), "{e}");
    assert_eq!(
        import::Manifest::load(&tmp.path().join("m"))
            .unwrap()
            .outputs,
        m.outputs
    );
    assert!(import::parse_hidden_states("1,x").is_err());
    assert_eq!(import::parse_hidden_states("none").unwrap(), Some(vec![]));
    assert_eq!(import::parse_hidden_states("all").unwrap(), None);
}

#[test]
fn import_rejects_wrong_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    common::write_tiny_bert(&hf, 1, false, 3);
    // Claim a wider model than the weights: the error names the tensor and the file.
    let cfg = std::fs::read_to_string(hf.join("config.json"))
        .unwrap()
        .replace("\"intermediate_size\": 64", "\"intermediate_size\": 65");
    std::fs::write(hf.join("config.json"), cfg).unwrap();
    let mut opts = import::ImportOptions::new(&hf, tmp.path().join("m"));
    opts.verify = false;
    let e = import::import(&opts).unwrap_err().to_string();
    assert!(
        e.contains("model.safetensors") && e.contains("intermediate.dense"),
        "{e}"
    );
    assert!(!tmp.path().join("m/backbone.onnx").exists());
}

/// `edgetune import --no-verify` needs no ONNX Runtime; a missing checkpoint file is a clear error.
#[test]
fn import_command_without_verification() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    common::write_tiny_bert(&hf, 2, false, 4);
    let out = tmp.path().join("m");
    let mut c = common::edgetune(&tmp.path().join("cache"));
    c.arg("import")
        .arg(&hf)
        .arg("--out")
        .arg(&out)
        .args(["--no-verify", "--hidden-states", "1,2"]);
    let stdout = common::ok(c);
    assert!(stdout.contains("verification skipped"), "{stdout}");
    assert!(stdout.contains("hidden_state_1 hidden_state_2"), "{stdout}");
    assert!(out.join("backbone.onnx").is_file());

    std::fs::remove_file(hf.join("model.safetensors")).unwrap();
    let mut c = common::edgetune(&tmp.path().join("cache"));
    c.arg("import")
        .arg(&hf)
        .arg("--out")
        .arg(tmp.path().join("m2"))
        .arg("--no-verify");
    let err = common::fails(c);
    assert!(err.contains("model.safetensors"), "{err}");
}
