//! The real all-mpnet-base-v2 (110M parameters): too slow for `./setup.sh test`, so these tests
//! are ignored there and run by `./setup.sh test-big` (which first runs `./setup.sh model mpnet`;
//! by hand: `cargo test --features real-model --test onnx -- --ignored mpnet_big::`). They fail with a
//! set-up message when `.models/mpnet-hf` or `.models/mpnet` is missing.
//!
//! - the import against the NumPy transcription of Hugging Face's MPNet (Python onnxruntime) on
//!   eight real sentences, and the manifest's candle verification;
//! - the int8 backbone's fidelity as `quantize` recorded it;
//! - `--unfreeze-top 1` on the demo data and its export: the real MPNet layer rebuilt in ONNX
//!   agrees with training.
#![cfg(feature = "real-model")]

use crate::support as common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn models() -> (PathBuf, PathBuf) {
    common::require_setup();
    let root = common::root().join(".models");
    let (hf, model) = (root.join("mpnet-hf"), root.join("mpnet"));
    assert!(
        hf.join("model.safetensors").is_file() && model.join("backbone.int8.onnx").is_file(),
        "the big-model tests need all-mpnet-base-v2: run ./setup.sh model mpnet (or ./setup.sh test-big)"
    );
    (hf, model)
}

#[test]
#[ignore = "big model: ./setup.sh test-big"]
fn mpnet_import_matches_the_numpy_reference() {
    let (hf, model) = models();
    common::require_python_onnxruntime();
    let o = Command::new("python3")
        .arg(common::root().join("tests/mpnet_reference.py"))
        .arg(&hf)
        .arg(model.join("backbone.onnx"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let py: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    eprintln!("all-mpnet-base-v2 vs NumPy: {py}");
    assert_eq!(py["layers"], 12);
    assert!(py["max_abs_diff_hidden"].as_f64().unwrap() <= 1e-4, "{py}");
    assert!(py["max_abs_diff_pooled"].as_f64().unwrap() <= 1e-4, "{py}");
    let m = edgetune::onnx::import::Manifest::load(&model).unwrap();
    let v = m.verification.expect("verified against candle at import");
    assert!(v.max_abs_diff_hidden <= 1e-4, "{v:?}");
    let q = &m.extra["quantization"]["fidelity"];
    eprintln!("int8 fidelity recorded by quantize: {q}");
    assert!(q["mean_cosine"].as_f64().unwrap() >= 0.99, "{q}");
}

fn edgetune(cache: &Path, args: &[&str]) -> String {
    let mut c = common::edgetune(cache);
    c.args(args);
    common::ok(c)
}

#[test]
#[ignore = "big model: ./setup.sh test-big"]
fn mpnet_unfrozen_top_layer_trains_and_exports() {
    let (hf, model) = models();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    for (split, n) in [("train", 80), ("valid", 30), ("test", 30)] {
        let text = std::fs::read_to_string(common::root().join(format!("data/demo/{split}.jsonl")))
            .unwrap();
        let lines: Vec<&str> = text.lines().take(n).collect();
        std::fs::write(data.join(format!("{split}.jsonl")), lines.join("\n") + "\n").unwrap();
    }
    let run = tmp.path().join("run");
    edgetune(
        &cache,
        &[
            "train",
            "--data",
            &s(&data),
            "--out",
            &s(&run),
            "--backbone",
            &s(&model),
            "--unfreeze-top",
            "1",
            "--hf-weights",
            &s(&hf),
            "--epochs",
            "2",
            "--heads-first",
            "1",
            "-q",
        ],
    );
    let merged = tmp.path().join("merged.onnx");
    let r = edgetune(
        &cache,
        &["export", "--run", &s(&run), "--out", &s(&merged), "--json"],
    );
    let r: serde_json::Value = serde_json::from_str(r.trim()).unwrap();
    eprintln!("MPNet top-1 export: {}", r["check"]);
    assert!(merged.is_file());
}
