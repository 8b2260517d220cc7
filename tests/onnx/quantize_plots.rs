//! `quantize --plots DIR`: per-layer fidelity of the int8 encoder against fp32, drawn and recorded,
//! with the calibration and fidelity runs' progress on a non-terminal stderr.

#![cfg(feature = "real-model")]

use crate::support as common;

use common::{edgetune, fails, require_setup, root};

#[test]
fn quantize_draws_per_layer_fidelity() {
    require_setup();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir_all(&model).unwrap();
    let src = root().join(".models").join("default");
    for f in ["backbone.onnx", "tokenizer.json", "manifest.json"] {
        std::fs::copy(src.join(f), model.join(f)).unwrap();
    }
    let plots = dir.path().join("plots");
    let cache = dir.path().join("cache");
    let mut c = edgetune(&cache);
    c.arg("quantize")
        .arg(&model)
        .arg("--plots")
        .arg(&plots)
        .env("EDGETUNE_PROGRESS_SECS", "0");
    let out = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "quantize failed:\n{stdout}\n{stderr}");
    for step in ["calibration", "fidelity (fp32, int8)", "layer fidelity"] {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&format!("{step}: ")) && l.contains(" sentences in ")),
            "no closing progress line for {step}:\n{stderr}"
        );
    }
    assert!(
        stdout.contains("per-layer fidelity (7 hidden states"),
        "{stdout}"
    );

    let data: serde_json::Value =
        serde_json::from_slice(&std::fs::read(plots.join("layer_fidelity.json")).unwrap()).unwrap();
    let layers = data["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 7, "embeddings and 6 layers");
    // The manifest records the same figures the chart was drawn from.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("manifest.json")).unwrap()).unwrap();
    let recorded = manifest["extra"]["quantization"]["layers"]
        .as_array()
        .unwrap();
    assert_eq!(recorded.len(), 7);
    for (drawn, rec) in layers.iter().zip(recorded) {
        let (a, b) = (
            drawn["cosine"].as_f64().unwrap(),
            rec["mean_cosine"].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-6, "{drawn} vs {rec}");
        assert!(a > 0.9 && a <= 1.0 + 1e-6, "implausible cosine {a}");
        assert!(rec["min_cosine"].as_f64().unwrap() <= a + 1e-6);
    }
    // The embedding output comes before any weight MatMul: its only error is the int8 tables'
    // per-row rounding (at most half a step of a row's scale), far below the layers'.
    let emb = &recorded[0];
    assert!(emb["mean_cosine"].as_f64().unwrap() > 0.999, "{emb}");
    assert!(emb["max_abs_diff"].as_f64().unwrap() < 0.1, "{emb}");
    for rec in &recorded[1..] {
        assert!(rec["max_abs_diff"].as_f64().unwrap() > 0.0, "{rec}");
    }
    let svg = std::fs::read_to_string(plots.join("layer_fidelity.svg")).unwrap();
    roxmltree::Document::parse(&svg).unwrap();
    let png = std::fs::read(plots.join("layer_fidelity.png")).unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(&png))
        .read_info()
        .unwrap();
    let mut buf = vec![0u8; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut buf).unwrap();

    // The folder now holds files: refused without --force.
    let mut again = edgetune(&cache);
    again.arg("quantize").arg(&model).arg("--plots").arg(&plots);
    let err = fails(again);
    assert!(err.contains("--force"), "{err}");
}
